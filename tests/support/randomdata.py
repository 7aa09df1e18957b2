"""Seeded random tickets and principals for the counting tests (bounded by count and seed)."""
from __future__ import annotations

import random
from tally.core.model import PRIORITIES, STATUSES, Principal

# Ids with '|' (as in auth0 subjects) make sure bucket names stay unambiguous.
USERS = ("u0", "u1", "auth0|u2", "u3", "u4", "u5", "auth0", "u2")
TEAMS = ("t0", "t1", "t2", "t|3", "t4")
TAGS = ("vip", "billing", "bug", "urgent")
HOUR = 3_600_000


def random_tickets(seed: int, n: int, now_ms: int, spread_ms: int = 72 * HOUR) -> list[dict]:
    """n tickets whose timestamps fall within ±spread of now; about 1 in 4 ids are null."""
    rng = random.Random(seed)

    def maybe(pool: tuple[str, ...], null: float = 0.25) -> str | None:
        return None if rng.random() < null else rng.choice(pool)

    def stamp(null: float) -> int | None:
        return None if rng.random() < null else now_ms + rng.randint(-spread_ms, spread_ms)

    return [{
        "id": f"T{i}", "version": 1, "deleted": rng.random() < 0.05,
        "status": rng.choice(STATUSES), "priority": rng.choice(PRIORITIES),
        "teamId": maybe(TEAMS), "assigneeId": maybe(USERS), "requesterId": maybe(USERS, 0.1),
        "category": maybe(("hardware", "software", "access")),
        "tags": rng.sample(TAGS, rng.randint(0, 2)), "isSupportRequest": rng.random() < 0.4,
        "createdAt": stamp(0.0), "dueAt": stamp(0.3), "slaDueAt": stamp(0.3),
    } for i in range(n)]


def principals() -> list[Principal]:
    """Several callers per role, with no team, one team, many teams and a repeated team."""
    made = []
    for user in USERS[:5]:
        made.append(Principal(user, "tenant", "realm", frozenset({"ticket_user"})))
    for user, teams in (("u0", ()), ("u1", ("t0",)), ("auth0|u2", ("t|3", "t1")),
                        ("u3", ("t0", "t1", "t2", "t4")), ("u4", ("t2", "t2")),
                        ("nobody", ("t0",))):
        made.append(Principal(user, "tenant", "realm", frozenset({"ticket_agent"}), teams))
    made.append(Principal("u5", "tenant", "realm", frozenset({"ticket_admin"}), ("t0",)))
    # A service token counts only with a counting role beside it (contract §2): then as admin.
    made.append(Principal("svc", "tenant", "realm", frozenset({"ticket_service", "ticket_admin"})))
    made.append(Principal("u1", "tenant", "realm",
                          frozenset({"ticket_user", "ticket_agent"}), ("t4",)))
    return made
