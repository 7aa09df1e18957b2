"""The injected clock of soak runs: "now" is the epoch seconds a driver writes into a file.

Every app built with CLOCK_FILE set (TALLY_CLOCK_FILE) gets a FileClock as `services.clock`
(tally.dev.plugin), so the web app, the worker process and CLI commands of one run all read the
same simulated time, and the driver moves it with `set_time`. Nothing else changes: wall time
still drives timeouts, token expiry and job budgets. Refused when TALLY_ENV=production.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone

from tally.errors import ConfigError


class FileClock:
    """A services.clock reading the epoch seconds in `path` on every call (a driver moves it)."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self) -> datetime:
        try:
            with open(self.path) as handle:
                text = handle.read()
            return datetime.fromtimestamp(float(text), tz=timezone.utc)
        except (OSError, ValueError) as error:
            # A run whose clock file is gone must stop, not quietly count with the wall clock.
            raise ConfigError(f"TALLY_CLOCK_FILE {self.path!r} holds no epoch seconds: "
                              f"{error}") from None


def set_time(path: str, epoch_s: float) -> None:
    """Write `epoch_s` as every FileClock on `path` will read it (whole: written, then renamed)."""
    scratch = f"{path}.{os.getpid()}.tmp"
    with open(scratch, "w") as handle:
        handle.write(repr(float(epoch_s)))
    os.replace(scratch, path)


def install(services: object, env: str, path: str) -> None:
    """Make `services.clock` read `path` (the app's CLOCK_FILE); refused in production."""
    if env == "production":
        raise ConfigError("TALLY_CLOCK_FILE is for development and tests: it is refused when "
                          "TALLY_ENV=production")
    setattr(services, "clock", FileClock(path))
