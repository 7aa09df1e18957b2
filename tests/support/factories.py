"""Small factories that put rows straight into SQL for tests."""
from __future__ import annotations

import itertools
from typing import Any

from tally.stores.sql.db import Database
from tally.stores.sql.models import Notification, OutboxRow

_ids = itertools.count(1)
BASE_MS = 1_752_150_896_789  # 2025-07-10T12:34:56.789Z


def notification(db: Database, tenant: str, user: str = "user-1", **fields: Any) -> Notification:
    """Insert one notification; unspecified fields get plausible defaults and a unique id."""
    n = next(_ids)
    values: dict[str, Any] = dict(id=f"n-{n:06d}", type="comment", ticket_id=f"t-{n}",
                                  priority="high", created_at=BASE_MS + n, read=False,
                                  deleted=False)
    values.update(fields)
    values.setdefault("updated_at", values["created_at"])
    row = Notification(tenant_id=tenant, user_id=user, **values)
    with db.write() as session:
        session.add(row)
    return row


def notifications(db: Database, tenant: str, user: str, specs: list[dict[str, Any]]) -> list[str]:
    """Insert one notification per spec; returns their ids."""
    return [notification(db, tenant, user, **spec).id for spec in specs]


def outbox_row(db: Database, tenant: str, group: str, applied_at: int | None = None,
               payload: str = "{}") -> int:
    """Insert one outbox row for a counter group; returns its id."""
    row = OutboxRow(tenant_id=tenant, group_key=group, payload=payload, created_at=BASE_MS,
                    applied_at=applied_at)
    with db.write() as session:
        session.add(row)
        session.flush()
        return int(row.id)


# A mix covering every counted dimension: 2 deleted, 2 read, 4 unread live.
MIX = [
    dict(type="assignment", priority="critical"),
    dict(type="comment", priority="high"),
    dict(type="comment", priority="low"),
    dict(type="slaBreach", priority="high", updated_at=BASE_MS + 5_000),
    dict(type="mention", priority="medium", read=True),
    dict(type="approval", priority="low", read=True),
    dict(type="escalation", priority="critical", deleted=True),
    dict(type="comment", priority="high", deleted=True, read=True, updated_at=BASE_MS + 9_000),
]
