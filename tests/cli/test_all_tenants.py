"""`tally cache verify` and `tally cache rebuild` without --tenant: every provisioned tenant."""
from __future__ import annotations

import uuid

import pytest

from tally.services import notifications
from tally.services.tenants import create_tenant
from tally.stores import keys
from tests.support import factories
from tests.support.tokens import REALM
from tests.support.tickets import only_mp, warm_world
from tests.support.factories import MIX


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def run(*args: str):
        return runner.invoke(args=["tally", "cache", *args])

    return run


def tenants(services, count: int) -> list[str]:
    """`count` provisioned tenants, each with two users whose counters are warm."""
    made = sorted(str(uuid.uuid4()) for _ in range(count))
    for tenant in made:
        create_tenant(services.db, tenant, "t", REALM)
        for user in ("u1", "u2"):
            factories.notifications(services.db, tenant, user, MIX)
            assert notifications.count(services, tenant, user).source == "recomputed"
    return made


def test_verify_without_tenant_walks_every_tenant_and_names_the_drifted_one(cli, services, raw):
    first, second, third = tenants(services, 3)
    raw.hset(keys.notification_counts_key(second, "u2"), "unread", 9)
    found = cli("verify")
    assert found.exit_code == 1, found.output
    for number, tenant in enumerate((first, second, third), 1):
        assert f"tenant {tenant} ({number}/3): verifying" in found.output
    assert f"tenant {second} user u2: unread redis=9 sql=4" in found.output
    assert f"tenant {first}: 0 difference(s)" in found.output
    assert f"tenant {second}: 1 difference(s)" in found.output
    assert "3 tenant(s) verified" in found.output
    assert found.output.rstrip().endswith("1 difference(s)")


def test_verify_repair_without_tenant_fixes_drift_in_every_tenant(cli, services, raw):
    first, second = tenants(services, 2)
    raw.hset(keys.notification_counts_key(first, "u1"), "total", 0)
    raw.hset(keys.notification_counts_key(second, "u2"), "p:high", 5)
    repaired = cli("verify", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "2 difference(s) repaired" in repaired.output
    assert raw.hget(keys.notification_counts_key(first, "u1"), "total") == "6"
    assert raw.hget(keys.notification_counts_key(second, "u2"), "p:high") == "2"
    again = cli("verify")
    assert again.exit_code == 0, again.output
    assert again.output.rstrip().endswith("0 difference(s)")


def test_verify_without_tenant_finds_ticket_drift_too(cli, app, client, headers, tenant_id, raw):
    warm_world(app, client, headers, tenant_id)
    plain = only_mp(raw, tenant_id, "3745")
    raw.hincrby(keys.mp_counts_key(tenant_id, plain), "all", 2)
    found = cli("verify")
    assert found.exit_code == 1, found.output
    assert f"tenant {tenant_id} tickets mp={plain} bucket=all filters=3745: count" in found.output
    assert "1 tenant(s) verified" in found.output


def test_rebuild_without_tenant_rebuilds_every_tenant_with_progress(cli, services, raw):
    made = tenants(services, 2)
    for tenant in made:
        raw.delete(keys.notification_counts_key(tenant, "u1"))
        raw.hset(keys.notification_counts_key(tenant, "u2"), "unread", 40)
    result = cli("rebuild")
    assert result.exit_code == 0, result.output
    for number, tenant in enumerate(made, 1):
        assert f"tenant {tenant} ({number}/2): rebuilding" in result.output
        assert f"tenant {tenant}: user: 2 rebuilt, 0 busy" in result.output
        for user in ("u1", "u2"):
            assert raw.hget(keys.notification_counts_key(tenant, user), "unread") == "4"
    assert "2 tenant(s) rebuilt" in result.output


def test_one_tenant_keeps_the_single_tenant_output(cli, services, raw):
    first, second = tenants(services, 2)
    raw.hset(keys.notification_counts_key(second, "u1"), "unread", 7)
    only_first = cli("verify", "--tenant", first)
    assert only_first.exit_code == 0, only_first.output
    assert "verifying" not in only_first.output and second not in only_first.output
    only_second = cli("verify", "--tenant", second)
    assert only_second.exit_code == 1
    assert "user u1: unread redis=7 sql=4" in only_second.output.splitlines()
    rebuilt = cli("rebuild", "--tenant", first)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "tenant(s) rebuilt" not in rebuilt.output
    assert raw.hget(keys.notification_counts_key(second, "u1"), "unread") == "7"


def test_no_tenants_is_no_drift(cli):
    result = cli("verify")
    assert result.exit_code == 0, result.output
    assert "0 tenant(s) verified" in result.output
    assert cli("rebuild").output.strip() == "0 tenant(s) rebuilt"
