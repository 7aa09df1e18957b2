"""The chaos suite's production-like deployment: two redis-servers, gunicorn, workers, scheduler.

The counter store and the queue are separate RedisProcesses (as in production), the web process is
gunicorn with the Procfile's config, and workers and the scheduler are the Procfile's commands.
Each fault the suite injects is one method here; `faults` counts them by kind.
"""
from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
import requests
from rq import Worker

from tally.dev.launcher import RedisProcess, free_port, wait_for_port
from tally.stores import keys
from tests.support.counter_store import CounterStore
from tests.support import processes as procs

WORKERS = 2
VERIFY_EVERY_S = 5  # the scheduler's sampling verify runs while the faults do
TRIM_EVERY_S = 3  # and so does the trimming of timed cells
MP_IDLE_S = 120  # the scheduler's idle-MP drop runs every 5 s (the drop fault forgets more)
BOOT_DEADLINE_S = 60
CLI = Path(sys.executable).with_name("tally")


class Cluster:
    """Every process of one deployment, their logs under `logs`, and the faults injected."""

    def __init__(self, db_url: str, realms_file: str, logs: Path,
                 counter_cluster_url: str | None = None):
        """`counter_cluster_url`: a Redis Cluster's seed node for the counters (tests/cluster);
        None starts a redis-server of the deployment's own."""
        self.logs = logs
        self.counter_server = None if counter_cluster_url else RedisProcess().start()
        self.queue_server = RedisProcess().start()
        self.counters = CounterStore(counter_cluster_url or self.counter_server.url,
                                     self.queue_server.url, cluster=bool(counter_cluster_url))
        self.port = free_port()
        self.env = self.counters.process_env(db_url, realms_file)
        self.env.update(PORT=str(self.port), WEB_CONCURRENCY="2", GUNICORN_THREADS="4",
                        TALLY_VERIFY_INTERVAL_SECONDS=str(VERIFY_EVERY_S),
                        TALLY_TRIM_INTERVAL_SECONDS=str(TRIM_EVERY_S),
                        TALLY_MP_IDLE_SECONDS=str(MP_IDLE_S),
                        TALLY_RQ_LOG_LEVEL="INFO")  # verify_runs counts rq's lines per job
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.scheduler: subprocess.Popen | None = None
        self.rebuilds: list[subprocess.Popen] = []
        self.faults: collections.Counter[str] = collections.Counter()
        self.drift_counted = 0  # the drift metric's value before each queue restart lost it
        self._lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self) -> "Cluster":
        self.web = procs.start("gunicorn", self.env, "-c", "config/gunicorn.conf.py",
                               "--access-logfile", "/dev/null", "wsgi:app", log=self.log("web"))
        wait_for_port(self.port, BOOT_DEADLINE_S)
        assert requests.get(self.base + "/healthz", timeout=30).status_code == 200
        self.workers = [self._worker() for _ in range(WORKERS)]
        self.scheduler = procs.start("tally.workers.schedule", self.env, log=self.log("scheduler"))
        return self

    def _worker(self) -> subprocess.Popen:
        return procs.start("tally.workers.run", self.env, log=self.log("worker"))

    def drift_metric(self) -> int:
        """The sampling verify's drift counter in the queue Redis now (0 when absent)."""
        client = self.queue_redis()
        try:
            return int(client.get(keys.DRIFT_FOUND_KEY) or 0)
        finally:
            client.close()

    def verify_runs(self) -> int:
        """Sampling verify jobs the workers completed so far (rq logs each)."""
        return self.log("worker").read_text().count("Successfully completed periodic verify")

    def trim_runs(self) -> int:
        """Trim jobs the workers completed so far."""
        return self.log("worker").read_text().count("Successfully completed periodic trim")

    def queue_redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.queue_server.url)

    # -- faults -----------------------------------------------------------------------------------
    def kill_worker(self, index: int) -> None:
        """SIGKILL one worker, mid-job when it takes one soon; start another."""
        with self._lock:
            victim = self.workers[index % len(self.workers)]
            busy = self._busy(victim.pid)
            procs.kill_session(victim)
            self.workers[index % len(self.workers)] = self._worker()
            self.faults[f"worker SIGKILL ({'mid-job' if busy else 'idle'})"] += 1

    def _busy(self, pid: int, polls: int = 500) -> bool:
        """Poll (a bounded number of times) until the worker with this pid is running a job, as
        rq records it (the worker runs jobs in its own process, so there is no horse to see)."""
        client = self.queue_redis()
        try:
            for _ in range(polls):
                if any(worker.pid == pid and worker.get_current_job_id()
                       for worker in Worker.all(connection=client)):
                    return True
                time.sleep(0.005)
        except redis.RedisError:  # the queue Redis is being restarted by another fault
            return False
        finally:
            client.close()
        return False

    def restart_queue(self) -> None:
        """SIGKILL and restart the queue Redis: every queued job, id, lock and metric is lost."""
        self.drift_counted += self.drift_metric()
        self.queue_server.restart()
        self.faults["queue Redis restart"] += 1

    def flush_counters(self) -> None:
        """FLUSHALL the counter Redis (every master of a cluster): counters, dedupe set, markers
        and registry are gone."""
        self.counters.flush()
        self.faults["counter Redis FLUSHALL"] += 1

    def start_rebuild(self) -> None:
        """`tally cache rebuild` over every tenant, in the background, while writes go on."""
        self.reap_rebuilds()
        with open(self.log("cli"), "ab") as out:
            self.rebuilds.append(subprocess.Popen([str(CLI), "cache", "rebuild"], cwd=procs.ROOT,
                                                  env=self.env, stdout=out,
                                                  stderr=subprocess.STDOUT))
        self.faults["concurrent rebuild"] += 1

    def reap_rebuilds(self, timeout: float = 0) -> None:
        """Collect finished rebuilds (waiting up to `timeout` s each); a failure fails the run."""
        for process in list(self.rebuilds):
            try:
                code = process.wait(timeout) if timeout else process.poll()
            except subprocess.TimeoutExpired:
                raise AssertionError("a `tally cache rebuild` did not finish in time") from None
            if code is not None:
                assert code == 0, self.log("cli").read_text()[-3000:]
                self.rebuilds.remove(process)

    # -- the end ----------------------------------------------------------------------------------
    def stop_background(self) -> None:
        """Stop the scheduler and the workers: SIGTERM, then SIGKILL if one ignores it.

        Exit codes are not checked: rq 2.12 loses a SIGTERM that lands while it logs (the
        StopRequested its handler raises is swallowed by logging), and the outbox is drained.
        """
        for process in [self.scheduler, *self.workers]:
            if process is not None:
                procs.stop(process)
        self.scheduler, self.workers = None, []

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(CLI), *args], cwd=procs.ROOT, env=self.env, capture_output=True,
                              text=True, timeout=300)

    def close(self) -> None:
        """Stop everything still running (after a failure too)."""
        for process in self.rebuilds:
            process.kill()
            process.wait(10)
        for process in [self.scheduler, *self.workers, self.web]:
            if process is not None:
                procs.stop(process)
        if self.counter_server is not None:
            self.counter_server.stop()
        self.queue_server.stop()
