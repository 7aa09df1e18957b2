"""Outbox payloads into counter deltas, with no store: the sums must equal a recount of the rows."""
from __future__ import annotations

import json
import random

import pytest

from tally.core.model import NOTIFICATION_TYPES, PRIORITIES
from tally.core.predicates import Materialized
from tally.core.cells import CellDeltas
from tally.core.deltas import notification_delta, outbox_delta, ticket_deltas


def row(nid="n1", type_="comment", priority="high", read=False, deleted=False, user="u1"):
    return {"id": nid, "userId": user, "type": type_, "priority": priority, "read": read,
            "deleted": deleted}


def delta_of(*changes, at=1000):
    delta = notification_delta({"kind": "notification", "at": at, "changes": [
        {"before": before, "after": after} for before, after in changes]})
    assert delta.user == "u1"
    return delta


def test_created_unread_counts_in_every_breakdown():
    delta = delta_of((None, row()), at=77)
    assert delta.counts == {"total": 1, "unread": 1, "t:comment": 1, "p:high": 1}
    assert delta.at == 77


def test_read_moves_out_of_unread_only():
    assert delta_of((row(), row(read=True))).counts == {"unread": -1, "t:comment": -1,
                                                        "p:high": -1}


def test_deleting_a_read_notification_only_lowers_total():
    assert delta_of((row(read=True), row(read=True, deleted=True))).counts == {"total": -1}


def test_deleted_rows_count_for_nothing():
    assert delta_of((row(deleted=True), row(deleted=True, read=True))).counts == {}


def test_changes_that_cancel_leave_only_last_updated():
    delta = delta_of((None, row()), (row(), row(deleted=True)))
    assert (delta.counts, delta.at) == ({}, 1000)


def test_a_payload_names_exactly_one_user():
    with pytest.raises(ValueError):
        delta_of((None, row(user="u1")), (None, row("n2", user="u2")))


def ticket(**fields):
    base = {"id": "t1", "version": 1, "deleted": False, "status": "open", "priority": "high",
            "teamId": "blue", "assigneeId": "a1", "requesterId": "r1", "category": None,
            "tags": [], "isSupportRequest": False, "createdAt": 10, "dueAt": 50, "slaDueAt": None}
    return {**base, **fields}


def test_ticket_changes_move_between_registered_predicates_in_every_bucket():
    open_mp = Materialized({"all": [{"field": "status", "op": "eq", "value": "open"}]})
    closed_mp = Materialized({"all": [{"field": "status", "op": "eq", "value": "closed"}]})
    change = {"before": ticket(), "after": ticket(version=2, status="closed")}
    deltas = ticket_deltas([open_mp, closed_mp], [change])
    assert deltas.timed == {}
    signs = deltas.plain
    buckets = ["all", "team:blue", "asg:a1", "asgteam:2:a1|blue", "req:r1"]
    assert signs == {**{(open_mp.id, b): -1 for b in buckets},
                     **{(closed_mp.id, b): 1 for b in buckets}}


def test_timed_predicates_move_members_scored_by_their_field():
    due = Materialized({"all": []}, "dueAt")
    change = {"before": ticket(), "after": ticket(version=2, dueAt=70)}
    deltas = ticket_deltas([due], [change])
    assert sorted(deltas.timed[(due.id, "all")]) == [("t1:1", 50, -1), ("t1:2", 70, 1)]
    assert len(deltas.timed) == 5 and deltas.plain == {}


def test_a_rows_moves_of_one_member_are_netted_per_cell():
    due = Materialized({"all": []}, "dueAt")
    changes = [{"before": None, "after": ticket()},
               {"before": ticket(), "after": ticket(version=2)},
               {"before": ticket(version=2), "after": ticket(version=3, dueAt=60)}]
    assert ticket_deltas([due], changes).timed[(due.id, "all")] == [("t1:3", 60, 1)]


def test_a_cell_whose_changes_cancel_stays_listed_with_nothing_to_do():
    open_mp = Materialized({"all": [{"field": "status", "op": "eq", "value": "open"}]})
    due = Materialized({"all": []}, "dueAt")
    changes = [{"before": None, "after": ticket()}, {"before": ticket(), "after": None}]
    deltas = ticket_deltas([open_mp, due], changes)
    assert deltas.plain[(open_mp.id, "all")] == 0 and deltas.timed[(due.id, "all")] == []
    assert (open_mp.id, "team:blue") in deltas.touched()


def test_moves_that_do_not_net_to_one_step_are_kept_as_given():
    due = Materialized({"all": []}, "dueAt")
    changes = [{"before": None, "after": ticket()}] * 2  # created twice: never expected
    assert ticket_deltas([due], changes).timed[(due.id, "all")] == [("t1:1", 50, 1)] * 2


def test_ticket_rows_without_registered_predicates_give_no_deltas():
    change = {"before": None, "after": ticket()}
    assert ticket_deltas([], [change]) == CellDeltas()


def test_outbox_delta_reads_the_stored_json():
    payload = json.dumps({"kind": "notification", "at": 5, "changes": [
        {"before": None, "after": row()}]})
    delta = outbox_delta(42, payload)
    assert (delta.outbox_id, delta.notification.user, delta.cells) == (42, "u1", None)
    empty = outbox_delta(43, json.dumps({"kind": "ticket", "at": 5, "changes": []}))
    assert empty.notification is None and empty.cells == CellDeltas()


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
    # When their deltas are summed in a shuffled order
    rng.shuffle(payloads)
    totals: dict[str, int] = {}
    for payload in payloads:
        for field, n in delta_of(*payload).counts.items():
            totals[field] = totals.get(field, 0) + n
    # Then the sums equal a recount of the final rows
    assert {k: v for k, v in totals.items() if v} == recount(rows)
