"""The condition language: every 400 reason, null semantics, placeholders and time windows."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tally.core import conditions
from tally.core.conditions import (
    NEG_INF, Condition, Definition, DefinitionError, Group, TimeCondition, as_zone,
    format_duration, local_day, parse_definition, parse_duration)
from tally.core.model import Principal
from tally.errors import ValidationFailed

ME = Principal("bob", "tenant", "realm", frozenset({"ticket_agent"}), ("t1", "t2"))
LONELY = Principal("ann", "tenant", "realm", frozenset({"ticket_agent"}), ())
H = 3_600_000


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def cond(field, op, value=None, **extra):
    obj = {"field": field, "op": op, **extra}
    if value is not None:
        obj["value"] = value
    return obj


def all_of(*items):
    return {"all": list(items)}


def deep(levels: int):
    obj = all_of(cond("status", "eq", "open"))
    for _ in range(levels - 1):
        obj = {"all": [obj]}
    return obj


INVALID = [
    ([], "conditions", '"all" or "any"'),
    ({"all": [], "any": []}, "conditions", '"all" or "any"'),
    ({"every": []}, "conditions", '"all" or "any"'),
    ({"all": {}}, "conditions.all", "must be a list"),
    ({"any": []}, "conditions.any", "empty"),
    (deep(6), "conditions" + ".all[0]" * 5 + ".all", "at most 5 deep"),
    (all_of(5), "conditions.all[0]", "must be a condition"),
    (all_of(cond("status", "eq", "open", extra=1)), "conditions.all[0]", "unknown key(s) extra"),
    (all_of({"field": "status", "value": "open"}), "conditions.all[0]", "needs op"),
    (all_of({"op": "eq"}), "conditions.all[0]", "needs field"),
    (all_of(cond("colour", "eq", "red")), "conditions.all[0].field", "'colour' is not one of"),
    (all_of(cond(["status"], "eq", "x")), "conditions.all[0].field", "is not one of status"),
    (all_of(cond("status", "eq", "open"), cond("status", "gt", 1)), "conditions.all[1].op",
     "'gt' is not one of eq, ne, in, not_in, is_null, not_null, contains, today"),
    (all_of(cond("status", "contains", "open")), "conditions.all[0].op",
     "'contains' does not apply to status"),
    (all_of(cond("tags", "eq", "vip")), "conditions.all[0].op", "use one of contains"),
    (all_of(cond("createdAt", "eq", 5)), "conditions.all[0].op",
     "'eq' does not apply to createdAt"),
    (all_of(cond("status", "today")), "conditions.all[0].op", "'today' does not apply to status"),
    (all_of(cond("teamId", "is_null", "x")), "conditions.all[0].value", "takes no value"),
    (all_of(cond("dueAt", "before_now", "1h")), "conditions.all[0].value", "takes no value"),
    (all_of(cond("status", "eq", "opne")), "conditions.all[0].value", "'opne' is not one of open"),
    (all_of(cond("priority", "ne", "urgent")), "conditions.all[0].value", "is not one of critical"),
    (all_of(cond("status", "in", "open")), "conditions.all[0].value", "needs a list"),
    (all_of(cond("status", "in", [])), "conditions.all[0].value", "needs a list of 1 to 500"),
    (all_of(cond("teamId", "in", ["t"] * 501)), "conditions.all[0].value", "needs a list"),
    (all_of(cond("teamId", "not_in", ["t1", 7])), "conditions.all[0].value[1]", "string of 1 to"),
    (all_of(cond("isSupportRequest", "eq", "true")), "conditions.all[0].value", "true or false"),
    (all_of(cond("category", "eq", "")), "conditions.all[0].value", "string of 1 to 256"),
    (all_of(cond("category", "eq", "x" * 257)), "conditions.all[0].value", "string of 1 to 256"),
    (all_of(cond("assigneeId", "eq", 12)), "conditions.all[0].value", "string of 1 to 256"),
    (all_of(cond("assigneeId", "eq", "$you")), "conditions.all[0].value", "use $me"),
    (all_of(cond("teamId", "eq", "$me")), "conditions.all[0].value", "'$me' is not a placeholder"),
    (all_of(cond("assigneeId", "in", "$myTeams")), "conditions.all[0].value", "use $me"),
    (all_of(cond("category", "eq", "$me")), "conditions.all[0].value", "no placeholder applies"),
    (all_of(cond("teamId", "eq", "$myTeams")), "conditions.all[0].value", "use 'in' or 'not_in'"),
    (all_of(cond("tags", "contains", "$me")), "conditions.all[0].value", "no placeholder"),
    (all_of(cond("tags", "contains", "")), "conditions.all[0].value", "string of 1 to"),
    (all_of(cond("dueAt", "within_next")), "conditions.all[0].value", "None is not a duration"),
    (all_of(cond("dueAt", "within_next", 24)), "conditions.all[0].value", "not a duration"),
    (all_of(cond("dueAt", "within_last", "24")), "conditions.all[0].value", "not a duration"),
    (all_of(cond("dueAt", "older_than", "1w")), "conditions.all[0].value", "unit s, m, h or d"),
    (all_of(cond("dueAt", "older_than", "-1h")), "conditions.all[0].value", "not a duration"),
    (all_of(cond("dueAt", "older_than", "1.5h")), "conditions.all[0].value", "not a duration"),
    (all_of(cond("dueAt", "older_than", " 1h")), "conditions.all[0].value", "not a duration"),
    (all_of(cond("dueAt", "older_than", "0h")), "conditions.all[0].value", "more than 0"),
    (all_of(cond("dueAt", "older_than", "3651d")), "conditions.all[0].value", "at most 3650d"),
    ({"any": [cond("dueAt", "today")]}, "conditions.any[0]", 'top level of an "all"'),
    (all_of({"all": [cond("dueAt", "today")]}), "conditions.all[0].all[0]", "top level"),
    (all_of({"any": [cond("slaDueAt", "before_now"), cond("status", "eq", "open")]}),
     "conditions.all[0].any[0]", "top level"),
    (all_of(cond("dueAt", "today"), cond("status", "eq", "open"), cond("createdAt", "today")),
     "conditions.all[2]", "only one time condition is allowed; conditions.all[0] already"),
    (all_of(*[cond("status", "eq", "open")] * 101), "conditions.all[100]", "at most 100"),
]


@pytest.mark.parametrize("obj, path, reason", INVALID)
def test_invalid_definition_names_path_and_reason(obj, path, reason):
    with pytest.raises(DefinitionError) as caught:
        parse_definition(obj)
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert caught.value.message == f"{path}: {caught.value.reason}"


def test_definition_error_is_a_400_validation_error_with_details():
    with pytest.raises(ValidationFailed) as caught:
        parse_definition(all_of(cond("status", "gt", 1)))
    error = caught.value
    assert (error.code, error.http_status) == ("VALIDATION_ERROR", 400)
    assert error.details == {"path": "conditions.all[0].op", "reason": error.reason}


def test_profile_may_not_hold_a_time_condition():
    obj = all_of(cond("status", "eq", "open"), cond("createdAt", "within_last", "7d"))
    parsed = parse_definition(obj)  # fine as an ordinary filter
    with pytest.raises(DefinitionError) as caught:
        parse_definition(obj, as_profile=True)
    assert caught.value.path == "conditions" and "template profile" in caught.value.reason
    with pytest.raises(DefinitionError) as caught:
        parsed.check_profile()
    assert caught.value.path == "templateProfileFilterId"
    static = parse_definition(all_of(cond("priority", "eq", "high")), as_profile=True)
    assert static.check_profile() is static


def test_depth_five_and_a_hundred_conditions_are_accepted():
    parse_definition(deep(5))
    parse_definition(all_of(*[cond("status", "eq", "open")] * 99, cond("dueAt", "today")))


VALID = [
    {"all": []},
    all_of(cond("status", "in", ["open", "pending"]), cond("assigneeId", "eq", "$me"),
           {"any": [cond("tags", "contains", "vip"), cond("priority", "eq", "critical")]},
           cond("slaDueAt", "within_next", "90m")),
    {"any": [cond("teamId", "in", ["$myTeams", "t9"]), cond("requesterId", "ne", "$me"),
             {"all": [cond("isSupportRequest", "eq", True), cond("category", "not_null")]}]},
    all_of(cond("dueAt", "is_null"), cond("createdAt", "older_than", "24h")),
]


@pytest.mark.parametrize("obj", VALID)
def test_canonical_form_parses_back_to_the_same_definition(obj):
    parsed = parse_definition(obj)
    assert parse_definition(parsed.to_obj()) == parsed


def test_time_condition_is_split_from_the_static_part():
    parsed = parse_definition(all_of(cond("createdAt", "older_than", "24h"),
                                     cond("assigneeId", "is_null")))
    assert parsed.time_condition == TimeCondition("createdAt", "older_than", 86400)
    assert parsed.root == Group("all", (Condition("assigneeId", "is_null"),))
    assert parsed.to_obj()["all"][-1] == {"field": "createdAt", "op": "older_than", "value": "1d"}
    assert parsed.to_obj(include_time=False) == {"all": [{"field": "assigneeId",
                                                          "op": "is_null"}]}


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("24h", 86400),
                                           ("7d", 604800), ("3650d", 3650 * 86400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("seconds, text", [(90, "90s"), (5400, "90m"), (86400, "1d"),
                                           (7200, "2h"), (61, "61s")])
def test_format_duration_uses_the_largest_exact_unit(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


# Null semantics: null is distinct from every value.
@pytest.mark.parametrize("op, value, on_null, on_x, on_y", [
    ("eq", "x", False, True, False),
    ("ne", "x", True, False, True),
    ("in", ["x", "z"], False, True, False),
    ("not_in", ["x", "z"], True, False, True),
    ("is_null", None, True, False, False),
    ("not_null", None, False, True, True),
])
def test_null_semantics(op, value, on_null, on_x, on_y):
    definition = parse_definition(all_of(cond("category", op, value)))
    results = [definition.static_matches({"category": v}, ME) for v in (None, "x", "y")]
    assert results == [on_null, on_x, on_y]
    assert definition.static_matches({}, ME) is on_null  # a missing key is null too


def test_boolean_field_null_is_distinct_from_false():
    is_false = parse_definition(all_of(cond("isSupportRequest", "eq", False)))
    not_true = parse_definition(all_of(cond("isSupportRequest", "ne", True)))
    assert [is_false.static_matches({"isSupportRequest": v}, ME) for v in (False, True, None)] \
        == [True, False, False]
    assert [not_true.static_matches({"isSupportRequest": v}, ME) for v in (False, True, None)] \
        == [True, False, True]


def test_tags_contains_handles_empty_and_null_lists():
    vip = parse_definition(all_of(cond("tags", "contains", "vip")))
    assert [vip.static_matches({"tags": t}, ME) for t in (["a", "vip"], ["vipx"], [], None)] \
        == [True, False, False, False]


def test_me_stands_for_the_caller():
    mine = parse_definition(all_of(cond("assigneeId", "eq", "$me")))
    not_mine = parse_definition(all_of(cond("assigneeId", "ne", "$me")))
    assert mine.static_matches({"assigneeId": "bob"}, ME)
    assert not mine.static_matches({"assigneeId": "ann"}, ME)
    assert mine.static_matches({"assigneeId": "ann"}, LONELY)
    assert not_mine.static_matches({"assigneeId": None}, ME)
    either = parse_definition(all_of(cond("requesterId", "in", ["$me", "carol"])))
    assert [either.static_matches({"requesterId": r}, ME) for r in ("bob", "carol", "ann")] \
        == [True, True, False]
    assert mine.placeholders == {"$me"}


def test_my_teams_stands_for_the_callers_teams():
    mine = parse_definition(all_of(cond("teamId", "in", "$myTeams")))
    others = parse_definition(all_of(cond("teamId", "not_in", "$myTeams")))
    mixed = parse_definition(all_of(cond("teamId", "in", ["$myTeams", "t9"])))
    teams = ("t1", "t2", "t3", "t9", None)
    assert [mine.static_matches({"teamId": t}, ME) for t in teams] == [1, 1, 0, 0, 0]
    assert [others.static_matches({"teamId": t}, ME) for t in teams] == [0, 0, 1, 1, 1]
    assert [mixed.static_matches({"teamId": t}, ME) for t in teams] == [1, 1, 0, 1, 0]
    assert [mine.static_matches({"teamId": t}, LONELY) for t in teams] == [0] * 5
    assert [others.static_matches({"teamId": t}, LONELY) for t in teams] == [1] * 5
    assert mixed.placeholders == {"$myTeams"}


def test_groups_nest_and_an_empty_all_matches_everything():
    definition = parse_definition({"any": [
        all_of(cond("priority", "eq", "critical"), cond("status", "ne", "closed")),
        all_of(cond("tags", "contains", "vip"))]})
    tickets = [{"priority": "critical", "status": "open"},
               {"priority": "critical", "status": "closed"},
               {"priority": "low", "status": "closed", "tags": ["vip"]},
               {"priority": "low", "status": "open", "tags": []}]
    assert [definition.static_matches(t, ME) for t in tickets] == [True, False, True, False]
    assert parse_definition({"all": []}).static_matches({}, ME)
    assert parse_definition({"all": []}).placeholders == frozenset()


# Time windows: the exact local midnights below are hard-coded, not recomputed.
DAYS = [  # zone, local date, its first instant (UTC), hours in that day
    ("UTC", date(2026, 3, 8), "2026-03-08T00:00:00", 24),
    ("Asia/Calcutta", date(2026, 3, 10), "2026-03-09T18:30:00", 24),
    ("America/New_York", date(2026, 3, 8), "2026-03-08T05:00:00", 23),
    ("America/New_York", date(2026, 11, 1), "2026-11-01T04:00:00", 25),
    ("Pacific/Chatham", date(2026, 4, 5), "2026-04-04T10:15:00", 25),
    ("Pacific/Chatham", date(2026, 9, 27), "2026-09-26T11:15:00", 23),
    ("America/Santiago", date(2026, 9, 6), "2026-09-06T04:00:00", 23),  # midnight is skipped
]


@pytest.mark.parametrize("zone, day, start, hours", DAYS)
def test_today_is_local_midnight_to_next_local_midnight(zone, day, start, hours):
    lo = utc_ms(start)
    hi = lo + hours * H
    for now in (lo, lo + 1, lo + hours * H // 2, hi - 1):
        assert local_day(now, zone) == (lo, hi)
        assert TimeCondition("createdAt", "today").window(now, zone) == (lo, hi)
    assert local_day(lo - 1, zone)[1] == lo
    assert local_day(hi, zone)[0] == hi


@pytest.mark.parametrize("zone, day, start, hours", DAYS)
def test_created_today_flips_exactly_at_local_midnight(zone, day, start, hours):
    created_today = parse_definition(all_of(cond("createdAt", "today")))
    midnight = utc_ms(start)
    before, at = {"createdAt": midnight - 1}, {"createdAt": midnight}
    assert created_today.matches(before, ME, midnight - 1, zone)
    assert not created_today.matches(at, ME, midnight - 1, zone)
    assert not created_today.matches(before, ME, midnight, zone)
    assert created_today.matches(at, ME, midnight, zone)
    assert not created_today.matches({"createdAt": None}, ME, midnight, zone)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Pacific/Chatham",
                                  "Asia/Calcutta", "America/Santiago", "Australia/Lord_Howe"])
def test_every_hour_of_2026_lies_in_a_window_of_its_own_local_date(zone):
    tz = ZoneInfo(zone)
    start = utc_ms("2026-01-01T00:00:00")
    for hour in range(366 * 24):
        now = start + hour * H + 1234
        lo, hi = local_day(now, zone)
        today = datetime.fromtimestamp(now / 1000, tz).date()
        assert lo <= now < hi
        assert datetime.fromtimestamp(lo / 1000, tz).date() == today
        assert datetime.fromtimestamp((hi - 1) / 1000, tz).date() == today
        assert datetime.fromtimestamp((lo - 1) / 1000, tz).date() == today - timedelta(days=1)
        assert datetime.fromtimestamp(hi / 1000, tz).date() == today + timedelta(days=1)


@pytest.mark.parametrize("zone", ["America/Santiago", "Australia/Lord_Howe"])
def test_a_day_worked_out_before_answers_only_within_it_in_any_order_of_reads(zone):
    """local_day remembers the last day per zone: walking time backwards, or jumping days
    either way, must never get a remembered day that does not hold `now`."""
    tz = ZoneInfo(zone)
    start = utc_ms("2026-01-01T00:00:00")
    hours = list(range(366 * 24 - 1, -1, -1)) + [5000, 17, 5001, 4999, 17]
    for hour in hours:
        now = start + hour * H + 1234
        lo, hi = local_day(now, zone)
        assert lo <= now < hi
        assert datetime.fromtimestamp(lo / 1000, tz).date() == \
            datetime.fromtimestamp(now / 1000, tz).date()


def test_the_zone_rules_are_consulted_once_a_day(monkeypatch):
    asked = []
    real = conditions.as_zone
    monkeypatch.setattr(conditions, "as_zone", lambda tz: asked.append(tz) or real(tz))
    noon = utc_ms("2031-03-04T06:30:00")  # 12:00 in Asia/Calcutta
    day = local_day(noon, "Asia/Calcutta")
    for now in (noon + 1, noon - 5 * H, day[1] - 1, day[0]):
        assert local_day(now, "Asia/Calcutta") == day
    assert asked == ["Asia/Calcutta"]
    assert local_day(day[1], "Asia/Calcutta") == (day[1], day[1] + 24 * H)
    assert asked == ["Asia/Calcutta"] * 2


def test_windows_are_half_open_as_the_contract_states():
    now = utc_ms("2026-05-01T12:00:00")
    assert TimeCondition("dueAt", "before_now").window(now) == (NEG_INF, now)
    assert TimeCondition("dueAt", "within_next", 3600).window(now) == (now, now + H)
    assert TimeCondition("dueAt", "within_last", 3600).window(now) == (now - H, now)
    assert TimeCondition("dueAt", "older_than", 3600).window(now) == (NEG_INF, now - H)


# (condition, the timestamp, the first `now` at which it matches, the first at which it stops)
@pytest.mark.parametrize("obj, first, last", [
    (cond("dueAt", "before_now"), 1, None),                  # overdue once now > dueAt
    (cond("slaDueAt", "within_next", "1h"), -H + 1, 1),      # at risk: now ≤ sla < now + 1h
    (cond("slaDueAt", "within_last", "1h"), 1, H + 1),       # now − 1h ≤ sla < now
    (cond("createdAt", "older_than", "24h"), 24 * H + 1, None),
])
def test_relative_windows_flip_exactly_at_their_boundary(obj, first, last):
    stamp = utc_ms("2026-03-08T06:59:59") + 123
    definition = parse_definition(all_of(cond("status", "eq", "open"), obj))
    ticket = {"status": "open", obj["field"]: stamp}

    def hit(now: int) -> bool:
        return definition.matches(ticket, ME, now, "America/New_York")

    assert not hit(stamp + first - 1) and hit(stamp + first)
    if last is not None:
        assert hit(stamp + last - 1) and not hit(stamp + last)
    assert not definition.matches({"status": "open", obj["field"]: None}, ME, stamp + first,
                                  "America/New_York")
    assert not definition.matches({"status": "closed", obj["field"]: stamp}, ME,
                                  stamp + first, "America/New_York")


def test_due_today_walks_across_a_dst_midnight():
    due_today = parse_definition(all_of(cond("dueAt", "today")))
    midnight = utc_ms("2026-11-02T05:00:00")  # New York, end of the 25-hour 2026-11-01
    late = {"dueAt": midnight - 1}
    early = {"dueAt": midnight}
    long_ago = {"dueAt": utc_ms("2026-11-01T04:00:00")}  # first instant of 2026-11-01
    assert [due_today.matches(t, ME, midnight - 1, "America/New_York")
            for t in (long_ago, late, early)] == [True, True, False]
    assert [due_today.matches(t, ME, midnight, "America/New_York")
            for t in (long_ago, late, early)] == [False, False, True]


def test_as_zone():
    assert as_zone(None) is timezone.utc
    assert as_zone("Asia/Calcutta") == ZoneInfo("Asia/Calcutta")
    for bad in ("Mars/Olympus", "", "../etc/passwd", "America"):
        with pytest.raises(ValueError):
            as_zone(bad)


def test_definitions_are_frozen_and_hashable():
    parsed = parse_definition(VALID[1])
    assert hash(parsed) == hash(parse_definition(VALID[1]))
    with pytest.raises(AttributeError):
        parsed.root = Group("any")  # type: ignore[misc]
    assert isinstance(parsed, Definition)
