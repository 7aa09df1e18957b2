"""The notification endpoints: badge payloads, ETags, the list, and marking as read."""
from __future__ import annotations

import pytest
import redis

from tally.core.model import NOTIFICATION_TYPES, PRIORITIES
from tests.support import factories
from tests.support.factories import BASE_MS, MIX

COUNT = "/api/v2/ticketing/ticket/notification/count"
LIST = "/api/v2/ticketing/ticket/notification/list"
READ = "/api/v2/ticketing/ticket/notification/read"


@pytest.fixture
def db(app):
    return app.extensions["tally"].db


@pytest.fixture
def seeded(db, tenant_id):
    """user-1 holds MIX (4 unread of 6 live); user-2 holds one unread escalation."""
    ids = factories.notifications(db, tenant_id, "user-1", MIX)
    factories.notification(db, tenant_id, "user-2", type="escalation", priority="medium")
    return ids


def test_full_payload_follows_the_seed(client, headers, seeded):
    response = client.get(COUNT, headers=headers())
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    assert body["message"] == "Notification count retrieved successfully"
    assert body["timestamp"].endswith("Z")
    assert body["data"] == {
        "total": 6, "unread": 4,
        "byType": dict.fromkeys(NOTIFICATION_TYPES, 0) | {"assignment": 1, "comment": 2,
                                                          "slaBreach": 1},
        "byPriority": {"critical": 1, "high": 2, "medium": 0, "low": 1},
        "lastUpdated": "2025-07-10T12:35:05.789Z"}  # BASE_MS + 9 s, from a deleted row
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert response.headers["X-Poll-Interval"] == "30"
    assert response.headers["X-Count-Source"] == "recomputed"
    assert client.get(COUNT, headers=headers()).headers["X-Count-Source"] == "cache"


def test_minimal_view_answers_the_unread_count(client, headers, seeded):
    body = client.get(COUNT + "?view=minimal", headers=headers()).get_json()
    assert body["data"] == {"count": 4}
    assert body["message"] == "Notification count retrieved successfully"  # contract §2


def test_an_unknown_view_is_a_validation_error(client, headers, seeded):
    response = client.get(COUNT + "?view=compact", headers=headers())
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.get_json()["error"]["details"] == {"view": ["Must be one of: full, minimal."]}
    assert client.get(COUNT + "?view=", headers=headers()).status_code == 400


def test_the_view_is_read_as_flask_smorest_would_read_it(client, headers, seeded):
    """Unknown keys are ignored; a repeated key is a 400 (contract §2), not its first value."""
    body = client.get(COUNT + "?view=minimal&page=2", headers=headers()).get_json()
    assert body["data"] == {"count": 4}
    repeated = client.get(COUNT + "?view=minimal&view=full", headers=headers())
    assert repeated.status_code == 400
    assert repeated.get_json()["error"]["details"] == {"view": ["Given more than once."]}
    assert set(client.get(COUNT + "?views=minimal", headers=headers()).get_json()["data"]) == {
        "total", "unread", "byType", "byPriority", "lastUpdated"}


def test_a_user_without_notifications_has_zero_counts_and_no_last_update(client, headers,
                                                                         tenant_id):
    data = client.get(COUNT, headers=headers("new-user")).get_json()["data"]
    assert (data["total"], data["unread"], data["lastUpdated"]) == (0, 0, None)
    assert set(data["byType"]) == set(NOTIFICATION_TYPES)
    assert set(data["byPriority"]) == set(PRIORITIES)


def test_each_user_sees_only_their_own_counts(client, headers, seeded):
    mine = client.get(COUNT, headers=headers("user-1")).get_json()["data"]
    theirs = client.get(COUNT, headers=headers("user-2")).get_json()["data"]
    assert (mine["unread"], theirs["unread"]) == (4, 1)
    assert theirs["byType"]["escalation"] == 1 and mine["byType"]["escalation"] == 0


def test_etag_gives_304_until_the_counts_change(client, headers, seeded):
    first = client.get(COUNT, headers=headers())
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith('W/')
    for match in (etag, f'"other", {etag}', "*", f"W/{etag}"):
        again = client.get(COUNT, headers=headers() | {"If-None-Match": match})
        assert again.status_code == 304, match
        assert again.headers["ETag"] == etag and again.data == b""
    assert client.get(COUNT, headers=headers() | {"If-None-Match": '"other"'}).status_code == 200
    client.post(READ, json={"ids": [seeded[0]]}, headers=headers())
    changed = client.get(COUNT, headers=headers() | {"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.get_json()["data"]["unread"] == 3


def test_views_have_distinct_etags(client, headers, seeded):
    full = client.get(COUNT, headers=headers()).headers["ETag"]
    minimal = client.get(COUNT + "?view=minimal", headers=headers()).headers["ETag"]
    assert full != minimal
    assert client.get(COUNT + "?view=minimal",
                      headers=headers() | {"If-None-Match": full}).status_code == 200


def test_list_pages_newest_first_with_cursors(client, headers, seeded):
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        response = client.get(LIST, query_string=query, headers=headers())
        assert response.status_code == 200
        data = response.get_json()["data"]
        seen += data["items"]
        cursor, pages = data["nextCursor"], pages + 1
        if cursor is None:
            break
    assert pages == 2
    assert [item["id"] for item in seen] == list(reversed(seeded[:6]))  # deleted ones left out
    assert seen[0] == {"id": seeded[5], "type": "approval", "ticketId": seen[0]["ticketId"],
                       "priority": "low", "createdAt": seen[0]["createdAt"], "read": True}
    assert seen[0]["createdAt"] > seen[-1]["createdAt"]


def test_list_filters_by_unread_and_type(client, headers, seeded):
    unread = client.get(LIST + "?unread=true", headers=headers()).get_json()["data"]["items"]
    assert len(unread) == 4 and not any(item["read"] for item in unread)
    comments = client.get(LIST + "?type=comment&unread=true",
                          headers=headers()).get_json()["data"]
    assert [item["priority"] for item in comments["items"]] == ["low", "high"]
    assert comments["nextCursor"] is None


@pytest.mark.parametrize("query", ["cursor=not-a-cursor", "cursor=WzEsMl0", "limit=0",
                                   "limit=101", "type=birthday", "unread=maybe"])
def test_list_rejects_bad_query_arguments(client, headers, seeded, query):
    response = client.get(f"{LIST}?{query}", headers=headers())
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_reading_by_ids_lowers_every_breakdown_at_once(client, headers, seeded):
    client.get(COUNT, headers=headers())  # warm
    response = client.post(READ, json={"ids": [seeded[0], seeded[1]]}, headers=headers())
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert (data["unread"], data["total"]) == (2, 6)
    assert (data["byType"]["assignment"], data["byType"]["comment"]) == (0, 1)
    assert (data["byPriority"]["critical"], data["byPriority"]["high"]) == (0, 1)
    later = client.get(COUNT, headers=headers())
    assert later.headers["X-Count-Source"] == "cache"
    assert later.get_json()["data"] == data


def test_reading_is_idempotent_and_ignores_other_users_ids(client, headers, seeded, db,
                                                           tenant_id):
    theirs = factories.notification(db, tenant_id, "user-2").id
    first = client.post(READ, json={"ids": [seeded[0], theirs]}, headers=headers())
    again = client.post(READ, json={"ids": [seeded[0], theirs]}, headers=headers())
    assert first.get_json()["data"] == again.get_json()["data"]
    assert first.get_json()["data"]["unread"] == 3
    assert client.get(COUNT, headers=headers("user-2")).get_json()["data"]["unread"] == 2


def test_reading_all_clears_unread(client, headers, seeded):
    data = client.post(READ, json={"all": True}, headers=headers()).get_json()["data"]
    assert data["unread"] == 0 and data["total"] == 6
    assert set(data["byType"].values()) == {0} and set(data["byPriority"].values()) == {0}
    assert data["lastUpdated"] > "2025-07-10T12:35:05.789Z"
    assert client.get(COUNT, headers=headers()).get_json()["data"] == data


@pytest.mark.parametrize("body", [{}, {"ids": []}, {"all": False}, {"ids": ["a"], "all": True},
                                  {"ids": "a"}, {"ids": [1]}, {"ids": ["a"] * 1001}])
def test_read_rejects_a_bad_body(client, headers, seeded, body):
    response = client.post(READ, json=body, headers=headers())
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_counters_dropped_by_the_cli_or_flushall_are_recomputed_identically(
        app, client, headers, seeded, tenant_id, redis_url):
    warm = client.get(COUNT, headers=headers()).get_json()["data"]
    result = app.test_cli_runner().invoke(args=["tally", "cache", "invalidate",
                                                "--tenant", tenant_id, "--user", "user-1"])
    assert result.exit_code == 0, result.output
    after_invalidate = client.get(COUNT, headers=headers())
    assert after_invalidate.headers["X-Count-Source"] == "recomputed"
    assert after_invalidate.get_json()["data"] == warm
    redis.Redis.from_url(redis_url).flushall()
    after_flush = client.get(COUNT, headers=headers())
    assert after_flush.headers["X-Count-Source"] == "recomputed"
    assert after_flush.get_json()["data"] == warm


@pytest.mark.both_databases
def test_without_redis_counts_and_reads_come_from_sql(make_app, headers, seeded):
    client = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    response = client.get(COUNT, headers=headers())
    assert response.status_code == 200
    assert response.headers["X-Count-Source"] == "sql"
    assert response.get_json()["data"]["unread"] == 4
    read = client.post(READ, json={"ids": [seeded[0]]}, headers=headers())
    assert read.status_code == 200
    assert read.headers["X-Count-Source"] == "sql"
    assert read.get_json()["data"]["unread"] == 3


@pytest.mark.parametrize("method, path", [("get", COUNT), ("get", LIST), ("post", READ)])
def test_every_endpoint_needs_a_token(client, headers, seeded, method, path):
    unsigned = {k: v for k, v in headers().items() if k != "Authorization"}
    response = getattr(client, method)(path, headers=unsigned, json={"all": True})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "UNAUTHORIZED"


def test_timestamps_are_iso_utc_milliseconds(client, headers, db, tenant_id):
    factories.notification(db, tenant_id, "user-3", created_at=BASE_MS, updated_at=BASE_MS + 1)
    data = client.get(COUNT, headers=headers("user-3")).get_json()["data"]
    assert data["lastUpdated"] == "2025-07-10T12:34:56.790Z"
    items = client.get(LIST, headers=headers("user-3")).get_json()["data"]["items"]
    assert items[0]["createdAt"] == "2025-07-10T12:34:56.789Z"


def test_a_remembered_view_answers_as_the_first_load_did(client, services, headers, seeded,
                                                         monkeypatch):
    """The badge's query string is validated once per app (a bounded cache of good loads):
    a repeat of a good one answers the same view, a bad one is its 400 every time."""
    memo = services.caches.badge_queries
    monkeypatch.setattr(memo, "size", 4)
    for _ in range(3):
        assert client.get(COUNT + "?view=minimal", headers=headers()).get_json()["data"] == {
            "count": 4}
        bad = client.get(COUNT + "?view=compact", headers=headers())
        assert bad.status_code == 400
        assert bad.get_json()["error"]["details"] == {"view": ["Must be one of: full, minimal."]}
    assert b"view=minimal" in memo and b"view=compact" not in memo
    for n in range(8):
        assert client.get(f"{COUNT}?n={n}", headers=headers()).status_code == 200
    assert len(memo) == 4
