"""Configuration: one table of the environment variables tally reads (SETTINGS), each with its
type, default and meaning, and one class per TALLY_ENV holding the values.

The table is the documentation's source: README's configuration table and config/example.env
are generated from it (`python -m tally.settings`), and a test fails when either is stale. In
development (only) a `.env` file in the working directory is read under the environment;
production and test read the process environment alone.
"""
from __future__ import annotations

import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dotenv import dotenv_values

from tally.errors import ConfigError

ENVS = ("development", "test", "production")
DOTENV = ".env"  # read from the working directory, in development only
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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


def parse_level(name: str, raw: str) -> str:
    value = raw.strip().upper()
    if value not in LOG_LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(LOG_LEVELS)}, not {raw!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """One environment variable: its type, default, bounds and a one-line meaning.

    `attr` is the config attribute it sets (None: read elsewhere, by `reader`, and listed here so
    that it is documented with the rest); `shown` replaces the default in the docs where the
    value itself would mislead (a default computed at run time).
    """

    name: str
    kind: str  # str | bool | int | float | level | choice
    default: Any
    doc: str
    attr: str | None = None
    minimum: float = 0
    maximum: float = math.inf
    shown: str | None = None
    reader: str = "src/tally/settings.py"

    def parse(self, raw: str) -> Any:
        if self.kind == "bool":
            return parse_bool(self.name, raw)
        if self.kind == "int":
            return parse_int(self.name, raw, int(self.minimum))
        if self.kind == "float":
            return parse_float(self.name, raw, self.minimum, self.maximum)
        if self.kind == "level":
            return parse_level(self.name, raw)
        return raw

    def default_text(self) -> str:
        if self.shown is not None:
            return self.shown
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return "" if self.default is None else str(self.default)


def _s(name: str, kind: str, default: Any, doc: str, **more: Any) -> Setting:
    """A TALLY_<NAME> variable setting the config attribute <NAME>."""
    return Setting(f"TALLY_{name}", kind, default, doc, attr=name, **more)


GUNICORN = "config/gunicorn.conf.py"
SETTINGS: tuple[Setting, ...] = (
    Setting("TALLY_ENV", "choice", "development", "`development`, `test`, `production`; only "
            "`development` reads a `.env` file, which cannot set this one"),
    _s("DATABASE_URL", "str", "sqlite:///var/tally.db",
       "SQLAlchemy URL (SQLite or `postgresql+psycopg://…`)"),
    _s("DB_POOL_SIZE", "int", 5, "PostgreSQL connections pooled per process", minimum=1),
    _s("DB_MAX_OVERFLOW", "int", 10, "more connections a process may open under load "
       "([deployment](docs/deployment.md))"),
    _s("REDIS_URL", "str", "redis://127.0.0.1:6379/0", "the counter store"),
    _s("REDIS_CLUSTER", "bool", False,
       "`true`: the counter store is a Redis Cluster (seed node in `TALLY_REDIS_URL`)"),
    _s("QUEUE_URL", "str", "", "the standalone Redis RQ uses (required when "
       "`TALLY_REDIS_CLUSTER=true`)", shown="`TALLY_REDIS_URL`"),
    _s("REALMS_FILE", "str", "", "JSON: `{\"<realm>\": {\"issuer\", \"audience\"?, \"jwks_uri\" "
       "or \"jwks_file\"}}`", shown="—"),
    _s("POLL_INTERVAL", "int", 30, "seconds, sent as `X-Poll-Interval`; also how long, at most "
       "(and 5 s at most), another worker may still count a filter just deleted", minimum=1),
    _s("VAR_DIR", "str", "var", "development files: dev keys, demo realm, SQLite, embedded Redis"),
    _s("STREAMS_PER_PROCESS", "int", 200, "open SSE streams per web process (503 beyond, when "
       "other users fill it); gunicorn gets this many threads on top of `GUNICORN_THREADS`"),
    _s("STREAMS_PER_USER", "int", 8,
       "open SSE streams per user per web process (a newer one replaces the user's oldest)"),
    _s("STREAM_HEARTBEAT_SECONDS", "int", 15, "keep-alive comment interval on an idle stream "
       "(also how often streams re-read while pub/sub is down)", minimum=1),
    _s("STREAM_MAX_SECONDS", "int", 900,
       "a stream's longest life; the client reconnects (its token checked again)", minimum=1),
    _s("MIN_WATERMARK_WAIT_MS", "int", 250, "how long a count sent with `X-Min-Watermark` "
       "waits for the worker before answering from SQL ([watermarks](docs/api-watermarks.md))"),
    _s("LOG_SLOW_MS", "int", 500, "a request slower than this (ms, until its response starts) "
       "always gets an access line"),
    _s("LOG_SAMPLE_RATE", "float", 0.01, "share (0–1) of other requests logged; errors are "
       "always logged except 401/403/404 ([operations](docs/operations.md#logs))", maximum=1),
    _s("METRICS_FOLD_SECONDS", "float", 1.0, "how often each web process folds its request "
       "counts into `/metrics` (how far `/metrics` may lag)", minimum=0.1),
    _s("WORKER_MAX_JOBS", "int", 10_000,
       "jobs a worker runs before it replaces itself with a fresh process (0: never)"),
    _s("RQ_LOG_LEVEL", "level", "WARNING", "level of rq's own lines in the worker; `INFO` "
       "logs every job's start and end (some 52,000 lines a day from the sweep alone)"),
    _s("VERIFY_INTERVAL_SECONDS", "int", 300,
       "seconds between sampling verifies of warm counters against SQL (0: never)"),
    _s("VERIFY_SAMPLE_SIZE", "int", 20,
       "warm counter groups (user hashes, ticket cells) one sampling verify compares per tenant"),
    _s("SEEN_EVENTS_RETENTION_SECONDS", "int", 7 * 86_400, "the redelivery horizon: how long "
       "an accepted `eventId` is remembered, so a redelivery answers `duplicates`; later it "
       "answers `accepted` and still counts nothing ([operations](docs/operations.md"
       "#the-redelivery-horizon)); `0` keeps every id forever"),
    _s("SEEN_EVENTS_PRUNE_INTERVAL_SECONDS", "int", 3600, "how often the scheduler enqueues the "
       "prune of ids older than the horizon (1,000 rows per transaction); `0` never"),
    _s("TRIM_INTERVAL_SECONDS", "int", 3600, "how often the scheduler's trim job folds, in every "
       "warm timed ticket cell, the members no window of its filters can reach any more into one "
       "count ([architecture](docs/architecture.md#trimming-timed-cells)); `0` turns it off and "
       "the sorted sets keep every ticket that ever matched"),
    _s("MP_IDLE_SECONDS", "int", 7 * 86_400, "a ticket predicate (MP) nobody has read for this "
       "long is dropped with its cells, so the worker stops evaluating it; its next read "
       "recomputes it. The scheduler runs the drop 24 times per period; `0` never drops "
       "([architecture](docs/architecture.md#forgetting-what-nobody-reads))"),
    _s("BENCH_BASELINE", "bool", False,
       "`true`: serve `/bench/baseline`, the yardstick of `make bench` (never in production)"),
    _s("CLOCK_FILE", "str", "", "development and tests only: a file holding the epoch seconds "
       "that every process takes as \"now\" (the soak's injected clock, [operations](docs/"
       "operations.md#soak-state-over-time)); refused with `TALLY_ENV=production`", shown="—"),
    Setting("PORT", "int", 8000, "the web process's port (the edge's, Caddy)", reader=GUNICORN),
    Setting("WEB_CONCURRENCY", "int", None, "gunicorn's worker processes", shown="2 × cores",
            reader=GUNICORN),
    Setting("GUNICORN_THREADS", "int", 4, "poll threads per gunicorn worker (each also gets one "
            "thread per allowed stream)", reader=GUNICORN),
    Setting("PROMETHEUS_MULTIPROC_DIR", "str", None, "where gunicorn's workers share `/metrics` "
            "figures", shown="a temp dir per run", reader=GUNICORN),
)
BY_ATTR = {setting.attr: setting for setting in SETTINGS if setting.attr}


class Base:
    """Every setting at its default: SETTINGS' variables, then internal tunables that only code
    (tests, benchmarks: create_app's overrides) changes."""

    ENV = "development"
    TESTING = False
    # Largest request body accepted, in bytes (POST /events carries batches).
    MAX_CONTENT_LENGTH = 4 * 1024 * 1024
    # Most events one POST /events may carry.
    MAX_EVENTS_PER_CALL = 5000
    # Seconds an outbox row waits before the sweep treats its job as lost.
    SWEEP_GRACE_SECONDS = 5
    # Seconds applied outbox rows (and their dedupe entries) are kept; must exceed JOB_TIMEOUT.
    OUTBOX_RETENTION_SECONDS = 900
    # Seconds one apply job may run before RQ stops it.
    JOB_TIMEOUT = 120
    # Seconds between scheduler ticks (outbox sweep).
    SCHEDULE_INTERVAL = 5
    # Most outbox rows one apply job takes.
    APPLY_BATCH_SIZE = 500
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


for _setting in BY_ATTR.values():  # the table's defaults, as class attributes
    setattr(Base, _setting.attr, _setting.default)  # type: ignore[arg-type]


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
assert tuple(CLASSES) == ENVS


def environment(environ: Mapping[str, str] | None = None,
                dotenv: str | os.PathLike[str] = DOTENV) -> Mapping[str, str]:
    """The variables to configure from: `environ` (default: the process environment), under
    which, in development only, the `.env` file's values fill in what it does not set.

    The environment alone chooses the TALLY_ENV, so a `.env` can never turn production on or
    off; in production and test a `.env` left on the machine is never read.
    """
    env = os.environ if environ is None else environ
    if env.get("TALLY_ENV", "development").strip().lower() != "development":
        return env
    found = {name: value for name, value in dotenv_values(dotenv).items()
             if value is not None and name != "TALLY_ENV"}
    return {**found, **env} if found else env


def from_env(environ: Mapping[str, str] | None = None) -> Base:
    """Build the config for TALLY_ENV from the process environment (with `.env` in development)
    or from `environ` alone; a bad variable raises ConfigError naming it."""
    env = environment() if environ is None else environ
    name = env.get("TALLY_ENV", "development").strip().lower()
    if name not in CLASSES:
        raise ConfigError(f"TALLY_ENV must be one of {', '.join(CLASSES)}, not {name!r}")
    config = CLASSES[name]()
    for attr, setting in BY_ATTR.items():
        if setting.name in env:
            setattr(config, attr, setting.parse(env[setting.name]))
    if config.REDIS_CLUSTER and not config.QUEUE_URL:  # RQ cannot run on a Redis Cluster
        raise ConfigError("TALLY_QUEUE_URL must name a standalone Redis when "
                          "TALLY_REDIS_CLUSTER is true")
    return config


def log_level(name: str) -> int:
    """The logging level a `level` setting names."""
    return logging.getLevelName(name)


# -- the documentation, generated from SETTINGS ----------------------------------------------------
README_BEGIN = ("<!-- settings: generated from src/tally/settings.py "
                "by `python -m tally.settings` -->")
README_END = "<!-- /settings -->"


def markdown_table() -> str:
    """README's configuration table: one row per setting, in SETTINGS' order."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = setting.default_text()
        if default and not default.startswith("`") and default != "—" and setting.shown is None:
            default = f"`{default}`"
        reader = "" if setting.reader == Setting.reader else f" (read by `{setting.reader}`)"
        rows.append(f"| `{setting.name}` | {default or '—'} | {setting.doc}{reader} |")
    return "\n".join(rows)


LINK = re.compile(r"\[([^]]+)\]\([^)]+\)")  # a Markdown link: its text in example.env


def example_env() -> str:
    """config/example.env: every variable at its default, with its meaning."""
    lines = ["# Every variable tally reads, at its default (generated from src/tally/settings.py).",
             "# In development, copy to .env and edit: tally reads ./.env under the environment",
             "# (the environment wins). Production never reads .env: set the environment there."]
    for setting in SETTINGS:
        value = "" if setting.default in (None, "") else setting.default_text()
        doc = LINK.sub(r"\1", setting.doc).replace("`", "")
        if setting.shown and setting.shown != "—":
            doc += f"; empty: {setting.shown.replace('`', '')}"
        # Commented out: what a .env cannot set (TALLY_ENV; what gunicorn's config reads).
        line = f"{setting.name}={value}"
        if setting.attr is None:
            line, doc = f"# {line}", f"{doc} (environment only)"
        lines.append(line.ljust(44) + f"# {doc}")
    return "\n".join(lines) + "\n"


def readme_with_table(readme: str) -> str:
    """`readme` with the text between README_BEGIN and README_END replaced by markdown_table()."""
    head, begin, rest = readme.partition(README_BEGIN)
    _old, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"README has no {README_BEGIN} … {README_END} block")
    return f"{head}{begin}\n{markdown_table()}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    """`python -m tally.settings [ROOT]`: rewrite README's table and config/example.env."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else ".")
    readme = root / "README.md"
    readme.write_text(readme_with_table(readme.read_text()))
    (root / "config" / "example.env").write_text(example_env())
    print(f"wrote {readme} and {root / 'config' / 'example.env'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
