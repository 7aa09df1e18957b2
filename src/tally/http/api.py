"""The one place errors become HTTP responses: every failure leaves in the contract's envelope."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from tally.errors import DatabaseUnavailable, PayloadTooLarge, TallyError
from tally.http.envelope import failure
from tally.services.outages import describe, is_unavailable

log = logging.getLogger("tally.http")

# werkzeug's statuses mapped onto contract codes; anything else keeps a generic name.
HTTP_CODES = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
              405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE", 413: "PAYLOAD_TOO_LARGE",
              415: "UNSUPPORTED_MEDIA_TYPE", 422: "VALIDATION_ERROR", 429: "TOO_MANY_REQUESTS"}


# What HTTP asks of some statuses, whoever raised them: a 401 names its scheme (RFC 6750 §3),
# a 429 or 503 says when to come back (RFC 9110 §10.2.3). An error may give its own values.
RETRY_AFTER_SECONDS = 1
STATUS_HEADERS = {401: {"WWW-Authenticate": "Bearer"},
                  429: {"Retry-After": str(RETRY_AFTER_SECONDS)},
                  503: {"Retry-After": str(RETRY_AFTER_SECONDS)}}


def render(status: int, code: str, message: str, details: Any = None,  # noqa: ANN201
           headers: dict[str, str] | None = None):
    """The contract's error envelope with `status`, its status's headers and `headers`."""
    response = jsonify(failure(code, message, details))
    response.status_code = status
    response.headers.update({**STATUS_HEADERS.get(status, {}), **(headers or {})})
    return response


def _validation_details(error: HTTPException) -> Any:
    """webargs puts field messages in error.data['messages']; pass them on as details."""
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if isinstance(messages, dict) and len(messages) == 1:
        return next(iter(messages.values()))
    return messages


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(TallyError)
    def _tally(error: TallyError):  # noqa: ANN202
        if error.http_status >= 500:
            log.warning("%s: %s", error.code, error.message)
        return render(error.http_status, error.code, error.message, error.details,
                      error.headers())

    @app.errorhandler(SQLAlchemyError)
    def _database(error: SQLAlchemyError):  # noqa: ANN202
        """The one place a database failure becomes a response: 503 when it cannot serve now."""
        if not is_unavailable(error):
            return _unexpected(error)
        unavailable = DatabaseUnavailable()
        log.warning("%s: %s (%s)", unavailable.code, unavailable.message, describe(error))
        return render(unavailable.http_status, unavailable.code, unavailable.message,
                      headers=unavailable.headers())

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):  # noqa: ANN202
        status = error.code or 500
        if status == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            return _tally(PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes",
                                          {"maxBytes": limit}))
        code = HTTP_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
        details = _validation_details(error) if status in (400, 422) else None
        message = "The request is invalid" if code == "VALIDATION_ERROR" else error.description
        response = render(400 if code == "VALIDATION_ERROR" else status, code, message, details)
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):  # noqa: ANN202
        log.exception("unhandled error")
        return render(500, "INTERNAL_ERROR", "An unexpected error occurred")
