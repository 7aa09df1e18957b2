"""Scope buckets and count plans: Σ add − Σ subtract equals the tickets a caller may see."""
from __future__ import annotations

from collections import Counter

import pytest

from tests.support import oracle
from tally.core.model import Principal
from tally.core.visibility import (
    ASSIGNEE, REQUESTER, TEAMS, CountPlan, VisibilityDenied, assignee_team_bucket, plan, scope,
    ticket_buckets, view_of)
from tests.support.randomdata import principals, random_tickets


def who(user="bob", *roles, teams=()):
    return Principal(user, "tenant", "realm", frozenset(roles), tuple(teams))


def test_ticket_buckets_name_every_scope_once():
    ticket = {"teamId": "t1", "assigneeId": "bob", "requesterId": "ann",
              "isSupportRequest": False}
    assert ticket_buckets(ticket) == ["all", "team:t1", "asg:bob", "asgteam:3:bob|t1", "req:ann"]


def test_null_ids_put_a_ticket_in_no_bucket_of_that_kind():
    assert ticket_buckets({"teamId": None, "assigneeId": "bob", "requesterId": None}) \
        == ["all", "asg:bob"]
    assert ticket_buckets({"teamId": "t1", "assigneeId": None, "requesterId": "ann"}) \
        == ["all", "team:t1", "req:ann"]


def test_support_requests_are_counted_again_under_sr_prefix():
    names = ticket_buckets({"teamId": "t1", "assigneeId": "bob", "requesterId": "ann",
                            "isSupportRequest": True})
    plain = ["all", "team:t1", "asg:bob", "asgteam:3:bob|t1", "req:ann"]
    assert names == plain + ["sr:" + n for n in plain]
    assert len(set(names)) == len(names)


def test_assignee_team_names_stay_unambiguous_when_ids_hold_a_bar():
    assert assignee_team_bucket("auth0|b", "c") != assignee_team_bucket("auth0", "b|c")


@pytest.mark.parametrize("roles, view_type, expected", [
    (("ticket_user",), "user", "user"), (("ticket_user",), "template", "user"),
    (("ticket_agent",), "agent", "agent"), (("ticket_agent",), "template", "agent"),
    (("ticket_agent",), "user", "user"),
    (("ticket_admin",), "agent", "admin"), (("ticket_admin",), "template", "admin"),
    (("ticket_admin",), "user", "user"),
    (("ticket_service", "ticket_user"), "template", "user"),
    (("ticket_service", "ticket_agent"), "agent", "agent"),
    (("ticket_user", "ticket_agent"), "template", "agent"),
    (("ticket_agent", "ticket_admin"), "agent", "admin"),
])
def test_view_of_each_role_and_type(roles, view_type, expected):
    assert view_of(who("bob", *roles), view_type) == expected


@pytest.mark.parametrize("roles, view_type", [
    (("ticket_user",), "agent"), ((), "user"), (("other",), "template"),
    (("ticket_service",), "user"), (("ticket_service",), "agent"),
    (("ticket_service",), "template")])
def test_views_beyond_the_callers_roles_are_denied(roles, view_type):
    with pytest.raises(VisibilityDenied) as caught:
        plan(who("bob", *roles), view_type)
    assert (caught.value.code, caught.value.http_status) == ("FORBIDDEN", 403)


def test_unknown_type_is_a_value_error():
    with pytest.raises(ValueError):
        plan(who("bob", "ticket_admin"), "everyone")


def test_plans_per_view():
    assert plan(who("bob", "ticket_admin"), "template") == CountPlan(("all",))
    assert plan(who("bob", "ticket_user"), "template") == CountPlan(("req:bob",))
    assert plan(who("bob", "ticket_agent", teams=["t1", "t2", "t1"]), "agent") == CountPlan(
        ("team:t1", "team:t2", "asg:bob"), ("asgteam:3:bob|t1", "asgteam:3:bob|t2"))
    assert plan(who("bob", "ticket_agent"), "agent") == CountPlan(("asg:bob",))
    assert plan(who("bob", "ticket_agent", teams=["t1"]), "agent", support_only=True) \
        == CountPlan(("sr:team:t1", "sr:asg:bob"), ("sr:asgteam:3:bob|t1",))


def test_plan_evaluation_treats_missing_buckets_as_zero():
    counted = CountPlan(("a", "b"), ("c",))
    assert counted.buckets == ("a", "b", "c")
    assert counted.evaluate({"a": 5, "c": 2}) == 3


def test_bucket_plans_equal_direct_visibility_on_random_tickets():
    # Given 2,000 seeded tickets (some deleted, ids null a quarter of the time) and 15 callers
    tickets = random_tickets(seed=20260308, n=2000, now_ms=0)
    live = [t for t in tickets if not t["deleted"]]
    buckets = Counter(name for t in live for name in ticket_buckets(t))
    seen = set()
    for principal in principals():
        for view_type in ("user", "agent", "template"):
            for support_only in (False, True):
                try:
                    counted = plan(principal, view_type, support_only).evaluate(buckets)
                except VisibilityDenied:
                    assert view_type == "agent" and not principal.has_any(
                        "ticket_agent", "ticket_admin")
                    continue
                # Then the plan's sum equals counting the visible tickets one by one
                direct = sum(1 for t in live if oracle.visible(t, principal, view_type)
                             and (t["isSupportRequest"] or not support_only))
                assert counted == direct, (principal, view_type, support_only)
                seen.add(direct)
    assert len(seen) > 20  # the callers really see different sets, so the check has teeth


def test_a_plan_is_a_function_of_the_caller_view_and_support_narrowing():
    # (worked out once per request shape: the app's plans cache keeps it, test_ticket_plans.py)
    agent = Principal("a1", "t", "dev", frozenset({"ticket_agent"}), ("team-1", "team-2"))
    same = Principal("a1", "t", "dev", frozenset({"ticket_agent"}), ("team-1", "team-2"))
    assert plan(agent, "agent") == plan(same, "agent")
    assert plan(agent, "agent", True) == CountPlan(
        ("sr:team:team-1", "sr:team:team-2", "sr:asg:a1"),
        ("sr:asgteam:2:a1|team-1", "sr:asgteam:2:a1|team-2"))
    assert plan(agent, "agent") != plan(agent, "agent", True)


A, T, R = frozenset({ASSIGNEE}), frozenset({TEAMS}), frozenset({REQUESTER})


def test_caller_conjuncts_narrow_the_view_to_the_buckets_that_say_them():
    agent = scope(who("bob", "ticket_agent", teams=["t1", "t2", "t1"]), "agent")
    assert agent.plan(A) == CountPlan(("asg:bob",))
    assert agent.plan(T) == CountPlan(("team:t1", "team:t2"))
    assert agent.plan(A | T) == CountPlan(("asgteam:3:bob|t1", "asgteam:3:bob|t2"))
    admin = scope(who("bob", "ticket_admin", teams=["t1"]), "template", support_only=True)
    assert admin.plan(A) == CountPlan(("sr:asg:bob",))
    assert admin.plan(T) == CountPlan(("sr:team:t1",))
    assert admin.plan(R) == CountPlan(("sr:req:bob",))
    assert scope(who("bob", "ticket_user"), "template").plan(R) == CountPlan(("req:bob",))


@pytest.mark.parametrize("roles, teams, caller", [
    (("ticket_agent",), ["t1"], R), (("ticket_agent",), ["t1"], A | R),
    (("ticket_admin",), ["t1"], A | R), (("ticket_admin",), ["t1"], T | R),
    (("ticket_user",), ["t1"], A), (("ticket_user",), ["t1"], T),
    (("ticket_agent",), [], T), (("ticket_admin",), [], A | T)])
def test_no_bucket_sum_says_the_rest_so_the_predicate_keeps_it(roles, teams, caller):
    assert scope(who("bob", *roles, teams=teams), "template").plan(caller) is None


def test_narrowed_plans_equal_direct_visibility_on_random_tickets():
    # Given 2,000 seeded tickets and every caller, view, narrowing and caller conjunct set
    tickets = random_tickets(seed=20261207, n=2000, now_ms=0)
    live = [t for t in tickets if not t["deleted"]]
    buckets = Counter(name for t in live for name in ticket_buckets(t))
    says = {ASSIGNEE: lambda t, p: t["assigneeId"] == p.user_id,
            TEAMS: lambda t, p: t["teamId"] is not None and t["teamId"] in p.teams,
            REQUESTER: lambda t, p: t["requesterId"] == p.user_id}
    narrowed = 0
    for principal in principals():
        for view_type in ("user", "agent", "template"):
            if view_type == "agent" and not principal.has_any("ticket_agent", "ticket_admin"):
                continue
            for support_only in (False, True):
                for caller in (A, T, R, A | T, A | R, T | R, A | T | R):
                    made = scope(principal, view_type, support_only).plan(caller)
                    if made is None:
                        continue
                    # Then the narrowed sum equals counting the visible tickets that satisfy
                    # the conjuncts, one by one
                    direct = sum(1 for t in live if oracle.visible(t, principal, view_type)
                                 and (t["isSupportRequest"] or not support_only)
                                 and all(says[kind](t, principal) for kind in caller))
                    assert made.evaluate(buckets) == direct, (principal, view_type, caller)
                    narrowed += 1
    assert narrowed > 60
