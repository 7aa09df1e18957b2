"""The filters every tenant gets, the demo tenant's custom filters, and what feeds `summary`.

Ids follow the ticket-count API document where it names them (statuses, Critical/High/Medium,
Assigned to Me, My Team). The rest are ours, reusing ids from the document's example request
that it never names: 4362 Low, 7473 Unassigned, 5932 Created Today, 6358 Due Today,
7440 Overdue, 7474 SLA Breached, 7475 SLA At Risk. Every definition is written in the same
condition language as custom filters, so one evaluator (and one counter scheme) serves both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from tally.core.conditions import Definition, parse_definition
from tally.core.model import CLOSED_STATUSES, OPEN_STATUSES

ALL = "all"
SYSTEM_TYPES = ("system", "status", "priority", "assignment", "team", "time", "sla")


@dataclass(frozen=True)
class FilterSpec:
    """A filter as provisioned: id, name, sidebar type, optional color and its definition."""

    id: str
    name: str
    type: str
    color: str | None
    definition: Definition

    @property
    def conditions(self) -> dict[str, Any]:
        """The definition as JSON, as GET /filters shows it."""
        return self.definition.to_obj()

    def details(self) -> dict[str, Any]:
        """The `filterDetails` entry: id, name, type and color where it has one."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.color is not None:
            out["color"] = self.color
        return out


def _open(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"all": [{"field": "status", "op": "in", "value": list(OPEN_STATUSES)}, *conditions]}


def _eq(field: str, value: Any) -> dict[str, Any]:
    return {"all": [{"field": field, "op": "eq", "value": value}]}


def _spec(id_: str, name: str, type_: str, color: str | None, obj: dict) -> FilterSpec:
    return FilterSpec(id_, name, type_, color, parse_definition(obj, path=f"filter {id_}"))


SYSTEM_FILTERS: tuple[FilterSpec, ...] = (
    _spec(ALL, "All Tickets", "system", None, {"all": []}),
    _spec("3745", "Open", "status", "#3B82F6", _eq("status", "open")),
    _spec("3747", "In Progress", "status", "#F59E0B", _eq("status", "in_progress")),
    _spec("3749", "Pending", "status", "#8B5CF6", _eq("status", "pending")),
    _spec("3746", "Resolved", "status", "#10B981", _eq("status", "resolved")),
    _spec("3748", "Closed", "status", "#6B7280", _eq("status", "closed")),
    _spec("3750", "Cancelled", "status", "#EF4444", _eq("status", "cancelled")),
    _spec("4195", "Critical", "priority", "#DC2626", _eq("priority", "critical")),
    _spec("4196", "High", "priority", "#F97316", _eq("priority", "high")),
    _spec("4197", "Medium", "priority", "#EAB308", _eq("priority", "medium")),
    # The document gives Low no color; green completes its red/orange/yellow scale.
    _spec("4362", "Low", "priority", "#22C55E", _eq("priority", "low")),
    _spec("7471", "Assigned to Me", "assignment", None,
          _open({"field": "assigneeId", "op": "eq", "value": "$me"})),
    _spec("7473", "Unassigned", "assignment", None,
          _open({"field": "assigneeId", "op": "is_null"})),
    _spec("7472", "My Team", "team", None,
          _open({"field": "teamId", "op": "in", "value": "$myTeams"})),
    _spec("5932", "Created Today", "time", None,
          {"all": [{"field": "createdAt", "op": "today"}]}),
    _spec("6358", "Due Today", "time", None, _open({"field": "dueAt", "op": "today"})),
    _spec("7440", "Overdue", "time", None, _open({"field": "dueAt", "op": "before_now"})),
    _spec("7474", "SLA Breached", "sla", None,
          _open({"field": "slaDueAt", "op": "before_now"})),
    _spec("7475", "SLA At Risk", "sla", None,
          _open({"field": "slaDueAt", "op": "within_next", "value": "1h"})),
)
SYSTEM_BY_ID: Mapping[str, FilterSpec] = {spec.id: spec for spec in SYSTEM_FILTERS}

# Summary-only filters: counted like any filter but never listed nor requestable by id.
TOTAL_OPEN, TOTAL_CLOSED = "_open", "_closed"
INTERNAL_FILTERS: tuple[FilterSpec, ...] = (
    _spec(TOTAL_OPEN, "Open (all open statuses)", "system", None, _open()),
    _spec(TOTAL_CLOSED, "Closed (all closed statuses)", "system", None,
          {"all": [{"field": "status", "op": "in", "value": list(CLOSED_STATUSES)}]}),
)
# summary key -> the filter id whose count it reports (same visibility, profile, support flag).
SUMMARY_FILTER_IDS: Mapping[str, str] = {"totalOpen": TOTAL_OPEN, "totalClosed": TOTAL_CLOSED,
                                         "slaBreached": "7474", "dueToday": "6358",
                                         "overdue": "7440"}
SUMMARY_FILTERS: Mapping[str, FilterSpec] = {
    key: SYSTEM_BY_ID.get(fid) or next(s for s in INTERNAL_FILTERS if s.id == fid)
    for key, fid in SUMMARY_FILTER_IDS.items()}

# The demo tenant's custom filters, ids from the API document; shared so every demo user sees them.
DEMO_FILTERS: tuple[FilterSpec, ...] = (
    _spec("a7069dca-b9b1-4bf5-9a41-20dd75bf6f62", "VIP Customers", "custom", None,
          {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}),
    _spec("01a12ac1-8f14-4600-a4ee-c930ee4057bf", "SLA Breached", "custom", None,
          _open({"field": "slaDueAt", "op": "before_now"})),
    _spec("004ce44d-b69d-4acb-becd-78c3359e0002", "Unassigned > 24h", "custom", None,
          _open({"field": "assigneeId", "op": "is_null"},
                {"field": "createdAt", "op": "older_than", "value": "24h"})),
)


def is_system_id(filter_id: str) -> bool:
    """True for the ids of the public system catalogue (internal summary ids excluded)."""
    return filter_id in SYSTEM_BY_ID
