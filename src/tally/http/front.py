"""STUB (replaced by the observability branch's front.py at merge)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    route: str
    source: str | None
