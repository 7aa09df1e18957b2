"""A counter family: one kind of counter group of a tenant (per-user notification hashes, ticket
cells), with how to drop, list, rebuild and compare it, and a difference verify reports."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from tally.services.container import Services


@dataclass(frozen=True)
class Difference:
    """One field of one counter group whose Redis value differs from SQL."""

    family: str
    member: str
    field: str
    redis: object
    sql: object

    @property
    def line(self) -> str:
        return f"{self.family} {self.member}: {self.field} redis={self.redis} sql={self.sql}"


@dataclass(frozen=True)
class CounterFamily:
    """How to drop, list, rebuild and compare one kind of counter group of a tenant."""

    name: str
    invalidate: Callable[["Services", str, str | None, str | None], int]
    members: Callable[["Services", str], list[str]]
    rebuild: Callable[["Services", str, str], bool]
    compare: Callable[["Services", str, str], list[Difference]]
    warm: Callable[["Services", str], list[str]]  # the members warm in Redis right now
    has_filters: bool = False  # whether `invalidate --filter` can name this family's groups
