"""The TallyError tree: one class per error code of the contract, plus internal store failures."""
from __future__ import annotations

from typing import Any


class TallyError(Exception):
    """Base of every error tally raises on purpose; http/api.py renders it into the envelope."""

    code = "INTERNAL_ERROR"
    http_status = 500
    default_message = "An unexpected error occurred"
    retry_after: int | None = None  # seconds, sent as Retry-After (a 429 or 503 always has one)

    def __init__(self, message: str | None = None, details: Any = None):
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the envelope's (http/api.py adds the defaults of
        its status: Retry-After, WWW-Authenticate)."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class InvalidHeader(TallyError):
    code, http_status = "INVALID_HEADER", 400
    default_message = "A required header is missing or malformed"


class ValidationFailed(TallyError):
    code, http_status = "VALIDATION_ERROR", 400
    default_message = "The request is invalid"


class Unauthorized(TallyError):
    """401 with a Bearer challenge (RFC 6750 §3): `error="invalid_token"` when a token was sent
    and refused; a bare `Bearer` when none was."""

    code, http_status = "UNAUTHORIZED", 401
    default_message = "Invalid or expired authentication token"

    def __init__(self, message: str | None = None, details: Any = None, *,
                 token_sent: bool = True):
        super().__init__(message, details)
        self.token_sent = token_sent

    def headers(self) -> dict[str, str]:
        challenge = 'Bearer error="invalid_token"' if self.token_sent else "Bearer"
        return {**super().headers(), "WWW-Authenticate": challenge}


class Forbidden(TallyError):
    code, http_status = "FORBIDDEN", 403
    default_message = "Insufficient permissions"


class VisibilityDenied(Forbidden):
    """The caller's roles do not allow the requested view (403 FORBIDDEN)."""


class RealmNotFound(TallyError):
    code, http_status = "REALM_NOT_FOUND", 404
    default_message = "The realm does not exist"


class TenantNotFound(TallyError):
    code, http_status = "TENANT_NOT_FOUND", 404
    default_message = "The tenant does not exist"


class NotFound(TallyError):
    code, http_status = "NOT_FOUND", 404
    default_message = "The resource does not exist"


class NotAcceptable(TallyError):
    code, http_status = "NOT_ACCEPTABLE", 406
    default_message = "Only application/json can be returned"


class PayloadTooLarge(TallyError):
    code, http_status = "PAYLOAD_TOO_LARGE", 413
    default_message = "The request body is too large"


class UnsupportedMediaType(TallyError):
    code, http_status = "UNSUPPORTED_MEDIA_TYPE", 415
    default_message = "The request body must be application/json"


class DefinitionError(ValidationFailed):
    """A filter definition outside the language (400), naming where and why."""

    def __init__(self, message: str, path: str):
        self.reason, self.path = message, path
        super().__init__(f"{path}: {message}", {"path": path, "reason": message})


class InvalidFilterId(TallyError):
    code, http_status = "INVALID_FILTER_ID", 422
    default_message = "One or more filter IDs are invalid"


class ServiceUnavailable(TallyError):
    code, http_status = "SERVICE_UNAVAILABLE", 503
    default_message = "A backing service is unavailable"


class StreamsExhausted(ServiceUnavailable):
    """This process holds as many streams as it may; another process (or a retry) may not."""

    default_message = "Too many open streams on this server; retry shortly"
    retry_after = 5


class DatabaseUnavailable(TallyError):
    """The SQL database could not serve the request (down, dropped connection, lock timeout)."""

    code, http_status = "SERVICE_UNAVAILABLE", 503
    default_message = "The database is unavailable; retry shortly"


class StoreUnavailable(TallyError):
    """The counter store (Redis) could not be reached; the SQL path catches exactly this."""

    code, http_status = "SERVICE_UNAVAILABLE", 503
    default_message = "The counter store is unavailable"


class RebuildBusy(TallyError):
    """A counter group is being rebuilt; an apply must wait and retry."""

    code, http_status = "SERVICE_UNAVAILABLE", 503
    default_message = "Counters are being rebuilt"


class GuardChanged(TallyError):
    """A value an apply was computed against (e.g. the filter registry version) has changed."""

    code, http_status = "SERVICE_UNAVAILABLE", 503
    default_message = "Counter layout changed"


class ConfigError(TallyError, ValueError):
    """A TALLY_* variable (or the realms file) holds a value tally cannot use; the message
    names it."""


class KeyLookupError(TallyError):
    """No usable signing key: the JWKS could not be read, or holds no key for the token's kid
    (the verifier answers 401 for it)."""
