"""The processes one benchmark run needs, all on loopback and all stopped at the end.

A redis-server (tally.dev.launcher.RedisProcess), a throwaway PostgreSQL cluster when asked
(tests/support/postgres.py, run as the `postgres` user under root), the `web` process started
exactly as the Procfile's line (tally.edge: Caddy on 127.0.0.1 in front of
`gunicorn -c config/gunicorn.conf.py wsgi:app`, production settings), the bare Flask app and raw
WSGI callable of bench/bare.py behind the same edge with the same settings, and real worker
processes (`python -m tally.workers.run`).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench.bare import PATH_VARIABLE, SIZE_VARIABLE
from tally.dev import keys as devkeys
from tally.edge import gunicorn_command, web_command
from tally.dev.launcher import RedisProcess, free_port
from tally.stores.sql.db import Database
from tests.support.postgres import PostgresCluster

ROOT = Path(__file__).resolve().parents[1]


def stop_process(process: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the process we started (and its session), then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until `url` answers 200; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class Stack:
    """Redis (+ PostgreSQL) for one database kind, with gunicorn and workers on demand."""

    def __init__(self, kind: str, workdir: Path):
        self.kind = kind
        self.workdir = workdir
        self.var_dir = workdir / "var"
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisProcess(workdir=str(self._dir("redis")))
        self.postgres: PostgresCluster | None = None
        self.db_url = f"sqlite:///{workdir / 'tally.db'}"
        self.realms_file = devkeys.ensure_dev_realm(str(self.var_dir))
        # base URL -> session id (= pid of its leader) of each web process serving now
        self.web_sessions: dict[str, int] = {}

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def __enter__(self) -> "Stack":
        self.redis.start()
        if self.kind == "postgres":
            if not PostgresCluster.available():
                raise RuntimeError("postgres: initdb/pg_ctl/postgres are not on PATH")
            self.postgres = PostgresCluster().start()
            self.db_url = self.postgres.url
        Database(self.db_url).upgrade()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of tally's processes: production settings plus the baseline route."""
        env = dict(os.environ)
        env.update(TALLY_ENV="production", TALLY_DATABASE_URL=self.db_url,
                   TALLY_REDIS_URL=self.redis.url, TALLY_REALMS_FILE=self.realms_file,
                   TALLY_VAR_DIR=str(self.var_dir), TALLY_BENCH_BASELINE="true",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            env.get("PYTHONPATH")])))
        env.update(extra)
        return env

    @contextmanager
    def web(self, workers: int | None = None, threads: int | None = None,
            direct: bool = False) -> Iterator[str]:
        """The web process as the Procfile runs it, on a free loopback port; yields its base URL.

        `workers` and `threads` set WEB_CONCURRENCY and GUNICORN_THREADS; None leaves them as
        the environment has them (else config/gunicorn.conf.py's defaults apply). `direct`
        serves with gunicorn alone, without the edge (how tally served before issue 17).
        """
        with self._gunicorn("wsgi:app", "/healthz", {}, workers, threads, direct) as base:
            yield base

    @contextmanager
    def bare(self, size: int, path: str, raw: bool = False, workers: int | None = None,
             threads: int | None = None) -> Iterator[str]:
        """bench/bare.py's Flask app (or, with `raw`, its WSGI callable) answering `size` bytes
        at `path`, under exactly the gunicorn settings of web(); yields its base URL."""
        variables = {SIZE_VARIABLE: str(size), PATH_VARIABLE: path}
        target = "bench.bare:raw" if raw else "bench.bare:app"
        with self._gunicorn(target, path, variables, workers, threads) as base:
            yield base

    @contextmanager
    def _gunicorn(self, target: str, ready_path: str, variables: dict[str, str],
                  workers: int | None, threads: int | None,
                  direct: bool = False) -> Iterator[str]:
        """The Procfile's web line serving `<target>` (the edge in front of
        `gunicorn -c config/gunicorn.conf.py <target>`; with `direct`, that gunicorn alone) on a
        free loopback port, in tally's environment plus `variables`, until `ready_path` answers
        200; stopped on exit. While it serves, web_sessions maps its base URL to its session id
        (the session holds the launcher, gunicorn's master and workers, and Caddy)."""
        port = free_port()
        sizing = {"WEB_CONCURRENCY": workers, "GUNICORN_THREADS": threads}
        env = self.env(PORT=str(port), **variables,
                       **{k: str(v) for k, v in sizing.items() if v is not None})
        log = open(self._dir("logs") / f"gunicorn-{port}.log", "ab")
        command = ([*gunicorn_command(target), "--bind", f"127.0.0.1:{port}"] if direct
                   else web_command(target, host="127.0.0.1"))
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        self.web_sessions[base] = process.pid
        try:
            wait_http(base + ready_path, process)
            yield base
        finally:
            del self.web_sessions[base]
            stop_process(process)
            log.close()

    @contextmanager
    def worker(self, *queues: str, **extra: str) -> Iterator[subprocess.Popen]:
        """One real worker process (`python -m tally.workers.run [queue ...]`: every queue when
        none is named), in env(**extra); its log is logs/worker[-<queue>...].log."""
        name = "-".join(("worker", *queues))
        log = open(self._dir("logs") / f"{name}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "tally.workers.run", *queues], cwd=ROOT,
                                   env=self.env(**extra), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            _wait_worker(self.redis.url, process)
            yield process
        finally:
            stop_process(process)
            log.close()


def _wait_worker(redis_url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until this worker process has registered with RQ (it then listens on its queues);
    another worker already registered does not count."""
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while process.pid not in {w.pid for w in Worker.all(connection=connection)}:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not register with RQ (see logs/worker*.log)")
            time.sleep(0.1)
    finally:
        connection.close()
