"""Thin RQ entry points, enqueued by the dotted paths in tally/jobs.py; each runs in an app context.

A job uses the app already pushed (tests with SimpleWorker inside `app.app_context()`), else the
process's app: built once (tally.workers.run binds it), and, should a job ever run in a forked
process, with the SQL pool inherited through fork() dropped first, since a connection must never
be shared by two processes.
"""
from __future__ import annotations

import functools
import logging
import os
import secrets
from typing import Any, Callable, TypeVar

from flask import Flask, has_app_context
from rq import get_current_job

from tally import jobs as names
from tally.app import create_app
from tally.core.clock import epoch_ms
from tally.errors import StoreUnavailable
from tally.extensions import services
from tally.services import ingest, maintenance, outbox, ticket_maintenance
from tally.services.figures import record_drift

log = logging.getLogger("tally.workers.jobs")
F = TypeVar("F", bound=Callable[..., Any])

SWEEP_LOCK_KEY = "tally-sweep:lock"  # in the queue Redis; not a counter key, so no tenant tag
_RELEASE = ("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
            "return 0")

_app: Flask | None = None
_app_pid: int | None = None


def bind_app(app: Flask) -> None:
    """Use `app` for every job of this process (and of the work horses it forks)."""
    global _app, _app_pid
    _app, _app_pid = app, os.getpid()


def _process_app() -> Flask:
    if _app is None:
        bind_app(create_app())
    elif _app_pid != os.getpid():  # a forked work horse: drop the parent's SQL connections
        _app.extensions["tally"].db.dispose()
        bind_app(_app)
    assert _app is not None
    return _app


def job(func: F) -> F:
    """Run `func` inside an application context."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            return func(*args, **kwargs)
        with _process_app().app_context():
            return func(*args, **kwargs)

    return run  # type: ignore[return-value]


def _job_id() -> str:
    current = get_current_job()
    return current.id if current is not None else "-"


@job
def apply_tenant(tenant: str, high_water: int) -> dict[str, int]:
    """Apply every pending outbox row of `tenant` (at least those up to `high_water`).

    Jobs coalesce: one applies every row pending when it starts, so the jobs enqueued meanwhile
    find theirs applied and return after one query. A job takes no new batch after
    APPLY_BUDGET_SECONDS and enqueues its continuation instead.
    """
    svc = services()
    report = outbox.apply_pending(svc, tenant, budget_seconds=names.APPLY_BUDGET_SECONDS)
    log.info("job %s tenant %s: high water %s, %d rows, %d applied, %d already applied",
             _job_id(), tenant, high_water, report.rows, report.applied, report.duplicates)
    if report.more:
        high = outbox.high_water(svc.db, tenant)
        if high is not None:
            names.enqueue_apply(svc.queue_redis, tenant, high, attempt=f"after-{report.last_id}",
                                job_timeout=int(svc.config.JOB_TIMEOUT))
            log.info("job %s tenant %s: time budget spent; continues up to %s", _job_id(),
                     tenant, high)
    return {"rows": report.rows, "applied": report.applied, "duplicates": report.duplicates}


@job
def sweep() -> dict[str, Any]:
    """Re-enqueue tenants whose outbox rows outwaited the grace period, then prune applied rows.

    Holds a SET NX EX lock in the queue Redis so two sweeps never overlap.
    """
    svc = services()
    timeout = int(svc.config.JOB_TIMEOUT)
    token = secrets.token_hex(8)
    if not svc.queue_redis.set(SWEEP_LOCK_KEY, token, nx=True, ex=timeout):
        log.debug("job %s: another sweep holds the lock; skipped", _job_id())
        return {"skipped": True}
    try:
        now = epoch_ms(svc.clock())
        # A new attempt id per JOB_TIMEOUT window: a lost apply job is replaced once per window.
        attempt = f"sweep-{now // (timeout * 1000)}"
        late = outbox.pending_tenants(svc.db, now - int(svc.config.SWEEP_GRACE_SECONDS) * 1000)
        enqueued = []
        for tenant in late:
            high = outbox.high_water(svc.db, tenant)
            if high is not None and names.enqueue_apply(svc.queue_redis, tenant, high,
                                                        attempt=attempt, job_timeout=timeout):
                enqueued.append(tenant)
        pruned = outbox.prune(svc, now)
        # Every few seconds: a line only when it did something (DEBUG otherwise).
        log.log(logging.INFO if enqueued or pruned else logging.DEBUG,
                "job %s: %d lagging tenants re-enqueued, %d outbox rows pruned", _job_id(),
                len(enqueued), pruned)
        return {"skipped": False, "enqueued": enqueued, "pruned": pruned}
    finally:
        svc.queue_redis.eval(_RELEASE, 1, SWEEP_LOCK_KEY, token)


@job
def verify_sample() -> dict[str, Any]:
    """Compare a random sample of every tenant's warm counters with SQL; count drift in a metric.

    Each drifted group is logged as a WARNING (by maintenance.sample_verify) and the number of
    drifted groups is added to the drift-found total in the queue Redis (record_drift). Nothing
    is repaired.
    """
    svc = services()
    try:
        report = maintenance.sample_verify(svc, int(svc.config.VERIFY_SAMPLE_SIZE))
    except StoreUnavailable as error:
        log.warning("job %s: sampling verify skipped, counter store down: %s", _job_id(),
                    error.message)
        return {"skipped": True}
    record_drift(svc, len(report.drifted))
    # Periodic: a line when it found drift (each drifted group also has its WARNING), else DEBUG.
    log.log(logging.INFO if report.drifted else logging.DEBUG,
            "job %s: sampling verify of %d tenants: %d groups compared, %d drifted", _job_id(),
            report.tenants, report.sampled, len(report.drifted))
    return {"skipped": False, "tenants": report.tenants, "sampled": report.sampled,
            "drifted": len(report.drifted)}


@job
def forget_seen_events() -> dict[str, Any]:
    """Delete seen event ids older than SEEN_EVENTS_RETENTION_SECONDS (0: keep them forever),
    in short transactions; "now" is the services' clock, so a test or the soak can move it."""
    svc = services()
    retention = int(svc.config.SEEN_EVENTS_RETENTION_SECONDS)
    if retention <= 0:
        return {"skipped": True}
    forgotten = ingest.forget_seen(svc.db, epoch_ms(svc.clock()) - retention * 1000)
    log.info("job %s: %d seen event ids past the redelivery horizon deleted in %d batches",
             _job_id(), forgotten.rows, forgotten.batches)
    return {"skipped": False, "rows": forgotten.rows, "batches": forgotten.batches}


@job
def trim_cells() -> dict[str, Any]:
    """Fold what no window can reach out of every tenant's timed cells (TRIM_INTERVAL_SECONDS).

    Each cell is trimmed by one atomic script that refuses while the cell is rebuilt, so two
    overlapping runs, a rebuild or applies in between never make a count wrong.
    """
    svc = services()
    now = epoch_ms(svc.clock())
    totals = ticket_maintenance.TrimReport()
    try:
        for tenant in maintenance.tenants(svc):
            report = ticket_maintenance.trim(svc, tenant, now)
            totals.cells += report.cells
            totals.folded += report.folded
            totals.busy += report.busy
    except StoreUnavailable as error:
        log.warning("job %s: trim stopped, counter store down: %s", _job_id(), error.message)
        return {"skipped": True}
    log.info("job %s: trim: %d timed cells, %d members folded, %d held by a rebuild", _job_id(),
             totals.cells, totals.folded, totals.busy)
    return {"skipped": False, "cells": totals.cells, "folded": totals.folded, "busy": totals.busy}


@job
def drop_idle() -> dict[str, Any]:
    """Drop, in every tenant, the MPs nobody has read for MP_IDLE_SECONDS (0: none), "now" being
    the services' clock; the next read of one recomputes it."""
    svc = services()
    idle_s = int(svc.config.MP_IDLE_SECONDS)
    if idle_s <= 0:
        return {"skipped": True}
    now = epoch_ms(svc.clock())
    totals = dict.fromkeys(("tenants", "registered", *ticket_maintenance.DROP_OUTCOMES.values()), 0)
    try:
        for tenant in maintenance.tenants(svc):
            report = ticket_maintenance.drop_idle(svc, tenant, now, idle_s * 1000)
            totals["tenants"] += 1
            totals["registered"] += report.registered
            for outcome, n in report.outcomes.items():
                totals[outcome] += n
    except StoreUnavailable as error:
        log.warning("job %s: idle MP drop stopped, counter store down: %s", _job_id(),
                    error.message)
        return {"skipped": True, **totals}
    log.info("job %s: idle MP drop over %d tenants: %d of %d MPs dropped", _job_id(),
             totals["tenants"], totals["dropped"], totals["registered"])
    return {"skipped": False, **totals}
