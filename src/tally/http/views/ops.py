"""Liveness and readiness probes and Prometheus metrics (outside the API prefix, no auth)."""
from __future__ import annotations

import logging

from flask import Response
from marshmallow import Schema, fields
from sqlalchemy import text

from tally.observability import metrics
from tally.services.figures import shared_figures
from tally.errors import TallyError
from tally.extensions import services
from tally.http.api import STATUS_HEADERS
from tally.http.bodies import Blueprint

log = logging.getLogger("tally.http.views.ops")
blp = Blueprint("ops", __name__, description="Probes for operators and orchestrators")


class ChecksSchema(Schema):
    database = fields.String(required=True, metadata={"example": "ok"})
    redis = fields.String(required=True, metadata={"example": "ok"})


class ProbeSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    checks = fields.Nested(ChecksSchema)


@blp.route("/healthz")
@blp.response(200, ProbeSchema)
def healthz():  # noqa: ANN201
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200, ProbeSchema)
@blp.alt_response(503, schema=ProbeSchema, description="A dependency is unreachable")
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
    if ready:
        return {"status": "ok", "checks": checks}
    return {"status": "unavailable", "checks": checks}, 503, STATUS_HEADERS[503]


@blp.route("/metrics")
@blp.response(200, description="Prometheus text exposition", content_type=metrics.CONTENT_TYPE)
def metrics_text() -> Response:
    """Requests and latency per route, warm vs cold reads, outbox backlog, events applied, failed
    jobs, drift found by the sampling verify, open streams (see docs/operations.md)."""
    svc = services()
    return Response(metrics.exposition(lambda: shared_figures(svc)),
                    content_type=metrics.CONTENT_TYPE)
