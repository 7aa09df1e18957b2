"""`tally cache stats` and the progress bars of long CLI work."""
from __future__ import annotations

import io
import json
import uuid

import pytest

from tally.services import notifications
from tally.progress import Progress
from tally.services.tenants import create_tenant
from tests.support import factories
from tests.support.tokens import REALM
from tests.support.factories import MIX


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=["tally", "cache", *args])


@pytest.fixture
def two_tenants(services):
    """A warm tenant (one of two users warm, one pending outbox row) and a cold one."""
    warm, cold = sorted(str(uuid.uuid4()) for _ in range(2))
    for tenant in (warm, cold):
        create_tenant(services.db, tenant, "t", REALM)
        for user in ("u1", "u2"):
            factories.notifications(services.db, tenant, user, MIX)
    assert notifications.count(services, warm, "u1").source == "recomputed"
    factories.outbox_row(services.db, warm, "n:u2")
    return warm, cold


def test_stats_json_gives_keys_memory_warm_users_and_backlog_per_tenant(cli, two_tenants):
    warm, cold = two_tenants
    result = cli("stats", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    by_tenant = {row["tenant"]: row for row in report["tenants"]}
    assert by_tenant[warm]["warm"] and by_tenant[warm]["keys"] >= 1
    assert by_tenant[warm]["memory_bytes"] > 0
    assert (by_tenant[warm]["warm_users"], by_tenant[warm]["users"]) == (1, 2)
    assert by_tenant[warm]["outbox_pending"] == 1
    assert by_tenant[cold] == {**by_tenant[cold], "warm": False, "keys": 0, "memory_bytes": 0,
                               "warm_users": 0, "users": 2, "outbox_pending": 0}
    assert report["outbox"]["pending"] == 1 and report["outbox"]["oldestAgeMs"] > 0
    assert report["redisUsedMemory"] > 0


def test_stats_table_names_each_tenant_and_sums_up(cli, two_tenants):
    warm, cold = two_tenants
    result = cli("stats")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith(warm) and " warm " in line and " 1/2 " in line for line in lines)
    assert any(line.startswith(cold) and " cold " in line and " 0/2 " in line for line in lines)
    assert "2 tenant(s): 1 warm, 1 cold;" in result.output
    assert "outbox backlog: 1 row(s)" in result.output


def test_stats_of_one_tenant(cli, two_tenants):
    warm, cold = two_tenants
    result = cli("stats", "--tenant", cold)
    assert result.exit_code == 0, result.output
    assert cold in result.output and warm not in result.output
    assert "1 tenant(s): 0 warm, 1 cold;" in result.output


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal_and_prints_lines_above_it():
    lines: list[str] = []
    terminal = Terminal()
    progress = Progress(lines.append, terminal)
    with progress.counting(4, "tenants rebuilt") as advance:
        for n in range(4):
            progress(f"tenant {n}")
            advance()
    assert lines == [f"tenant {n}" for n in range(4)]
    drawn = terminal.getvalue()
    assert "tenants rebuilt [" in drawn and "4/4 (100%)" in drawn and "0/4 (0%)" in drawn
    assert drawn.endswith("\r\x1b[K")  # the bar is wiped when the work is done


def test_progress_off_a_terminal_prints_only_the_lines():
    lines: list[str] = []
    pipe = io.StringIO()
    progress = Progress(lines.append, pipe)
    with progress.counting(2, "tenants") as advance:
        progress("one")
        advance(2)
    assert lines == ["one"] and pipe.getvalue() == "" and not progress.live
