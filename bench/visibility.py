"""Event-to-visible latency: from a POST /events leaving the producer to the new count in Redis.

The producer (bench/producer.py, its own process) sends batches at a steady rate while a real
worker applies them. This watcher subscribes to the watched users' stream channels (the worker
publishes on them after each apply, events/outbox.py `_notify`) and, on each message, reads the
user's `total` — the very field GET …/notification/count answers from. A slow poll of every
user catches anything a lost message would hide. Notification k of user u is visible at the
first moment u's total reaches its starting value + k.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import redis

from tally.stores import keys

POLL_SECONDS = 0.05
DRAIN_SECONDS = 30.0


@dataclass(frozen=True)
class Visibility:
    rate: float  # events per second actually sent
    events: int
    measured: int  # notifications whose visibility was seen
    missing: int  # notifications not visible DRAIN_SECONDS after the producer finished
    p50_ms: float
    p99_ms: float
    max_ms: float
    post_p99_ms: float
    refused: int  # batches not answered 202


class Watcher:
    def __init__(self, redis_url: str, tenant: str, users: Sequence[str]):
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.tenant = tenant
        self.users = list(users)
        self.keys = {user: keys.notification_counts_key(tenant, user) for user in self.users}
        self.channels = {keys.stream_channel(tenant, user): user for user in self.users}
        self.start = self._totals()
        self.seen: dict[str, list[tuple[int, float]]] = {user: [] for user in self.users}

    def _totals(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for user in self.users:
            pipe.hget(self.keys[user], "total")
        values = pipe.execute()
        if any(value is None for value in values):
            raise RuntimeError("a watched user's counters are cold: warm them first")
        return {user: int(value) for user, value in zip(self.users, values)}

    def _record(self, user: str, value: int, at: float) -> None:
        history = self.seen[user]
        if not history or value > history[-1][0]:
            history.append((value, at))

    def watch(self, producer: subprocess.Popen, expected: dict[str, int]) -> None:
        """Record every change of the watched totals until all `expected` are seen (or drain)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*self.channels)
        next_poll, drain_until = 0.0, None
        try:
            while True:
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is not None and message["type"] == "message":
                    user = self.channels[message["channel"]]
                    value = self.client.hget(self.keys[user], "total")
                    self._record(user, int(value or 0), time.time())
                if time.time() >= next_poll:
                    now = time.time()
                    for user, value in self._totals().items():
                        self._record(user, value, now)
                    next_poll = now + POLL_SECONDS
                if producer.poll() is not None:
                    drain_until = drain_until or time.time() + DRAIN_SECONDS
                    done = all(self._latest(u) >= self.start[u] + n for u, n in expected.items())
                    if done or time.time() > drain_until:
                        return
        finally:
            pubsub.close()

    def _latest(self, user: str) -> int:
        history = self.seen[user]
        return history[-1][0] if history else self.start[user]

    def visible_at(self, user: str, sequence: int) -> float | None:
        target = self.start[user] + sequence
        return next((at for value, at in self.seen[user] if value >= target), None)


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure(redis_url: str, base_url: str, tenant: str, users: Sequence[str],
            headers: dict[str, str], tickets: int, rate: int, batch: int, seconds: float,
            ticket_share: float, senders: int = 16) -> Visibility:
    """Run the producer against `base_url` while watching; needs a worker running."""
    watcher = Watcher(redis_url, tenant, users)
    spec = {"base_url": base_url, "headers": headers, "users": list(users), "rate": rate,
            "batch": batch, "seconds": seconds, "ticket_share": ticket_share,
            "tickets": tickets, "senders": senders, "seed": 7}
    with tempfile.TemporaryDirectory(prefix="tally-visibility-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        root = Path(__file__).resolve().parents[1]
        producer = subprocess.Popen([sys.executable, "-m", "bench.producer", str(spec_path),
                                     str(out_path)], cwd=root)
        expected = _expected(spec)
        watcher.watch(producer, expected)
        if producer.wait(60) != 0:
            raise RuntimeError(f"the producer failed with exit code {producer.returncode}")
        records = json.loads(out_path.read_text())
    return _summarise(records, watcher, batch)


def _expected(spec: dict[str, Any]) -> dict[str, int]:
    """How many notifications each user will get (batches() decides; rebuilt the same way)."""
    from bench.producer import batches

    expected: dict[str, int] = {}
    for _, carried in batches(spec):
        for user, sequence in carried:
            expected[user] = max(expected.get(user, 0), sequence)
    return expected


def _summarise(records: list[dict[str, Any]], watcher: Watcher, batch: int) -> Visibility:
    latencies, missing, refused = [], 0, 0
    for record in records:
        if record["status"] != 202:
            refused += 1
            continue
        for user, sequence in record["notifications"]:
            at = watcher.visible_at(user, sequence)
            if at is None:
                missing += 1
            else:
                latencies.append((at - record["sent"]) * 1000)
    sent = sorted(r["sent"] for r in records)
    span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    posts = [(r["answered"] - r["sent"]) * 1000 for r in records]
    return Visibility(rate=(len(records) - 1) * batch / span if span else 0.0,
                      events=len(records) * batch, measured=len(latencies), missing=missing,
                      p50_ms=statistics.median(latencies) if latencies else float("nan"),
                      p99_ms=_percentile(latencies, 99), max_ms=max(latencies, default=0.0),
                      post_p99_ms=_percentile(posts, 99), refused=refused)
