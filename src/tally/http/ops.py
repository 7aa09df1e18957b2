"""Liveness and readiness probes (outside the API prefix, no auth)."""
from __future__ import annotations

import logging

from flask_smorest import Blueprint
from sqlalchemy import text

from tally.errors import TallyError
from tally.extensions import services

log = logging.getLogger("tally.http.ops")
blp = Blueprint("ops", __name__, description="Probes for operators and orchestrators")


@blp.route("/healthz")
def healthz():  # noqa: ANN201
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz")
def readyz():  # noqa: ANN201
    """The database and the counter store are reachable (503 otherwise)."""
    checks = {"database": "ok", "redis": "ok"}
    try:
        with services().db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # any driver error means not ready
        log.warning("readyz: database unreachable: %s", error)
        checks["database"] = "unavailable"
    try:
        services().counters.ping()
    except TallyError as error:
        log.warning("readyz: redis unreachable: %s", error.message)
        checks["redis"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
