"""Run the `web` process for real: gunicorn with config/gunicorn.conf.py on a free loopback port,
alone or behind the edge, in a world of its own (Redis, SQLite, a tenant, optionally a worker)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from tally.settings import Test
from tally.app import create_app
from tally.dev import keys as devkeys
from tally.edge import gunicorn_command, web_command
from tally.dev.launcher import RedisProcess, free_port
from tally.services.tenants import create_tenant
from tests.support import factories
from tests.support.factories import MIX
from tests.support.sse import SocketStream
from tests.support import processes as procs

PREFIX = "/api/v2/ticketing"
STREAM = f"{PREFIX}/ticket/notification/stream"
COUNT = f"{PREFIX}/ticket/notification/count"
NOW = "2025-07-10T12:00:00.000Z"
REALM = devkeys.DEV_REALM

ROOT = procs.ROOT


def app_env(db_url: str, redis_url: str, realms_file: str, var_dir: str,
            **extra: str) -> dict[str, str]:
    """The environment of a tally process for tests (TALLY_ENV=test unless `extra` says)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TALLY_", "PROMETHEUS_", "WEB_CONCURRENCY", "GUNICORN_"))}
    env.update(TALLY_ENV="test", TALLY_DATABASE_URL=db_url, TALLY_REDIS_URL=redis_url,
               TALLY_REALMS_FILE=realms_file, TALLY_VAR_DIR=var_dir,
               PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}")
    env.update(extra)
    return env


class Gunicorn:
    """`gunicorn -c config/gunicorn.conf.py wsgi:app`; with `edge`, behind the edge on loopback
    exactly as the Procfile's web line runs it (tally.edge: Caddy, then gunicorn)."""

    def __init__(self, env: dict[str, str], log: Path, edge: bool = False):
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.log = log
        self.command = web_command(host="127.0.0.1") if edge else gunicorn_command()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Gunicorn":
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not answer\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        """The master and its workers (every process of its session)."""
        from tests.support.processes import session_pids

        return session_pids(self.process.pid) if self.process else []

    def rss_kib(self) -> int:
        """Resident memory of the master and workers together."""
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            total += next(int(line.split()[1]) for line in status.splitlines()
                          if line.startswith("VmRSS:"))
        return total

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None


class TokenMinter:
    """Tokens as devkeys.dev_token signs them, with the dev key parsed once: parsing it costs
    ~0.1 s, signing ~3 ms, and a test opening hundreds of streams needs a token per user."""

    def __init__(self, var_dir: str):
        devkeys.ensure_dev_realm(var_dir)
        pem = (Path(var_dir) / "dev" / "private.pem").read_bytes()
        self.key = serialization.load_pem_private_key(pem, password=None)

    def __call__(self, tenant: str, user: str, roles: list[str], ttl: int = 3600) -> str:
        now = int(time.time())
        claims = {"iss": devkeys.DEV_ISSUER, "aud": devkeys.DEV_AUDIENCE, "sub": user,
                  "iat": now, "nbf": now, "exp": now + ttl, "tenant_id": tenant,
                  "realm_access": {"roles": roles}, "teams": []}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": devkeys.DEV_KID})


@contextmanager
def web_world(base: Path, sqlite_template: str, realms_file: str, var_dir: str,
              edge: bool = False, worker: bool = True, **env: str) -> Iterator[dict[str, Any]]:
    """The web process (production settings plus `env`) and, with `worker`, an RQ worker, on
    their own Redis and SQLite file, with a tenant whose user "poller" has 4 unread of 6.

    Yields `web` (a Gunicorn), `tenant`, `services` (the test's own app: it provisions, seeds,
    and may apply events as a second worker would), `mint` and `worker_log`."""
    db_path = base / "tally.db"
    shutil.copy(sqlite_template, db_path)
    db_url = f"sqlite:///{db_path}"
    redis_server = RedisProcess(workdir=str(base)).start()
    tenant = str(uuid.uuid4())
    app = create_app(Test(), DATABASE_URL=db_url, REDIS_URL=redis_server.url,
                     REALMS_FILE=realms_file, VAR_DIR=var_dir)
    services = app.extensions["tally"]
    create_tenant(services.db, tenant, "web test", REALM)
    factories.notifications(services.db, tenant, "poller", MIX)  # 4 unread of 6
    process_env = app_env(db_url, redis_server.url, realms_file, var_dir,
                          **{"TALLY_ENV": "production", **env})
    web = Gunicorn(process_env, base / "web.log", edge=edge).start()
    rq_worker = (procs.start("tally.workers.run", process_env, log=base / "worker.log")
                 if worker else None)
    try:
        yield {"web": web, "tenant": tenant, "services": services, "mint": TokenMinter(var_dir),
               "worker_log": base / "worker.log"}
    finally:
        if rq_worker is not None:
            procs.stop(rq_worker)
        web.stop()
        services.db.engine.dispose()
        redis_server.stop()


def call_headers(world: dict[str, Any], user: str, roles=("ticket_user",),
                 **extra: str) -> dict[str, str]:
    token = world["mint"](world["tenant"], user, list(roles))
    return {"Authorization": f"Bearer {token}", "x-tenantid": world["tenant"],
            "realmname": REALM, **extra}


def open_stream(world: dict[str, Any], user: str, **extra: str) -> SocketStream:
    """A stream of `user`, retried while a worker answers 503 at its bound (Retry-After)."""
    for _ in range(50):
        stream = SocketStream(world["web"].port, STREAM,
                              call_headers(world, user, accept="text/event-stream", **extra))
        if stream.status == 200:
            return stream
        assert stream.status == 503, stream.read_body()
        assert stream.headers["retry-after"]
        stream.close()
        time.sleep(0.2)
    raise AssertionError(f"no stream for {user} after 50 tries")


def post_created(world: dict[str, Any], user: str) -> None:
    event = {"eventId": str(uuid.uuid4()), "type": "notification.created", "occurredAt": NOW,
             "data": {"id": f"n-{uuid.uuid4().hex[:12]}", "userId": user, "type": "comment",
                      "ticketId": "TCK-1", "priority": "high", "createdAt": NOW}}
    response = requests.post(f"{world['web'].url}{PREFIX}/events", json={"events": [event]},
                             headers=call_headers(world, "svc", ("ticket_service",)), timeout=30)
    assert response.status_code == 202, response.text


def scrape(world: dict[str, Any]) -> dict[str, float]:
    """/metrics' unlabelled samples."""
    text = requests.get(f"{world['web'].url}/metrics", timeout=30).text
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}
