"""The filter condition language of contract §5: parse, validate and evaluate a definition.

A definition is `{"all" | "any": [node, ...]}`; a node is a condition `{"field", "op", "value"}` or
a nested group. At most one time condition, only at the top level of an `all`, is split off into
`Definition.time_condition`; the rest is the static part that `static_matches` evaluates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Mapping, Union
from zoneinfo import ZoneInfo

from tally.core.model import PRIORITIES, STATUSES, Principal
from tally.errors import DefinitionError

ME, MY_TEAMS = "$me", "$myTeams"
FIELD_KINDS = {"status": "status", "priority": "priority", "teamId": "id", "assigneeId": "id",
               "requesterId": "id", "category": "text", "tags": "tags",
               "isSupportRequest": "bool", "createdAt": "time", "dueAt": "time",
               "slaDueAt": "time"}
STATIC_OPS = ("eq", "ne", "in", "not_in", "is_null", "not_null", "contains")
TIME_OPS = ("today", "before_now", "within_next", "within_last", "older_than")
DURATION_OPS = ("within_next", "within_last", "older_than")
_OPS_BY_KIND = {"tags": ("contains",), "time": ("is_null", "not_null") + TIME_OPS}
_SCALAR_OPS = ("eq", "ne", "in", "not_in", "is_null", "not_null")
_PLACEHOLDERS = {"assigneeId": (ME,), "requesterId": (ME,), "teamId": (MY_TEAMS,)}
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d{1,10})([smhd])$")
MAX_DURATION_SECONDS = 3650 * 86400
MAX_DEPTH, MAX_CONDITIONS, MAX_LIST, MAX_TEXT = 5, 100, 500, 256
NEG_INF = float("-inf")
# How far below now "today" can start: local midnight is under 25 h back in any zone (a DST day
# is 25 h long); two days leave room for any zone rule.
TODAY_REACH_MS = 2 * 86_400_000


@dataclass(frozen=True)
class Condition:
    """One static test of a ticket field; `value` is a scalar, a tuple (in/not_in) or None."""

    field: str
    op: str
    value: Any = None

    def matches(self, ticket: Mapping[str, Any], principal: Principal | None) -> bool:
        actual = ticket.get(self.field)
        if self.op == "contains":
            return self.value in (actual or ())
        if self.op in ("is_null", "not_null"):
            return (actual is None) == (self.op == "is_null")
        wanted = _resolve(self.value if self.op in ("in", "not_in") else (self.value,), principal)
        hit = actual is not None and actual in wanted  # null is distinct from every value
        return hit if self.op in ("eq", "in") else not hit

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"field": self.field, "op": self.op}
        if self.value is not None:
            obj["value"] = list(self.value) if isinstance(self.value, tuple) else self.value
        return obj


@dataclass(frozen=True)
class Group:
    """`all` (true when every item is; an empty `all` is true) or `any` of its items."""

    mode: str
    items: tuple[Union["Group", Condition], ...] = ()

    def matches(self, ticket: Mapping[str, Any], principal: Principal | None) -> bool:
        test = all if self.mode == "all" else any
        return test(item.matches(ticket, principal) for item in self.items)

    def to_obj(self) -> dict[str, Any]:
        return {self.mode: [item.to_obj() for item in self.items]}


@dataclass(frozen=True)
class TimeCondition:
    """A window relative to now on createdAt, dueAt or slaDueAt; `seconds` for duration kinds."""

    field: str
    kind: str
    seconds: int | None = None

    def window(self, now_ms: int, tz: str | tzinfo | None = None) -> tuple[float, float]:
        """Half-open [lo, hi) in epoch ms; an unbounded lower end is NEG_INF."""
        span = (self.seconds or 0) * 1000
        if self.kind == "today":
            return local_day(now_ms, tz)
        if self.kind == "before_now":
            return NEG_INF, now_ms
        if self.kind == "within_next":
            return now_ms, now_ms + span
        if self.kind == "within_last":
            return now_ms - span, now_ms
        return NEG_INF, now_ms - span  # older_than

    @property
    def reach_ms(self) -> int:
        """How far below now this window's lowest finite bound can be (ms): with an unbounded
        lower end, its upper end. Members scored below `now - reach` never enter it again
        except as part of a -inf window's floor (core/cells.py `answerable`)."""
        if self.kind == "today":
            return TODAY_REACH_MS
        if self.kind in ("within_last", "older_than"):
            return (self.seconds or 0) * 1000
        return 0  # before_now, within_next: nothing below now

    def matches(self, ticket: Mapping[str, Any], now_ms: int,
                tz: str | tzinfo | None = None) -> bool:
        value = ticket.get(self.field)
        if value is None:
            return False  # a null timestamp matches no window
        lo, hi = self.window(now_ms, tz)
        return lo <= value < hi

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"field": self.field, "op": self.kind}
        if self.seconds is not None:
            obj["value"] = format_duration(self.seconds)
        return obj


@dataclass(frozen=True)
class Definition:
    """A parsed filter: the static part `root` and at most one time condition."""

    root: Group
    time_condition: TimeCondition | None = None

    def static_matches(self, ticket: Mapping[str, Any], principal: Principal | None) -> bool:
        return self.root.matches(ticket, principal)

    def matches(self, ticket: Mapping[str, Any], principal: Principal | None, now_ms: int,
                tz: str | tzinfo | None = None) -> bool:
        """The whole filter, time condition included."""
        if not self.static_matches(ticket, principal):
            return False
        return self.time_condition is None or self.time_condition.matches(ticket, now_ms, tz)

    @property
    def placeholders(self) -> frozenset[str]:
        """`$me` / `$myTeams` used anywhere: such a filter's count depends on the caller."""
        return frozenset(_placeholders_in(self.root))

    def check_profile(self, path: str = "templateProfileFilterId") -> "Definition":
        """Return self if usable as a template profile, else raise DefinitionError."""
        if self.time_condition is not None:
            raise DefinitionError(
                f"a filter used as a template profile may not hold a time condition "
                f"({self.time_condition.field} {self.time_condition.kind})", path)
        return self

    def to_obj(self, include_time: bool = True) -> dict[str, Any]:
        """Canonical JSON form; the time condition comes last in the top-level `all`."""
        obj = self.root.to_obj()
        if include_time and self.time_condition is not None:
            obj["all"].append(self.time_condition.to_obj())
        return obj


def parse_definition(obj: Any, *, as_profile: bool = False,
                     path: str = "conditions") -> Definition:
    """Validate a JSON definition and return it parsed, or raise DefinitionError."""
    state = {"leaves": 0, "time": None, "time_path": None}
    root = _parse_group(obj, path, 1, state)
    definition = Definition(root, state["time"])
    return definition.check_profile(path) if as_profile else definition


# Per zone, the last local day worked out in it. Bounded by something finite: a key is stored
# only after as_zone accepted it (an IANA name, ~600 of them, or a tzinfo the code passes), and
# the 1,024 cap below; not an app Cache because core's window maths has no app to ask.
_DAYS: dict[Any, tuple[int, int]] = {}


def local_day(now_ms: int, tz: str | tzinfo | None = None) -> tuple[int, int]:
    """[local midnight, next local midnight) around now in epoch ms (23 or 25 h on DST days).

    Local midnights increase day by day, so the days tile time: a `now` within the last day
    worked out for the zone is in that day, and the zone's rules are not consulted again until
    the next midnight (a read asks for "today" in its zone every few seconds)."""
    day = _DAYS.get(tz)
    if day is not None and day[0] <= now_ms < day[1]:
        return day
    zone = as_zone(tz)
    today = datetime.fromtimestamp(now_ms // 1000, zone).date()

    def midnight(day) -> int:  # fold=0: a skipped midnight maps to the transition instant
        return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * 1000

    day = midnight(today), midnight(today + timedelta(days=1))
    if len(_DAYS) >= 1024:  # zones are few; bounded all the same
        _DAYS.clear()
    _DAYS[tz] = day
    return day


def as_zone(tz: str | tzinfo | None) -> tzinfo:
    """An IANA name (or tzinfo, or None for UTC) as a tzinfo; unknown names raise ValueError."""
    if tz is None:
        return timezone.utc
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown timezone {tz!r}") from exc


def parse_duration(text: Any, path: str = "value") -> int:
    """Seconds in a duration like `90s`, `30m`, `24h`, `7d` (positive, at most 3650d)."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise DefinitionError(f"{text!r} is not a duration: an integer and a unit s, m, h or d, "
                              f"e.g. '30m' or '24h'", path)
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        raise DefinitionError(f"{text!r} must be more than 0 and at most 3650d", path)
    return seconds


def format_duration(seconds: int) -> str:
    """The largest exact unit: 86400 → '1d', 5400 → '90m'."""
    for unit in "dhm":
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def _resolve(values: tuple, principal: Principal | None) -> frozenset:
    out: set = set()
    for value in values:
        if value == ME:
            out.update((principal.user_id,) if principal else ())
        elif value == MY_TEAMS:
            out.update(principal.teams if principal else ())
        else:
            out.add(value)
    return frozenset(out)


def _placeholders_in(node: Group | Condition) -> set[str]:
    if isinstance(node, Group):
        return set().union(*(_placeholders_in(item) for item in node.items))
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    return {v for v in values if v in (ME, MY_TEAMS)}


def _parse_group(obj: Any, path: str, depth: int, state: dict) -> Group:
    if not isinstance(obj, dict) or len(obj) != 1 or next(iter(obj)) not in ("all", "any"):
        raise DefinitionError('must be an object with exactly one key, "all" or "any", '
                              "holding a list of conditions", path)
    (mode, items), = obj.items()
    path = f"{path}.{mode}"
    if not isinstance(items, list):
        raise DefinitionError("must be a list of conditions or groups", path)
    if depth > MAX_DEPTH:
        raise DefinitionError(f"groups may nest at most {MAX_DEPTH} deep", path)
    if mode == "any" and not items:
        raise DefinitionError('an empty "any" matches no ticket; add a condition', path)
    parsed: list[Group | Condition] = []
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]"
        if isinstance(item, dict) and ("all" in item or "any" in item) and "field" not in item:
            parsed.append(_parse_group(item, item_path, depth + 1, state))
            continue
        node = _parse_condition(item, item_path, state)
        if isinstance(node, TimeCondition):
            if depth != 1 or mode != "all":
                raise DefinitionError(f"the time condition '{node.kind}' is allowed only at the "
                                      'top level of an "all"', item_path)
            if state["time"] is not None:
                raise DefinitionError(f"only one time condition is allowed; {state['time_path']}"
                                      " already holds one", item_path)
            state["time"], state["time_path"] = node, item_path
        else:
            parsed.append(node)
    return Group(mode, tuple(parsed))


def _parse_condition(item: Any, path: str, state: dict) -> Condition | TimeCondition:
    if not isinstance(item, dict):
        raise DefinitionError('must be a condition {"field", "op", "value"} or a group', path)
    extra = sorted(set(item) - {"field", "op", "value"})
    if extra:
        raise DefinitionError(f"unknown key(s) {', '.join(extra)}; a condition has field, op, "
                              "value", path)
    state["leaves"] += 1
    if state["leaves"] > MAX_CONDITIONS:
        raise DefinitionError(f"a definition may hold at most {MAX_CONDITIONS} conditions", path)
    missing = [key for key in ("field", "op") if key not in item]
    if missing:
        raise DefinitionError(f"a condition needs {' and '.join(missing)}", path)
    field, op, value = item["field"], item["op"], item.get("value")
    if not isinstance(field, str) or field not in FIELD_KINDS:
        raise DefinitionError(f"{field!r} is not one of {', '.join(FIELD_KINDS)}", f"{path}.field")
    if op not in STATIC_OPS + TIME_OPS:
        raise DefinitionError(f"{op!r} is not one of {', '.join(STATIC_OPS + TIME_OPS)}",
                              f"{path}.op")
    kind = FIELD_KINDS[field]
    allowed = _OPS_BY_KIND.get(kind, _SCALAR_OPS)
    if op not in allowed:
        raise DefinitionError(f"{op!r} does not apply to {field}; use one of "
                              f"{', '.join(allowed)}", f"{path}.op")
    value_path = f"{path}.value"
    if op in ("is_null", "not_null", "today", "before_now"):
        if value is not None:
            raise DefinitionError(f"'{op}' takes no value; omit it or send null", value_path)
        return TimeCondition(field, op) if op in TIME_OPS else Condition(field, op)
    if op in DURATION_OPS:
        return TimeCondition(field, op, parse_duration(value, value_path))
    if op == "contains":
        return Condition(field, op, _scalar(field, "text", value, value_path))
    if op in ("in", "not_in"):
        if isinstance(value, str) and value.startswith("$"):  # a bare placeholder: a list of it
            return Condition(field, op, (_scalar(field, kind, value, value_path, True),))
        if not isinstance(value, list) or not 0 < len(value) <= MAX_LIST:
            raise DefinitionError(f"'{op}' needs a list of 1 to {MAX_LIST} values", value_path)
        return Condition(field, op, tuple(
            _scalar(field, kind, v, f"{value_path}[{i}]", placeholders=True)
            for i, v in enumerate(value)))
    if value == MY_TEAMS and field == "teamId":
        raise DefinitionError(f"$myTeams is a list; use 'in' or 'not_in' instead of '{op}'",
                              value_path)
    return Condition(field, op, _scalar(field, kind, value, value_path, placeholders=True))


def _scalar(field: str, kind: str, value: Any, path: str, placeholders: bool = False) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        allowed = _PLACEHOLDERS.get(field, ()) if placeholders else ()
        if value not in allowed:
            hint = f"use {' or '.join(allowed)}" if allowed else "no placeholder applies here"
            raise DefinitionError(f"{value!r} is not a placeholder for {field}; {hint}", path)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise DefinitionError(f"{field} takes true or false, not {value!r}", path)
        return value
    choices = {"status": STATUSES, "priority": PRIORITIES}.get(kind)
    if choices is not None:
        if value not in choices:
            raise DefinitionError(f"{value!r} is not one of {', '.join(choices)}", path)
        return value
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
        raise DefinitionError(f"{field} takes a string of 1 to {MAX_TEXT} characters, "
                              f"not {value!r}", path)
    return value
