"""Database outages as the callers above the stores see them: which failures mean the database
cannot serve now (answer 503, or serve a last known entry) rather than a bug, and logging one
outage once."""
from __future__ import annotations

import logging
import threading

from sqlalchemy import exc


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database cannot serve now (down, dropped, locked, timed out),
    as opposed to a bug in a statement (IntegrityError, ProgrammingError, ...)."""
    if isinstance(error, (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def describe(error: BaseException) -> str:
    """The first line of a driver error (SQLAlchemy appends the statement and a URL)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Outage:
    """Logs a database outage once when it starts and once when it ends, not per request."""

    def __init__(self, log: logging.Logger, what: str):
        self.log, self.what = log, what
        self.down = False
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        with self._lock:
            first, self.down = not self.down, True
        if first:
            self.log.warning("database unavailable; %s serves its last known entries: %s",
                             self.what, describe(error))

    def recovered(self) -> None:
        with self._lock:
            was, self.down = self.down, False
        if was:
            self.log.info("database reachable again; %s reads it again", self.what)
