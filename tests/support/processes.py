"""Start tally's worker and scheduler as real processes against a test's database and Redis."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]  # the repository: the cwd of every process started


def process_env(db_url: str, redis_url: str, realms_file: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(TALLY_ENV="test", TALLY_DATABASE_URL=db_url, TALLY_REDIS_URL=redis_url,
               TALLY_REALMS_FILE=realms_file, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}")
    return env


def start(module: str, env: dict[str, str], *args: str, log: Path) -> subprocess.Popen:
    """`python -m module args…` in its own session, so its forks can be found and killed."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def session_pids(leader: int) -> list[int]:
    """Pids of every live process in the session `leader` started (worker, horses, scheduler)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == leader and fields[0] != "Z":  # field 6 of stat: the session id
            pids.append(int(entry.name))
    return pids


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL the process and everything it forked (horses leave its process group)."""
    for pid in session_pids(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(10)


def stop(process: subprocess.Popen) -> int:
    """SIGTERM, wait, and SIGKILL the session if it does not end; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            kill_session(process)
    for pid in session_pids(process.pid):  # a horse or scheduler left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return process.returncode


def wait_until(condition: Callable[[], bool], deadline_s: float, what: str,
               log: Path | None = None) -> None:
    """Poll `condition` until true; fail with `what` (and the process log) after the deadline."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"gave up waiting for {what} after {deadline_s}s\n{tail}")
        time.sleep(0.05)
