"""The rows one ingest batch touches, locked up front and changed in memory, written in bulk."""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

ID_CHUNK = 500  # ids per IN (...) list
Row = dict[str, Any]


def dialect_insert(session: Session, table: Table) -> Any:
    """The dialect's INSERT, which has on_conflict_do_nothing()."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class LockedRows:
    """One table's rows a batch touches: as the database holds them and as the events leave them.

    `known` are the rows that existed before the batch (locked by `lock`); `ours` the ids the
    batch inserted. A run of the events starts from `known` (any other id: no row) and records,
    per id that had no row, the row its first event created (`first`), and per id the latest
    row (`state`). Rows are column dicts without tenant_id.
    """

    def __init__(self, session: Session, table: Table, tenant: str):
        self.session, self.table, self.tenant = session, table, tenant
        self.columns = [c.name for c in table.columns if c.name != "tenant_id"]
        self.known: dict[str, Row] = {}
        self.ours: set[str] = set()
        self.state: dict[str, Row] = {}
        self.first: dict[str, Row] = {}

    def lock(self, ids: Iterable[str]) -> None:
        """Lock and read the stored rows among `ids`, in id order (so concurrent batches queue
        instead of deadlocking; on SQLite the write transaction already holds the database)."""
        table = self.table
        for chunk in chunks(sorted(set(ids)), ID_CHUNK):
            stmt = select(table).where(table.c.tenant_id == self.tenant, table.c.id.in_(chunk))
            for row in self.session.execute(stmt.order_by(table.c.id).with_for_update()):
                self.known[row.id] = {name: row._mapping[name] for name in self.columns}

    def restart(self) -> None:
        """Forget a run of the events: back to the rows as they were before the batch."""
        self.state, self.first = dict(self.known), {}

    def get(self, row_id: str) -> Row | None:
        return self.state.get(row_id)

    def put(self, row_id: str, row: Row) -> None:
        if row_id not in self.state:
            self.first[row_id] = row
        self.state[row_id] = row

    def insert_new(self) -> bool:
        """Insert each row the run created, as its first event made it (one multi-row INSERT ...
        ON CONFLICT DO NOTHING). False when a concurrent batch committed some of them since
        `lock`: those are then locked and read, and the events must run again."""
        wanted = sorted(set(self.first) - self.ours)
        if not wanted:
            return True
        stmt = dialect_insert(self.session, self.table).on_conflict_do_nothing(
            index_elements=["tenant_id", "id"]).returning(self.table.c.id)
        self.ours.update(self.session.execute(
            stmt, [{"tenant_id": self.tenant, **self.first[i]} for i in wanted]).scalars())
        lost = [i for i in wanted if i not in self.ours]
        self.lock(lost)
        return not lost

    def write(self) -> int:
        """UPDATE, in one executemany, every row whose final state differs from the stored one;
        returns how many."""
        stored = {**self.first, **self.known}
        params = [{f"v_{name}": value for name, value in row.items()}
                  for row_id, row in sorted(self.state.items()) if row != stored.get(row_id)]
        if params:
            table = self.table
            stmt = update(table).where(table.c.tenant_id == self.tenant,
                                       table.c.id == bindparam("v_id"))
            self.session.execute(stmt.values({name: bindparam(f"v_{name}")
                                              for name in self.columns if name != "id"}), params)
        return len(params)
