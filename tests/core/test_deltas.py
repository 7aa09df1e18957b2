"""Outbox payloads into counter ops, with no store: the sums must equal a recount of the rows."""
from __future__ import annotations

import json
import random

import pytest

from tally.core.model import NOTIFICATION_TYPES, PRIORITIES
from tally.core.predicates import Materialized
from tally.core.deltas import notification_ops, outbox_delta, ticket_ops
from tally.core.ticket_deltas import cell_groups
from tally.stores import keys
from tally.core.cells import CellDeltas, Op

T = "3f1c3d5e-2a4b-4c6d-8e9f-0a1b2c3d4e5f"
KEY = keys.notification_counts_key(T, "u1")


def row(nid="n1", type_="comment", priority="high", read=False, deleted=False, user="u1"):
    return {"id": nid, "userId": user, "type": type_, "priority": priority, "read": read,
            "deleted": deleted}


def ops_of(*changes, at=1000):
    [group] = notification_ops(T, {"kind": "notification", "at": at, "changes": [
        {"before": before, "after": after} for before, after in changes]})
    assert (group.group, group.warm_key, group.warm_field) == ("n:u1", KEY, None)
    return group.ops


def increments(ops):
    return {op.args[0]: op.args[1] for op in ops if op.name == "hincrby"}


def test_created_unread_counts_in_every_breakdown():
    ops = ops_of((None, row()), at=77)
    assert increments(ops) == {"total": 1, "unread": 1, "t:comment": 1, "p:high": 1}
    assert ops[-1] == Op("hmax", KEY, ("lu", 77))


def test_read_moves_out_of_unread_only():
    assert increments(ops_of((row(), row(read=True)))) == {"unread": -1, "t:comment": -1,
                                                           "p:high": -1}


def test_deleting_a_read_notification_only_lowers_total():
    assert increments(ops_of((row(read=True), row(read=True, deleted=True)))) == {"total": -1}


def test_deleted_rows_count_for_nothing():
    assert increments(ops_of((row(deleted=True), row(deleted=True, read=True)))) == {}


def test_changes_that_cancel_leave_only_last_updated():
    ops = ops_of((None, row()), (row(), row(deleted=True)))
    assert ops == [Op("hmax", KEY, ("lu", 1000))]


def test_a_payload_names_exactly_one_user():
    with pytest.raises(ValueError):
        ops_of((None, row(user="u1")), (None, row("n2", user="u2")))


def ticket(**fields):
    base = {"id": "t1", "version": 1, "deleted": False, "status": "open", "priority": "high",
            "teamId": "blue", "assigneeId": "a1", "requesterId": "r1", "category": None,
            "tags": [], "isSupportRequest": False, "createdAt": 10, "dueAt": 50, "slaDueAt": None}
    return {**base, **fields}


def test_ticket_changes_move_between_registered_predicates_in_every_bucket():
    open_mp = Materialized({"all": [{"field": "status", "op": "eq", "value": "open"}]})
    closed_mp = Materialized({"all": [{"field": "status", "op": "eq", "value": "closed"}]})
    change = {"before": ticket(), "after": ticket(version=2, status="closed")}
    groups = cell_groups(T, ticket_ops(T, {"kind": "ticket", "at": 1, "changes": [change]},
                                       [open_mp, closed_mp]))
    signs = {(g.group.split(":")[1], g.warm_field): g.ops[0].args[1] for g in groups}
    buckets = ["all", "team:blue", "asg:a1", "asgteam:2:a1|blue", "req:r1"]
    assert signs == {**{(open_mp.id, b): -1 for b in buckets},
                     **{(closed_mp.id, b): 1 for b in buckets}}


def test_timed_predicates_move_members_scored_by_their_field():
    due = Materialized({"all": []}, "dueAt")
    change = {"before": ticket(), "after": ticket(version=2, dueAt=70)}
    groups = cell_groups(T, ticket_ops(T, {"kind": "ticket", "at": 1, "changes": [change]}, [due]))
    moves = sorted(op.args[1:] for op in groups[0].ops)
    assert moves == [("t1:1", 50, -1), ("t1:2", 70, 1)]
    assert len(groups) == 5 and groups[0].warm_field == "z:all"


def test_ticket_rows_without_registered_predicates_give_no_ops():
    change = {"before": None, "after": ticket()}
    assert ticket_ops(T, {"kind": "ticket", "at": 1, "changes": [change]}, []) == CellDeltas()


def test_outbox_delta_reads_the_stored_json():
    payload = json.dumps({"kind": "notification", "at": 5, "changes": [
        {"before": None, "after": row()}]})
    delta = outbox_delta(T, 42, payload)
    assert delta.outbox_id == 42
    assert [g.group for g in delta.groups] == ["n:u1"]
    empty = outbox_delta(T, 43, json.dumps({"kind": "ticket", "at": 5, "changes": []}))
    assert empty.groups == [] and empty.cells == CellDeltas()


def recount(rows):
    live = [r for r in rows.values() if not r["deleted"]]
    unread = [r for r in live if not r["read"]]
    counts = {"total": len(live), "unread": len(unread)}
    for name in NOTIFICATION_TYPES:
        counts[f"t:{name}"] = sum(r["type"] == name for r in unread)
    for name in PRIORITIES:
        counts[f"p:{name}"] = sum(r["priority"] == name for r in unread)
    return {k: v for k, v in counts.items() if v}


def test_random_histories_sum_to_a_recount_in_any_order():
    # Given 300 random changes to 25 notifications, split into payloads of up to 7 changes
    rng = random.Random(20250710)
    rows, changes = {}, []
    for _ in range(300):
        nid = f"n{rng.randrange(25)}"
        before = rows.get(nid)
        if before is None:
            after = row(nid, rng.choice(NOTIFICATION_TYPES), rng.choice(PRIORITIES))
        elif before["deleted"]:
            continue
        else:
            after = dict(before, **rng.choice([{"read": True}, {"deleted": True}]))
        rows[nid] = after
        changes.append((before, after))
    payloads = [changes[i:i + 7] for i in range(0, len(changes), 7)]
    # When their ops are summed in a shuffled order
    rng.shuffle(payloads)
    totals: dict[str, int] = {}
    for payload in payloads:
        for field, n in increments(ops_of(*payload)).items():
            totals[field] = totals.get(field, 0) + n
    # Then the sums equal a recount of the final rows
    assert {k: v for k, v in totals.items() if v} == recount(rows)
