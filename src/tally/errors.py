"""The TallyError tree: one class per error code of the contract, plus internal store failures."""
from __future__ import annotations

from typing import Any


class TallyError(Exception):
    """Base of every error tally raises on purpose; http/api.py renders it into the envelope."""

    code = "INTERNAL_ERROR"
    http_status = 500
    default_message = "An unexpected error occurred"

    def __init__(self, message: str | None = None, details: Any = None):
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


class InvalidHeader(TallyError):
    code, http_status, default_message = "INVALID_HEADER", 400, "A required header is missing or malformed"


class ValidationFailed(TallyError):
    code, http_status, default_message = "VALIDATION_ERROR", 400, "The request is invalid"


class Unauthorized(TallyError):
    code, http_status, default_message = "UNAUTHORIZED", 401, "Invalid or expired authentication token"


class Forbidden(TallyError):
    code, http_status, default_message = "FORBIDDEN", 403, "Insufficient permissions"


class RealmNotFound(TallyError):
    code, http_status, default_message = "REALM_NOT_FOUND", 404, "The realm does not exist"


class TenantNotFound(TallyError):
    code, http_status, default_message = "TENANT_NOT_FOUND", 404, "The tenant does not exist"


class NotFound(TallyError):
    code, http_status, default_message = "NOT_FOUND", 404, "The resource does not exist"


class NotAcceptable(TallyError):
    code, http_status, default_message = "NOT_ACCEPTABLE", 406, "Only application/json can be returned"


class PayloadTooLarge(TallyError):
    code, http_status, default_message = "PAYLOAD_TOO_LARGE", 413, "The request body is too large"


class InvalidFilterId(TallyError):
    code, http_status, default_message = "INVALID_FILTER_ID", 422, "One or more filter IDs are invalid"


class ServiceUnavailable(TallyError):
    code, http_status, default_message = "SERVICE_UNAVAILABLE", 503, "A backing service is unavailable"


class StoreUnavailable(TallyError):
    """The counter store (Redis) could not be reached; the SQL path catches exactly this."""

    code, http_status, default_message = "SERVICE_UNAVAILABLE", 503, "The counter store is unavailable"


class RebuildBusy(TallyError):
    """A counter group is being rebuilt; an apply must wait and retry."""

    code, http_status, default_message = "SERVICE_UNAVAILABLE", 503, "Counters are being rebuilt"


class GuardChanged(TallyError):
    """A value an apply was computed against (e.g. the filter registry version) has changed."""

    code, http_status, default_message = "SERVICE_UNAVAILABLE", 503, "Counter layout changed"
