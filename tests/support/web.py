"""Run the `web` process for real: gunicorn with config/gunicorn.conf.py on a free loopback port."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives import serialization

from tally.auth import devkeys
from tally.localrun import free_port

ROOT = Path(__file__).resolve().parents[2]


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
    """`gunicorn -c config/gunicorn.conf.py wsgi:app` as the Procfile runs it."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Gunicorn":
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
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
        from tests.workers.procs import session_pids

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
