"""Progress of long operator work: report lines always, and a live bar when on a terminal.

A Progress is the `progress` callable the long operations already take (each call is one report
line); `counting(total, label)` adds a one-line bar on stderr that lines are printed above. When
stderr is not a terminal (CI, pipes, log files) there is no bar: only the lines.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

WIDTH = 28
REDRAW_SECONDS = 0.1  # at most this often, so a fast loop does not drown the terminal


class Progress:
    """Report lines through `echo`; draw bars on `stream` when it is a terminal."""

    def __init__(self, echo: Callable[[str], None] = print, stream: TextIO | None = None):
        self.echo = echo
        self.stream = stream if stream is not None and _is_terminal(stream) else None
        self._bar: str = ""
        self._drawn_at = 0.0

    @property
    def live(self) -> bool:
        """True when bars are drawn (a terminal), so per-step lines can be left out."""
        return self.stream is not None

    def __call__(self, line: str) -> None:
        """One report line (above the bar, which is drawn again below it)."""
        self._erase()
        self.echo(line)
        self._draw(force=True)

    @contextmanager
    def counting(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        """A bar from 0 to `total`; yields `advance(n=1)`."""
        done = 0

        def advance(n: int = 1) -> None:
            nonlocal done
            done = min(total, done + n)
            self._bar = _render(label, done, total)
            self._draw(force=done == total)

        self._bar = _render(label, 0, total)
        self._draw(force=True)
        try:
            yield advance
        finally:
            self._erase()
            self._bar = ""

    def _draw(self, force: bool = False) -> None:
        if self.stream is None or not self._bar:
            return
        now = time.monotonic()
        if force or now - self._drawn_at >= REDRAW_SECONDS:
            self.stream.write("\r\x1b[K" + self._bar)
            self.stream.flush()
            self._drawn_at = now

    def _erase(self) -> None:
        if self.stream is not None and self._bar:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _render(label: str, done: int, total: int) -> str:
    share = done / total if total else 1.0
    filled = int(WIDTH * share)
    return f"{label} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total} ({share:.0%})"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal(echo: Callable[[str], None] = print) -> Progress:
    """Lines through `echo`, bars on stderr if that is a terminal."""
    return Progress(echo, sys.stderr)
