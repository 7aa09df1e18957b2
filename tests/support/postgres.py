"""A throwaway PostgreSQL cluster for the test run (or TALLY_TEST_POSTGRES_URL when given)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid

from sqlalchemy import create_engine, text

from tally.dev.launcher import free_port, wait_for_port


def _as_postgres(args: list[str]) -> list[str]:
    """As root, PostgreSQL refuses to run: run its binaries as the postgres user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class PostgresCluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="tally-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "pg.log")

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("initdb") and shutil.which("pg_ctl") and shutil.which("postgres"))

    def start(self) -> "PostgresCluster":
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(_as_postgres(["initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                                     "--no-sync", "-E", "UTF8"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        subprocess.run(_as_postgres(["pg_ctl", "-D", self.data, "-l", self.log, "-o", options,
                                     "-w", "start"]), check=True, stdout=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        subprocess.run(_as_postgres(["pg_ctl", "-D", self.data, "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


def create_database(server_url: str, template: str | None = None) -> str:
    """A fresh database on the server (optionally copied from a template); returns its URL."""
    name = "t_" + uuid.uuid4().hex[:16]
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        clause = f" TEMPLATE {template}" if template else ""
        conn.execute(text(f"CREATE DATABASE {name}{clause}"))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop a test database, closing any connection a test process left open."""
    server_url, name = url.rsplit("/", 1)
    engine = create_engine(server_url + "/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    engine.dispose()
