"""X-Min-Watermark: a count that reflects at least the caller's own write, or a bounded wait.

A count is answered as usual first. When it claims less than the request's watermark, the
request waits on the tenant's watermark channel (tally.http.fanout's `watch`: the pub/sub the
streams use, no polling) until the worker's applied watermark reaches it, then counts again;
after MIN_WATERMARK_WAIT_MS it answers from SQL (X-Count-Source: sql), which holds every write
committed. A watermark beyond any the tenant was issued is a 400 (an answer from SQL, which
claims the last issued, shows it).
"""
from __future__ import annotations

import time
from typing import Callable, Protocol, TypeVar

from flask import Flask

from tally.core import watermarks as wire
from tally.errors import StoreUnavailable
from tally.extensions import Services
from tally.http.fanout import hub
from tally.services import notifications, watermarks

MIN_ENVIRON = "HTTP_" + wire.MIN_HEADER.upper().replace("-", "_")


class Claims(Protocol):
    source: str
    watermark: int


R = TypeVar("R", bound=Claims)


def wanted(tenant: str, raw: str | None) -> int | None:
    """The request's X-Min-Watermark as a position (None when absent); 400 when it is not a
    watermark of this tenant."""
    return None if raw is None else wire.decode(tenant, raw)


def header(tenant: str, result: Claims) -> tuple[str, str]:
    return wire.HEADER, wire.encode(tenant, result.watermark)


def at_least(svc: Services, app: Flask, tenant: str, position: int | None, first: R,
             recount: Callable[[], R], from_sql: Callable[[], R]) -> R:
    """`first` when it reflects `position` (or no position was asked), else a later count that
    does: recounted once the applied watermark reaches it, or from SQL after the bound."""
    if position is None or first.watermark >= position:
        return first
    if first.source != notifications.CACHE:  # SQL's answer claims every watermark issued
        raise wire.ahead()
    deadline = time.monotonic() + int(svc.config.MIN_WATERMARK_WAIT_MS) / 1000
    subscription = hub(app).watch(watermarks.channel(tenant))
    try:
        # Raise the stored watermark first if SQL says the rows are applied already (the key was
        # lost to a flush, or an apply could not raise it): one statement, then no wait at all.
        watermarks.advance(svc, tenant)
        while True:
            try:
                if watermarks.applied(svc, tenant) >= position:
                    result = recount()
                    if result.watermark >= position:
                        return result
            except StoreUnavailable:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            subscription.wait(remaining)
    finally:
        subscription.close()
    result = from_sql()
    if result.watermark < position:
        raise wire.ahead()
    return result
