"""`make run` for real: the launcher starts Redis, web, worker, scheduler; its curl lines work."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tally.dev.launcher import free_port, stop_groups
from tests.support.processes import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def launcher(tmp_path):
    port, redis_port = free_port(), free_port()
    env = {**os.environ, "PORT": str(port), "TALLY_VAR_DIR": str(tmp_path / "var"),
           "TALLY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "WEB_CONCURRENCY": "1"}
    for name in ("TALLY_ENV", "TALLY_DATABASE_URL", "TALLY_REALMS_FILE", "TALLY_QUEUE_URL"):
        env.pop(name, None)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "tally.dev.launcher"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while "tally is up" not in log.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    yield process, log
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)


def test_make_run_serves_the_demo_and_its_curl_lines_work(launcher):
    process, log = launcher
    text = log.read_text()
    assert "tally is up" in text, text[-3000:]
    exports = [line for line in text.splitlines() if line.startswith("export TALLY_")]
    assert [line.split("=")[0] for line in exports] == ["export TALLY_TOKEN",
                                                        "export TALLY_SERVICE_TOKEN"]
    curls = [line for line in text.splitlines() if line.startswith("curl ")]
    assert len(curls) == 6
    bodies = []
    for line in curls:
        done = subprocess.run(["bash", "-c", "; ".join([*exports, line])], capture_output=True,
                              text=True, timeout=30)
        bodies.append(json.loads(done.stdout))
    assert all(body["success"] for body in bodies), bodies
    count, minimal, listing, read, tickets, event = bodies
    assert minimal["data"]["count"] == count["data"]["unread"] > 0
    assert len(listing["data"]["items"]) == 5
    assert read["data"]["unread"] == 0
    data = tickets["data"]
    assert len(data["counts"]) == 30 and set(data["filterDetails"]) == set(data["counts"])
    summary = data["summary"]
    assert summary["totalOpen"] + summary["totalClosed"] == data["counts"]["all"] > 0
    assert data["counts"]["3745"] + data["counts"]["3747"] + data["counts"]["3749"] == \
        summary["totalOpen"]
    assert event["data"]["accepted"] == 1  # the ticket service's POST /events


def test_make_run_prefixes_each_process_and_prints_the_banner_last(launcher):
    _, log = launcher
    lines = log.read_text().splitlines()
    banner = lines.index(next(line for line in lines if "tally is up" in line))
    for name in ("web", "worker", "scheduler"):
        mine = [line for line in lines if line.startswith(f"{name:<9}| ")]
        assert mine and lines.index(mine[0]) < banner, name
        # tally's own lines are text: none is a JSON line of tally.observability.logs (Python's
        # separators; Caddy's few start-up lines, in Go's JSON, stay as Caddy writes them)
        assert not [line for line in mine if '"logger": "' in line], name
        assert any(re.match(r"\d\d:\d\d:\d\d (INFO|WARNING) ", line[11:]) for line in mine), name
    # the children's start-up lines came before it: what follows is the banner itself
    assert not any("| " in line[:11] for line in lines[banner:banner + 12])


def _cli_env(tmp_path, port: str) -> dict[str, str]:
    """The environment of `tally` typed in another terminal beside the launcher's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    var = tmp_path / "var"
    return {**env, "TALLY_VAR_DIR": str(var), "TALLY_DATABASE_URL": f"sqlite:///{var}/tally.db",
            "PORT": port}


def test_the_banner_is_printed_again_by_the_demo_command(tmp_path):
    env = _cli_env(tmp_path, "8123")
    done = subprocess.run([sys.executable, "-c", "from tally.app import main; main()", "demo",
                           "--banner"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "tally is up" in done.stdout and "http://127.0.0.1:8123/docs" in done.stdout
    assert sum(line.startswith("curl ") for line in done.stdout.splitlines()) == 6


def test_demo_traffic_posts_events_to_the_running_server_and_stops(launcher, tmp_path):
    process, log = launcher
    port = next(line for line in log.read_text().splitlines()
                if line.startswith("status page")).rsplit(":", 1)[1].strip("/")
    env = _cli_env(tmp_path, port)
    done = subprocess.run([sys.executable, "-c", "from tally.app import main; main()", "demo",
                           "--traffic", "--events", "20", "--rate", "50"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    progress = [line for line in done.stdout.splitlines() if line.startswith("traffic: ")]
    assert [line.split(" events")[0] for line in progress] == ["traffic: 10", "traffic: 20"]
    assert done.stdout.splitlines()[-1] == "20 events accepted"


def _group_members(*pgids: int) -> list[str]:
    found = []
    for pgid in pgids:
        found += subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True,
                                text=True).stdout.split()
    return found


def test_ctrl_c_stops_every_process_it_started(launcher):
    process, _ = launcher
    listed = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
    children = [int(pid) for pid in listed.stdout.split()]
    groups = [process.pid, *children]  # each child leads a process group of its own
    # the launcher, gunicorn and its worker, the rq worker and its scheduler, the scheduler
    assert len(_group_members(*groups)) >= 5
    # Ctrl-C reaches the terminal's foreground group: the launcher's.
    os.killpg(process.pid, signal.SIGINT)
    process.wait(30)
    time.sleep(1)
    assert _group_members(*groups) == []


def test_stopping_a_group_reaches_a_grandchild_its_parent_left_behind():
    # Given a child whose forked grandchild ignores SIGTERM and outlives it (as rq's scheduler
    # process can when Ctrl-C lands while the worker forks it)
    script = ("import os, signal, sys, time\n"
              "if os.fork() == 0:\n"
              "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "    time.sleep(120)\n"
              "    sys.exit(0)\n"
              "time.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", script], process_group=0)
    deadline = time.monotonic() + 10
    while len(_group_members(child.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_group_members(child.pid)) == 2
    # When the launcher stops it
    stop_groups([child], timeout=1.0)
    # Then nothing of its group is left
    assert child.returncode is not None
    deadline = time.monotonic() + 5
    while _group_members(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_members(child.pid) == []
