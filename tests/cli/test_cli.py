"""The operator's cache commands through the `tally` CLI group."""
from __future__ import annotations

import re
import uuid

import pytest

from tally.services import notifications
from tally.services.tenants import create_tenant
from tally.stores import keys
from tally.stores.sql.models import Notification
from tests.support import factories
from tests.support.tokens import REALM
from tests.support.tickets import ask, only_mp, sources, values, warm_world
from tests.support.factories import BASE_MS, MIX

pytestmark = pytest.mark.both_databases

T = str(uuid.uuid4())


@pytest.fixture
def cli(app):
    create_tenant(app.extensions["tally"].db, T, "T", REALM)  # the commands refuse unknown ones
    runner = app.test_cli_runner()

    def run(*args: str):
        return runner.invoke(args=["tally", "cache", *args])

    return run


def warm(services, *users, tenant=T):
    for user in users:
        factories.notifications(services.db, tenant, user, MIX)
        assert notifications.count(services, tenant, user).source == "recomputed"


def test_invalidate_one_user_drops_only_that_users_counters(cli, services, raw):
    warm(services, "u1", "u2")
    result = cli("invalidate", "--tenant", T, "--user", "u1")
    assert result.exit_code == 0, result.output
    assert "dropped 1 keys" in result.output
    assert not raw.exists(keys.notification_counts_key(T, "u1"))
    assert raw.exists(keys.notification_counts_key(T, "u2"))
    assert notifications.count(services, T, "u1").source == "recomputed"


def test_invalidate_a_tenant_leaves_other_tenants_warm(cli, services, raw):
    other = str(uuid.uuid4())
    warm(services, "u1", "u2")
    warm(services, "u1", tenant=other)
    services.counters.begin_rebuild(T, keys.notification_group("u3"))
    result = cli("invalidate", "--tenant", T)
    assert result.exit_code == 0, result.output
    assert "dropped 3 keys" in result.output  # two hashes and one rebuild marker
    assert raw.keys(keys.tenant_prefix(T) + "*") == []
    assert raw.exists(keys.notification_counts_key(other, "u1"))


def test_invalidate_by_filter_drops_no_notification_counters(cli, services, raw):
    warm(services, "u1")
    result = cli("invalidate", "--tenant", T, "--filter", "7")
    assert result.exit_code == 0, result.output
    assert "dropped 0 keys" in result.output
    assert raw.exists(keys.notification_counts_key(T, "u1"))


def test_rebuild_warms_every_user_and_reports_progress(cli, services, raw):
    with services.db.write() as session:
        session.add_all(Notification(tenant_id=T, id=f"n{i}", user_id=f"u{i:03d}", type="mention",
                                     ticket_id=None, priority="low", created_at=BASE_MS,
                                     read=False, deleted=False, updated_at=BASE_MS)
                        for i in range(120))
    result = cli("rebuild", "--tenant", T)
    assert result.exit_code == 0, result.output
    assert "user: 100/120 rebuilt" in result.output
    assert "user: 120 rebuilt, 0 busy" in result.output
    assert raw.hget(keys.notification_counts_key(T, "u119"), "t:mention") == "1"


def test_verify_exits_1_on_drift_and_repair_fixes_it(cli, services, raw):
    warm(services, "u1", "u2")
    raw.hset(keys.notification_counts_key(T, "u1"), mapping={"unread": 3, "p:high": 7})
    found = cli("verify", "--tenant", T)
    assert found.exit_code == 1
    assert "user u1: unread redis=3 sql=4" in found.output
    assert "user u1: byPriority.high redis=7 sql=2" in found.output
    assert "2 difference(s)" in found.output
    repaired = cli("verify", "--tenant", T, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "2 difference(s) repaired" in repaired.output
    assert raw.hget(keys.notification_counts_key(T, "u1"), "unread") == "4"
    assert cli("verify", "--tenant", T).exit_code == 0


def test_verify_treats_cold_groups_and_deltas_in_flight_as_no_drift(cli, services, raw):
    warm(services, "u1", "u2")
    raw.delete(keys.notification_counts_key(T, "u1"))
    factories.notification(services.db, T, "u2")
    factories.outbox_row(services.db, T, keys.notification_group("u2"))  # not yet applied
    result = cli("verify", "--tenant", T)
    assert result.exit_code == 0, result.output
    assert "0 difference(s)" in result.output
    assert not raw.exists(keys.group_lock_key(T, keys.notification_group("u2")))


def test_cache_commands_reject_a_tenant_that_is_not_a_uuid(cli):
    result = cli("verify", "--tenant", "not-a-uuid")
    assert result.exit_code == 2
    assert "is not a UUID" in result.output


# -- ticket cells ---------------------------------------------------------------------------------
def test_ticket_verify_exits_1_on_plain_and_timed_drift_and_repair_fixes_it(cli, app, client,
                                                                            headers, tenant_id,
                                                                            raw):
    warm_world(app, client, headers, tenant_id)
    assert cli("verify", "--tenant", tenant_id).exit_code == 0
    plain, timed = only_mp(raw, tenant_id, "3745"), only_mp(raw, tenant_id, "7440")
    raw.hincrby(keys.mp_counts_key(tenant_id, plain), "all", -1)
    zset = keys.mp_zset_key(tenant_id, timed, "all")
    (gone,) = raw.zrange(zset, 0, 0)
    raw.zrem(zset, gone)
    found = cli("verify", "--tenant", tenant_id)
    assert found.exit_code == 1
    assert f"tickets mp={plain} bucket=all filters=3745: count redis=" in found.output
    assert (f"tickets mp={timed} bucket=all filters=6358,7440: members (differ: {gone})"
            in found.output)
    assert "2 difference(s)" in found.output
    repaired = cli("verify", "--tenant", tenant_id, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "2 difference(s) repaired" in repaired.output
    again = cli("verify", "--tenant", tenant_id)
    assert again.exit_code == 0, again.output
    assert "0 difference(s)" in again.output


def test_ticket_invalidate_by_filter_recomputes_only_that_filter(cli, app, client, headers,
                                                                 tenant_id):
    warm_world(app, client, headers, tenant_id)
    before = ask(client, headers)
    result = cli("invalidate", "--tenant", tenant_id, "--filter", "3745")
    assert result.exit_code == 0, result.output
    assert re.search(r"dropped [1-9]\d* keys", result.output)
    assert sources(ask(client, headers, ids=["3746", "7440"])) == {"cache"}
    after = ask(client, headers)
    assert sources(after) == {"recomputed"}
    assert values(after) == values(before)


def test_ticket_invalidate_a_tenant_makes_every_cell_cold_with_equal_answers(
        cli, app, client, headers, tenant_id):
    warm_world(app, client, headers, tenant_id)
    before = ask(client, headers)
    result = cli("invalidate", "--tenant", tenant_id)
    assert result.exit_code == 0, result.output
    after = ask(client, headers)
    assert sources(after) == {"recomputed"}
    assert values(after) == values(before)
    assert sources(ask(client, headers)) == {"cache"}


def test_ticket_rebuild_keeps_every_cell_warm_and_the_answers_equal(
        cli, app, client, headers, tenant_id):
    services, _ = warm_world(app, client, headers, tenant_id)
    before = ask(client, headers)
    cells = len(services.ticket_counters.warm_cells(tenant_id))
    result = cli("rebuild", "--tenant", tenant_id)
    assert result.exit_code == 0, result.output
    assert f"tickets: {cells} rebuilt, 0 busy" in result.output
    assert (f"tickets: 100/{cells} rebuilt" in result.output) == (cells > 100)
    after = ask(client, headers)
    assert sources(after) == {"cache"}
    assert values(after) == values(before)
