"""Configuration classes, one per TALLY_ENV, each variable read once from the environment."""
from __future__ import annotations

import math
import os
from typing import Mapping

from tally.errors import ConfigError


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def parse_int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def parse_float(name: str, raw: str, minimum: float, maximum: float = math.inf) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not (math.isfinite(value) and minimum <= value <= maximum):  # NaN fails every comparison
        upper = f" and at most {maximum:g}" if math.isfinite(maximum) else ""
        raise ConfigError(f"{name} must be a number of at least {minimum:g}{upper}, not {raw!r}")
    return value


class Base:
    ENV = "development"
    TESTING = False
    # SQLAlchemy URL of the source of truth (SQLite or PostgreSQL).
    DATABASE_URL = "sqlite:///var/tally.db"
    # PostgreSQL connections each process keeps pooled, and how many more it may open under load.
    DB_POOL_SIZE = 5
    DB_MAX_OVERFLOW = 10
    # The counter store (derived data only).
    REDIS_URL = "redis://127.0.0.1:6379/0"
    # True: REDIS_URL is a seed node of a Redis Cluster.
    REDIS_CLUSTER = False
    # The standalone Redis that RQ uses; empty means REDIS_URL.
    QUEUE_URL = ""
    # JSON file of realms: {"<realm>": {"issuer", "audience"?, "jwks_uri" | "jwks_file"}}.
    REALMS_FILE = ""
    # Seconds, sent to badge clients as X-Poll-Interval.
    POLL_INTERVAL = 30
    # Largest request body accepted, in bytes (POST /events carries batches).
    MAX_CONTENT_LENGTH = 4 * 1024 * 1024
    # Most events one POST /events may carry.
    MAX_EVENTS_PER_CALL = 5000
    # Where development keys, the demo realm and the SQLite file live.
    VAR_DIR = "var"
    # Seconds an outbox row waits before the sweep treats its job as lost.
    SWEEP_GRACE_SECONDS = 5
    # Seconds applied outbox rows (and their dedupe entries) are kept; must exceed JOB_TIMEOUT.
    OUTBOX_RETENTION_SECONDS = 900
    # Seconds an accepted eventId is remembered as seen (the redelivery horizon; 0: forever).
    # A redelivery later than this is still counted once (docs/operations.md), but answers as
    # accepted rather than duplicate; keep it longer than any producer's retry window.
    SEEN_EVENTS_RETENTION_SECONDS = 7 * 86_400
    # Seconds between prunes of seen event ids older than the horizon (0: never).
    SEEN_EVENTS_PRUNE_INTERVAL_SECONDS = 3600
    # Seconds one apply job may run before RQ stops it.
    JOB_TIMEOUT = 120
    # Seconds between scheduler ticks (outbox sweep).
    SCHEDULE_INTERVAL = 5
    # Most outbox rows one apply job takes.
    APPLY_BATCH_SIZE = 500
    # Jobs a worker process runs before it replaces itself with a fresh one (0: never).
    WORKER_MAX_JOBS = 10_000
    # Seconds between sampling verifies of warm counters against SQL (0: never).
    VERIFY_INTERVAL_SECONDS = 300
    # Warm counter groups (user hashes, ticket cells) one sampling verify compares per tenant.
    VERIFY_SAMPLE_SIZE = 20
    # Seconds between trims of timed ticket cells: members no window can reach any more are
    # folded into a count (0: never; the sorted sets then keep every ticket that ever matched).
    TRIM_INTERVAL_SECONDS = 3600
    # Seconds a materialised predicate may go unread before it and its cells are dropped (the
    # next read recomputes them); the drop job runs every 1/24 of it (0: never drop).
    MP_IDLE_SECONDS = 7 * 86_400
    # True: serve /bench/baseline, the constant-body yardstick of `make bench` (not in production).
    BENCH_BASELINE = False
    # Development and tests only: a file holding the epoch seconds every process of a run takes
    # as "now" (services.clock; the soak's injected clock, set by tally.dev). Refused in production.
    CLOCK_FILE = ""
    # Notification streams (SSE) one web process holds; gunicorn gets this many threads on top
    # of GUNICORN_THREADS, so polls never wait behind streams (config/gunicorn.conf.py).
    STREAMS_PER_PROCESS = 200
    # Streams one user may hold on one web process; a newer one replaces the user's oldest.
    STREAMS_PER_USER = 8
    # Seconds between keep-alive comments on an idle stream (also how often streams re-read
    # while the pub/sub connection is down; a client that closes is noticed at once).
    STREAM_HEARTBEAT_SECONDS = 15
    # Seconds a stream lives before the server ends it; the client reconnects (token re-checked).
    STREAM_MAX_SECONDS = 900
    # Milliseconds a count sent with X-Min-Watermark waits for the worker to apply that write
    # before it answers from SQL instead (0: straight to SQL).
    MIN_WATERMARK_WAIT_MS = 250
    # Access log (tally.observability.logs.AccessLog): every 5xx and every 4xx but 401/403/404
    # is logged, every request slower than LOG_SLOW_MS too, and of the rest a random share
    # LOG_SAMPLE_RATE (0-1).
    LOG_SLOW_MS = 500
    LOG_SAMPLE_RATE = 0.01
    # Seconds between folds of a web process's request counts into /metrics (its lag at most).
    METRICS_FOLD_SECONDS = 1.0
    # Entries each per-process cache holds at most, by name (tally.extensions.Caches lists them;
    # docs/decisions.md gives each one's validity rule). A name left out keeps its default.
    CACHE_SIZES: dict[str, int] = {}

    # flask-smorest / OpenAPI
    API_TITLE = "tally"
    API_VERSION = "v2"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    # Swagger UI from the copy shipped in the package (static/swagger-ui/VERSION): /docs offline.
    OPENAPI_SWAGGER_UI_URL = "/static/swagger-ui/"
    JSON_SORT_KEYS = False

    @property
    def queue_url(self) -> str:
        return self.QUEUE_URL or self.REDIS_URL


class Development(Base):
    ENV = "development"


class Test(Base):
    ENV = "test"
    TESTING = True
    DATABASE_URL = "sqlite:///:memory:"
    SWEEP_GRACE_SECONDS = 0


class Production(Base):
    ENV = "production"


CLASSES = {"development": Development, "test": Test, "production": Production}


def from_env(environ: Mapping[str, str] | None = None) -> Base:
    """Build the config for TALLY_ENV from the environment; a bad variable raises ConfigError."""
    env = os.environ if environ is None else environ
    name = env.get("TALLY_ENV", "development").strip().lower()
    if name not in CLASSES:
        raise ConfigError(f"TALLY_ENV must be one of {', '.join(CLASSES)}, not {name!r}")
    config = CLASSES[name]()
    if "TALLY_DATABASE_URL" in env:
        config.DATABASE_URL = env["TALLY_DATABASE_URL"]
    if "TALLY_REDIS_URL" in env:
        config.REDIS_URL = env["TALLY_REDIS_URL"]
    if "TALLY_REDIS_CLUSTER" in env:
        config.REDIS_CLUSTER = parse_bool("TALLY_REDIS_CLUSTER", env["TALLY_REDIS_CLUSTER"])
    if "TALLY_QUEUE_URL" in env:
        config.QUEUE_URL = env["TALLY_QUEUE_URL"]
    if "TALLY_REALMS_FILE" in env:
        config.REALMS_FILE = env["TALLY_REALMS_FILE"]
    if "TALLY_VAR_DIR" in env:
        config.VAR_DIR = env["TALLY_VAR_DIR"]
    if "TALLY_POLL_INTERVAL" in env:
        config.POLL_INTERVAL = parse_int("TALLY_POLL_INTERVAL", env["TALLY_POLL_INTERVAL"], 1)
    if "TALLY_BENCH_BASELINE" in env:
        config.BENCH_BASELINE = parse_bool("TALLY_BENCH_BASELINE", env["TALLY_BENCH_BASELINE"])
    if "TALLY_CLOCK_FILE" in env:
        config.CLOCK_FILE = env["TALLY_CLOCK_FILE"]
    for name in ("STREAMS_PER_PROCESS", "STREAMS_PER_USER"):
        if f"TALLY_{name}" in env:
            setattr(config, name, parse_int(f"TALLY_{name}", env[f"TALLY_{name}"]))
    for name in ("STREAM_HEARTBEAT_SECONDS", "STREAM_MAX_SECONDS"):
        if f"TALLY_{name}" in env:
            setattr(config, name, parse_int(f"TALLY_{name}", env[f"TALLY_{name}"], 1))
    if "TALLY_MIN_WATERMARK_WAIT_MS" in env:
        config.MIN_WATERMARK_WAIT_MS = parse_int("TALLY_MIN_WATERMARK_WAIT_MS",
                                                 env["TALLY_MIN_WATERMARK_WAIT_MS"])
    if "TALLY_LOG_SLOW_MS" in env:
        config.LOG_SLOW_MS = parse_int("TALLY_LOG_SLOW_MS", env["TALLY_LOG_SLOW_MS"])
    if "TALLY_LOG_SAMPLE_RATE" in env:
        config.LOG_SAMPLE_RATE = parse_float("TALLY_LOG_SAMPLE_RATE",
                                             env["TALLY_LOG_SAMPLE_RATE"], 0, 1)
    if "TALLY_METRICS_FOLD_SECONDS" in env:
        config.METRICS_FOLD_SECONDS = parse_float("TALLY_METRICS_FOLD_SECONDS",
                                                  env["TALLY_METRICS_FOLD_SECONDS"], 0.1)
    if "TALLY_WORKER_MAX_JOBS" in env:
        config.WORKER_MAX_JOBS = parse_int("TALLY_WORKER_MAX_JOBS", env["TALLY_WORKER_MAX_JOBS"])
    if "TALLY_DB_POOL_SIZE" in env:
        config.DB_POOL_SIZE = parse_int("TALLY_DB_POOL_SIZE", env["TALLY_DB_POOL_SIZE"], 1)
    if "TALLY_DB_MAX_OVERFLOW" in env:
        config.DB_MAX_OVERFLOW = parse_int("TALLY_DB_MAX_OVERFLOW", env["TALLY_DB_MAX_OVERFLOW"])
    for name in ("VERIFY_INTERVAL_SECONDS", "VERIFY_SAMPLE_SIZE", "SEEN_EVENTS_RETENTION_SECONDS",
                 "SEEN_EVENTS_PRUNE_INTERVAL_SECONDS", "TRIM_INTERVAL_SECONDS",
                 "MP_IDLE_SECONDS"):
        if f"TALLY_{name}" in env:
            setattr(config, name, parse_int(f"TALLY_{name}", env[f"TALLY_{name}"]))
    if config.REDIS_CLUSTER and not config.QUEUE_URL:  # RQ cannot run on a Redis Cluster
        raise ConfigError("TALLY_QUEUE_URL must name a standalone Redis when "
                          "TALLY_REDIS_CLUSTER is true")
    return config
