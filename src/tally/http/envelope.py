"""The contract's success and error bodies."""
from __future__ import annotations

from typing import Any

from tally.clock import iso_ms, utc_now


def success(data: Any, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True}
    if message is not None:
        body["message"] = message
    body["data"] = data
    body["timestamp"] = iso_ms(utc_now())
    return body


def failure(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "details": details},
            "timestamp": iso_ms(utc_now())}
