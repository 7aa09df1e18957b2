"""The contract's success and error bodies."""
from __future__ import annotations

import json
from typing import Any

from tally.clock import iso_ms, utc_now


def success(data: Any, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True}
    if message is not None:
        body["message"] = message
    body["data"] = data
    body["timestamp"] = iso_ms(utc_now())
    return body


def success_json(data_json: str, message: str) -> str:
    """`success` as JSON text around data already serialised (the hot endpoints' bodies)."""
    return (f'{{"success":true,"message":{json.dumps(message)},"data":{data_json},'
            f'"timestamp":"{iso_ms(utc_now())}"}}')


def failure(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "details": details},
            "timestamp": iso_ms(utc_now())}
