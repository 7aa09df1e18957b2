"""marshmallow fields every wire schema shares, so a rule of the contract holds in one place."""
from __future__ import annotations

from typing import Any, Mapping

from marshmallow import fields


class StrictBoolean(fields.Boolean):
    """JSON true or false only (contract §2): marshmallow's Boolean also takes "yes", 1, "on",
    "t", ... as true, so `{"all": "yes"}` would mark everything read. Every boolean of a body."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
