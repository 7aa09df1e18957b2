"""Whether a failure of the database is an outage (it cannot serve now: answer 503, retry) or a
bug, for the callers that turn failures into answers."""
from __future__ import annotations

from tally.stores.sql.db import describe, is_unavailable


def database_outage(error: BaseException) -> str | None:
    """What went wrong, in one line, when `error` means the database cannot serve now (down,
    dropped, locked, timed out); None when it is a bug in a statement (IntegrityError, ...)."""
    return describe(error) if is_unavailable(error) else None
