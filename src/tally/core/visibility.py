"""Who sees which tickets (contract §5), expressed as sums of scope-bucket counters.

Every live ticket is counted in these buckets (design.md, "Counters"):

    all                       the whole tenant
    team:<t>                  teamId = t
    asg:<a>                   assigneeId = a
    asgteam:<len(a)>:<a>|<t>  assigneeId = a and teamId = t
    req:<r>                   requesterId = r

and, when `isSupportRequest` is true, once more under the same names prefixed `sr:`, so the
`issupportrequest: true` narrowing is a bucket choice too. A null id puts the ticket in no bucket
of that kind. The assignee's length prefix keeps `asgteam` names unambiguous although ids may
hold `|` (e.g. `auth0|123`). A view is then `Σ add − Σ subtract` over buckets:

    admin (ticket_admin)   all
    agent   Σ team:t (t ∈ teams) + asg:me − Σ asgteam:me|t (t ∈ teams)   = |A ∪ T|, exact
    user    req:me

A ticket_service token counts nothing (contract §2): it holds no view.

A filter conjunct that names only the caller — `assigneeId = $me` (A), `teamId ∈ $myTeams` (T),
`requesterId = $me` (R) — is a bucket choice too (`Scope.plan`): the view ∩ the conjuncts is

    admin     A: asg:me   T: Σ team:t   A∧T: Σ asgteam:me|t   R: req:me
    agent     A: asg:me   T: Σ team:t   A∧T: Σ asgteam:me|t   (A ∪ T ⊇ each of them)
    user      R: req:me

so every caller can share one materialised predicate without them (core/predicates.py). What
no bucket sum says exactly (an agent's or a user's R with anything else, a user's A or T, R with
A or T, T for a caller of no team) stays in the caller's own predicate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from tally.core.model import COUNT_ROLES, Principal
from tally.errors import VisibilityDenied

VIEW_TYPES = ("user", "agent", "template")
SUPPORT_PREFIX = "sr:"


@dataclass(frozen=True)
class CountPlan:
    """Buckets whose counters give a view's count as Σ add − Σ subtract."""

    add: tuple[str, ...]
    subtract: tuple[str, ...] = ()

    @property
    def buckets(self) -> tuple[str, ...]:
        """Every bucket the plan reads, in a stable order (one MGET)."""
        return self.add + self.subtract

    def evaluate(self, counts: Mapping[str, int]) -> int:
        """Apply the plan to bucket counts; a missing bucket counts 0."""
        return (sum(counts.get(b, 0) for b in self.add)
                - sum(counts.get(b, 0) for b in self.subtract))


def team_bucket(team: str) -> str:
    return f"team:{team}"


def assignee_bucket(assignee: str) -> str:
    return f"asg:{assignee}"


def assignee_team_bucket(assignee: str, team: str) -> str:
    return f"asgteam:{len(assignee)}:{assignee}|{team}"


def requester_bucket(requester: str) -> str:
    return f"req:{requester}"


def ticket_buckets(ticket: Mapping[str, Any]) -> list[str]:
    """The buckets a live ticket is counted in (support variants included)."""
    team, assignee = ticket.get("teamId"), ticket.get("assigneeId")
    requester = ticket.get("requesterId")
    names = ["all"]
    if team is not None:
        names.append(team_bucket(team))
    if assignee is not None:
        names.append(assignee_bucket(assignee))
        if team is not None:
            names.append(assignee_team_bucket(assignee, team))
    if requester is not None:
        names.append(requester_bucket(requester))
    if ticket.get("isSupportRequest"):
        names += [SUPPORT_PREFIX + name for name in names]
    return names


def view_of(principal: Principal, view_type: str) -> str:
    """Resolve a request `type` to the view it grants: 'admin', 'agent' or 'user'."""
    if view_type not in VIEW_TYPES:
        raise ValueError(f"type must be one of {', '.join(VIEW_TYPES)}, not {view_type!r}")
    if not principal.has_any(*COUNT_ROLES):
        raise VisibilityDenied("Counting needs the ticket_user, ticket_agent or ticket_admin role")
    if view_type == "user":
        return "user"
    if principal.has_any("ticket_admin"):
        return "admin"
    if principal.has_any("ticket_agent"):
        return "agent"
    if view_type == "agent":
        raise VisibilityDenied("type=agent needs the ticket_agent or ticket_admin role")
    return "user"  # template: a ticket_user's widest view is its own tickets


# The conjuncts a bucket sum can say for the caller (core/predicates.caller_conjuncts).
ASSIGNEE, TEAMS, REQUESTER = "assignee", "teams", "requester"
_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Scope:
    """A caller's view as the ids its bucket plans are made of: `view` is admin, agent or user."""

    view: str
    me: str
    teams: tuple[str, ...]
    support_only: bool = False

    def plan(self, caller: frozenset[str] = _NOTHING) -> CountPlan | None:
        """The buckets of the view ∩ the `caller` conjuncts (ASSIGNEE, TEAMS, REQUESTER), or
        None when no bucket sum is exactly that set (the conjuncts then stay in the predicate)."""
        me, teams = self.me, self.teams
        add: list[str]
        subtract: list[str] = []
        if not caller:
            if self.view == "admin":
                add = ["all"]
            elif self.view == "user":
                add = [requester_bucket(me)]
            else:  # A ∪ T = A + T − A ∩ T
                add = [team_bucket(t) for t in teams] + [assignee_bucket(me)]
                subtract = [assignee_team_bucket(me, t) for t in teams]
        elif REQUESTER in caller:  # no bucket names a requester with anything else
            if caller != {REQUESTER} or self.view == "agent":
                return None
            add = [requester_bucket(me)]  # admin: all ∩ R; user: R ∩ R
        elif self.view == "user" or (TEAMS in caller and not teams):
            return None  # R ∩ A and R ∩ T have no bucket; T of no team: the predicate says 0
        elif caller == {ASSIGNEE}:
            add = [assignee_bucket(me)]  # admin: all ∩ A; agent: (A ∪ T) ∩ A
        elif caller == {TEAMS}:
            add = [team_bucket(t) for t in teams]  # team buckets are disjoint
        else:  # A ∩ T
            add = [assignee_team_bucket(me, t) for t in teams]
        prefix = SUPPORT_PREFIX if self.support_only else ""
        return CountPlan(tuple(prefix + b for b in add), tuple(prefix + b for b in subtract))


def scope(principal: Principal, view_type: str, support_only: bool = False) -> Scope:
    """What `principal` sees under `view_type` (and the support narrowing), as a Scope."""
    teams = tuple(dict.fromkeys(principal.teams))  # a repeated team must not count twice
    return Scope(view_of(principal, view_type), principal.user_id, teams, support_only)


def plan(principal: Principal, view_type: str, support_only: bool = False) -> CountPlan:
    """The bucket plan for what `principal` sees under `view_type` (and the support narrowing)."""
    made = scope(principal, view_type, support_only).plan()
    assert made is not None  # a view alone is always a bucket sum
    return made
