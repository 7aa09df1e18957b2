"""The SQL engine, its sessions and migrations.

SQLite gets WAL, a busy timeout and explicit BEGIN (so a read transaction is one snapshot, and a
write transaction takes the write lock up front with BEGIN IMMEDIATE instead of failing on upgrade).
PostgreSQL snapshot reads use REPEATABLE READ.
"""
from __future__ import annotations

import logging
import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("tally.stores.sql.db")
T = TypeVar("T")
WRITE = "tally_write"


RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def is_retryable(error: BaseException) -> bool:
    """True for a transaction the database aborted to resolve a conflict: run it again."""
    state = getattr(getattr(error, "orig", None), "sqlstate", None)
    return isinstance(error, exc.DBAPIError) and state in RETRYABLE_SQLSTATES


POOL_SIZE, MAX_OVERFLOW = 5, 10  # per process; docs/deployment.md sizes max_connections


def make_engine(url: str, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW) -> Engine:
    """An engine for `url`; on PostgreSQL each process pools `pool_size` connections, opening up
    to `max_overflow` more under load (a request waits for one at most 30 s, then gets 503)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_transactions(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


def _sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """An engine plus the two kinds of unit of work tally uses."""

    def __init__(self, url: str, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW):
        self.url = url
        self.engine = make_engine(url, pool_size, max_overflow)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: commits on success, rolls back on any error."""
        bind = self.engine.execution_options(**{WRITE: True})
        with Session(bind=bind, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """One read-only transaction whose queries all see the same snapshot."""
        bind = self.engine
        if not self.is_sqlite:
            bind = self.engine.execution_options(isolation_level="REPEATABLE READ")
        with Session(bind=bind) as session:
            with session.begin():
                yield session

    def write_retrying(self, work: Callable[[Session], T], attempts: int = 4) -> T:
        """Run `work` in a write transaction; a transaction the database aborted to break a
        deadlock (or a serialization conflict) with a concurrent one is run again."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as session:
                    return work(session)
            except exc.DBAPIError as error:
                if not is_retryable(error) or attempt == attempts:
                    raise
                log.info("write conflicted with a concurrent transaction; retry %d", attempt)
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    def session(self) -> Session:
        return self._factory()

    def dispose(self) -> None:
        """Drop pooled connections, e.g. in a forked child that inherited them."""
        self.engine.dispose(close=False)

    def upgrade(self) -> None:
        """Apply every Alembic migration."""
        # Alembic and Mako (about a second of imports) load only in a process that migrates.
        from alembic import command  # load order: not at module level, see above

        command.upgrade(alembic_config(self.url), "head")

    def current(self) -> tuple[str, ...]:
        """The revision(s) the database is at; () before the first migration."""
        from alembic.runtime.migration import MigrationContext  # load order: as in upgrade

        with self.engine.connect() as connection:
            return tuple(MigrationContext.configure(connection).get_current_heads())

    def history(self) -> list[Migration]:
        """Every migration, newest first, each saying whether the database has it applied."""
        from alembic.script import ScriptDirectory  # load order: as in upgrade

        scripts = ScriptDirectory.from_config(alembic_config(self.url))
        heads, current = set(scripts.get_heads()), self.current()
        applied = {script.revision for script in scripts.iterate_revisions(current, "base")} \
            if current else set()
        return [Migration(script.revision, _down(script.down_revision),
                          (script.doc or "").strip(), script.revision in heads,
                          script.revision in current, script.revision in applied)
                for script in scripts.walk_revisions()]

    def downgrade(self, target: str) -> None:
        """Undo the migrations after `target` (a revision id, `base`, or `-N`).

        Raises ValueError (Alembic's reason) for a target that is unknown or not below the
        current revision.
        """
        from alembic import command  # load order: as in upgrade
        from alembic.util import CommandError  # load order: as in upgrade

        try:
            command.downgrade(alembic_config(self.url), target)
        except CommandError as error:
            raise ValueError(str(error)) from None


@dataclass(frozen=True)
class Migration:
    """One migration script: its revision, the one it follows, its one-line purpose."""

    revision: str
    down_revision: str | None
    doc: str
    head: bool  # the latest
    current: bool  # the one the database is at
    applied: bool  # the current one or one below it


def _down(down_revision: object) -> str | None:
    if down_revision is None or isinstance(down_revision, str):
        return down_revision
    return ", ".join(down_revision)  # type: ignore[arg-type]  # a merge revision


def alembic_config(url: str):  # noqa: ANN201
    from alembic.config import Config  # load order: as in Database.upgrade

    config = Config()
    migrations = resources.files("tally.stores.sql") / "migrations"
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
