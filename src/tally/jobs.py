"""Queue names, dotted paths of the job entry points in workers/, and how tally enqueues them.

The outbox, not RQ, is the durable record of owed work: a job that cannot be enqueued, or is lost,
is re-enqueued by the sweep. So enqueueing never fails a request.
"""
from __future__ import annotations

import hashlib
import logging

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError

log = logging.getLogger("tally.jobs")

APPLY_QUEUE = "tally-apply"
MAINTENANCE_QUEUE = "tally-maintenance"
# The order workers take them in: maintenance first, as its jobs (sweep, sampling verify) are
# periodic and short, and behind the apply queue of a busy ingest they would starve.
QUEUES = (MAINTENANCE_QUEUE, APPLY_QUEUE)

APPLY_TENANT = "tally.workers.jobs.apply_tenant"
SWEEP = "tally.workers.jobs.sweep"
VERIFY_SAMPLE = "tally.workers.jobs.verify_sample"
FORGET_SEEN_EVENTS = "tally.workers.jobs.forget_seen_events"
TRIM = "tally.workers.jobs.trim_cells"
DROP_IDLE = "tally.workers.jobs.drop_idle"
JOB_PATHS = (APPLY_TENANT, SWEEP, VERIFY_SAMPLE, FORGET_SEEN_EVENTS, TRIM, DROP_IDLE)

DEFAULT_JOB_TIMEOUT = 120
RESULT_TTL = 300  # seconds a finished job (and so its id) is kept
FAILURE_TTL = 86_400  # seconds a failed job is kept for operators
APPLY_RETRY_INTERVALS = [1, 2, 5, 10, 30]
# An apply job takes no new batch after this many seconds and enqueues its continuation, so a job
# stays short: a SIGTERM lets it finish, and maintenance jobs get their turn during a backlog.
APPLY_BUDGET_SECONDS = 5.0


def make_job_id(kind: str, *parts: object) -> str:
    """A deterministic RQ job id of [A-Za-z0-9_-]: the kind plus a digest of what it covers."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{kind}-{digest}"


def apply_job_id(tenant: str, high_water: int, attempt: str = "") -> str:
    return make_job_id("apply", tenant, high_water, attempt)


def enqueue_unique(queue_redis: redis.Redis, queue_name: str, path: str, *args: object,
                   job_id: str, **options: object) -> str | None:
    """Enqueue `path` under a deterministic id unless a job with that id is still kept.

    Returns the id (also when it was already enqueued), or None when the queue Redis is
    unreachable: that is logged, not raised, because the outbox sweep re-enqueues lost work.
    """
    options.setdefault("job_timeout", DEFAULT_JOB_TIMEOUT)
    options.setdefault("result_ttl", RESULT_TTL)
    options.setdefault("failure_ttl", FAILURE_TTL)
    queue = Queue(queue_name, connection=queue_redis)
    try:
        queue.enqueue(path, *args, job_id=job_id, unique=True, **options)
    except DuplicateJobError:
        log.debug("job %s already enqueued", job_id)
    except redis.RedisError as error:
        log.warning("could not enqueue %s (%s); the outbox sweep will catch up: %s",
                    job_id, path, error)
        return None
    return job_id


def enqueue_apply(queue_redis: redis.Redis, tenant: str, high_water: int, *,
                  attempt: str = "", job_timeout: int = DEFAULT_JOB_TIMEOUT) -> str | None:
    """Enqueue apply_tenant for a tenant's outbox up to `high_water` (after the SQL commit).

    The same (tenant, high_water, attempt) is enqueued once while its job is kept; `attempt`
    lets the sweep re-enqueue a high water whose job was lost. Returns the job id, or None when
    the queue Redis is down (logged; the sweep catches up).
    """
    return enqueue_unique(
        queue_redis, APPLY_QUEUE, APPLY_TENANT, tenant, high_water,
        job_id=apply_job_id(tenant, high_water, attempt), job_timeout=job_timeout,
        retry=Retry(max=len(APPLY_RETRY_INTERVALS), interval=APPLY_RETRY_INTERVALS),
        description=f"apply the outbox of tenant {tenant} up to {high_water}")
