"""gunicorn settings for the `web` process (Procfile).

Worker class gthread, sized for streams: an open notification stream (SSE) holds one thread for
its whole life, so each worker gets TALLY_STREAMS_PER_PROCESS threads for streams on top of
GUNICORN_THREADS for every other request. The app refuses a stream beyond its bound (503 with
Retry-After) before it takes a thread for long, so GUNICORN_THREADS threads always remain for
polls however many streams are open. Why not gevent: see docs/operations.md.

Logs are JSON lines (tally.observability.logs; text lines in development); gunicorn's access
log is off because the app's front door (tally.http.front) writes its own access lines, with the
request id and the route template rather than the raw path, for errors, slow requests and a
sample of the rest (TALLY_LOG_*). /metrics sums the workers through prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR); each worker folds its request counts in every
TALLY_METRICS_FOLD_SECONDS and once more as it exits.
"""
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from tally.settings import from_env

_settings = from_env()  # a bad TALLY_* variable stops gunicorn here, naming it

# Behind the edge (tally.edge, the Procfile's web line) a unix socket only Caddy reaches; alone
# (tests, the benchmark's direct rows) the public port.
bind = (f"unix:{os.environ['TALLY_EDGE_SOCKET']}" if os.environ.get("TALLY_EDGE_SOCKET")
        else f"0.0.0.0:{os.environ.get('PORT') or '8000'}")
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2)
# Threads for polls and every other short request; streams get their own on top.
poll_threads = int(os.environ.get("GUNICORN_THREADS") or 4)
threads = poll_threads + int(_settings.STREAMS_PER_PROCESS)
worker_class = "gthread"
worker_connections = max(1000, 2 * threads)
keepalive = 5
# One header line (name, value, CRLF) may carry a bearer token of tally.auth.tokens.MAX_TOKEN_BYTES
# (32 KiB; gunicorn's default, 8190, refused tokens past ~8 KiB before tally saw them).
limit_request_field_size = 40960
timeout = 30  # the worker's own heartbeat (its main loop), not a limit on a request or stream
graceful_timeout = 20
accesslog = None
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"()": "tally.observability.logs.handler",
                            "readable": _settings.ENV == "development"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
                "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False}},
}
# Build the app once in the master so workers share imported code (copy-on-write).
preload_app = True

# -- /metrics across workers -------------------------------------------------------------------
# Set before the app (and prometheus-client) is imported by preload_app.
_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
_OWN_DIR = not os.environ.get(_MULTIPROC)
if _OWN_DIR:
    os.environ[_MULTIPROC] = tempfile.mkdtemp(prefix="tally-prometheus-")
elif not os.environ.get("_TALLY_PROMETHEUS_WIPED"):  # first load only, not on a HUP reload
    Path(os.environ[_MULTIPROC]).mkdir(parents=True, exist_ok=True)
    for stale in Path(os.environ[_MULTIPROC]).glob("*.db"):
        stale.unlink()
    os.environ["_TALLY_PROMETHEUS_WIPED"] = "1"


def worker_exit(server, worker):  # noqa: ANN001, ANN201
    """Fold this worker's last requests into /metrics before it goes (in the worker process)."""
    from tally.observability import metrics

    metrics.fold()


def child_exit(server, worker):  # noqa: ANN001, ANN201
    """Drop a dead worker's live gauges (open streams) from /metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ANN001, ANN201
    if _OWN_DIR:
        shutil.rmtree(os.environ[_MULTIPROC], ignore_errors=True)


def post_worker_init(worker):  # noqa: ANN001, ANN201
    """On SIGTERM, end this worker's streams at once (else shutdown waits graceful_timeout).

    The streams are ended from a new thread: a signal handler must not take locks, since a
    second SIGTERM (the master's, after the platform's) can interrupt the first one holding them.
    """
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):  # noqa: ANN001, ANN202
        from tally.http.fanout import close_all

        threading.Thread(target=close_all, name="tally-close-streams", daemon=True).start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)
