"""Watermarks on the wire: a tenant's position in its stream of writes, opaque to clients.

A watermark is a per-tenant dense counter (SQL's tenants.watermark, bumped by every transaction
that writes outbox rows). On the wire it is `<n>.<tag>`, the tag being 8 hex digits of the
tenant's SHA-256, so a watermark of another tenant (or a typo) is refused instead of being
compared with numbers it has nothing to do with.
"""
from __future__ import annotations

import hashlib
import re

from tally.errors import ValidationFailed

MIN_HEADER = "X-Min-Watermark"
HEADER = "X-Count-Watermark"
_WIRE = re.compile(r"(0|[1-9][0-9]{0,17})\.([0-9a-f]{8})")


def tag(tenant: str) -> str:
    """The tenant's 8 hex digits (about a microsecond; not memoised, see tests/architecture/
    test_caches.py)."""
    return hashlib.sha256(tenant.lower().encode()).hexdigest()[:8]


def encode(tenant: str, position: int) -> str:
    return f"{position}.{tag(tenant)}"


def decode(tenant: str, text: str, name: str = MIN_HEADER) -> int:
    """The position a client sent back; 400 VALIDATION_ERROR (naming `name`) when it is not a
    watermark of this tenant."""
    found = _WIRE.fullmatch(text.strip())
    if found is None:
        raise ValidationFailed(f"{name} is not a watermark",
                               details={name: ["must be a watermark tally issued (n.tag)"]})
    if found.group(2) != tag(tenant):
        raise ValidationFailed(f"{name} belongs to another tenant",
                               details={name: ["is a watermark of another tenant"]})
    return int(found.group(1))


def ahead(name: str = MIN_HEADER) -> ValidationFailed:
    """The 400 for a well-formed watermark beyond any the tenant was issued."""
    return ValidationFailed(f"{name} is beyond any watermark this tenant was issued",
                            details={name: ["was never issued to this tenant"]})
