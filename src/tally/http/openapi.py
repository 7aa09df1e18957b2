"""The OpenAPI document (`/openapi.json`): the contract's error envelope for every error, and the
guard's part of every guarded operation — bearer token, `x-tenantid`, `realmname`, and the
statuses the guard and the error renderer can answer — added in one place, so a new endpoint
under the API prefix is documented with them without repeating them."""
from __future__ import annotations

from typing import Any, Callable

from apispec import BasePlugin
from flask import Flask
from flask_smorest import Api

from tally.auth.guard import PREFIX
from tally.auth.realms import REALM_NAME
from tally.http.api import HTTP_CODES
from tally.http.schemas.common import (COUNT_DATA, ErrorEnvelopeSchema, MinimalCountSchema,
                                       NotificationCountsSchema)

SECURITY = "bearerAuth"
ERROR_ENVELOPE = "ErrorEnvelope"
EXAMPLE_TENANT = "4f2b7c1e-8a3d-4e5f-9b6a-1c2d3e4f5a6b"
EXAMPLE_TIMESTAMP = "2026-03-08T06:45:30.125Z"

DESCRIPTION = """Exact notification and ticket counts for a ticketing product.

Every call under `/api/v2/ticketing` needs `Authorization: Bearer <JWT>` (RS256 or ES256, signed
by the realm's issuer), `x-tenantid` (the tenant's UUID) and `realmname`. The checks run in this
order and the first failure answers: `accept` not admitting JSON → 406; headers → 400
`INVALID_HEADER`; realm → 404 `REALM_NOT_FOUND`; token → 401 `UNAUTHORIZED`; tenant → 404
`TENANT_NOT_FOUND`; the token's tenant and role → 403 `FORBIDDEN`; then the query and body →
400 `VALIDATION_ERROR`. Strictly: `x-tenantid` in the canonical 8-4-4-4-12 form (any case), a
query parameter at most once, a body declared `application/json` (else 415), parseable and
nested at most 64 deep, booleans as JSON `true`/`false`. Every error has the body
`{"success": false, "error": {"code", "message", "details"}, "timestamp"}`."""

# What the guard and the renderer may answer on any guarded operation (contract §2).
GUARD_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("INVALID_HEADER", "A header, the query or the body is invalid (INVALID_HEADER or "
          "VALIDATION_ERROR; details name the header or field)",
          "Header x-tenantid must be a UUID"),
    401: ("UNAUTHORIZED", "Missing, malformed, expired or wrongly signed token",
          "Invalid or expired authentication token"),
    403: ("FORBIDDEN", "The token does not name this tenant, or lacks the role the call needs",
          "The token is not valid for this tenant"),
    404: ("TENANT_NOT_FOUND", "Unknown realm (REALM_NOT_FOUND) or tenant (TENANT_NOT_FOUND)",
          "Tenant 4f2b7c1e-8a3d-4e5f-9b6a-1c2d3e4f5a6b does not exist"),
    406: ("NOT_ACCEPTABLE", "`accept` does not admit application/json",
          "Only application/json can be returned"),
    500: ("INTERNAL_ERROR", "Anything unexpected (no stack trace is ever sent)",
          "An unexpected error occurred"),
    503: ("SERVICE_UNAVAILABLE", "A backing store cannot serve the call now; retry",
          "The database is unavailable; retry shortly"),
}
BODY_ERRORS: dict[int, tuple[str, str, str]] = {
    413: ("PAYLOAD_TOO_LARGE", "The body exceeds MAX_CONTENT_LENGTH (4 MiB; details.maxBytes)",
          "The request body exceeds the limit of 4194304 bytes"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "A body whose Content-Type is not application/json (or "
          "application/*+json)", "The request body must be application/json"),
}

TENANT_HEADER = {
    "in": "header", "name": "x-tenantid", "required": True,
    "description": "The tenant's UUID; the token must name it (`tenant_id` or `tenants`), "
                   "unless it is a ticket_service token of the tenant's realm",
    "schema": {"type": "string", "format": "uuid"}, "example": EXAMPLE_TENANT,
}
REALM_HEADER = {
    "in": "header", "name": "realmname", "required": True,
    "description": "The realm (identity provider entry in TALLY_REALMS_FILE) that issued the "
                   "token and in which the tenant is provisioned",
    "schema": {"type": "string", "pattern": REALM_NAME.pattern}, "example": "tally-dev",
}
BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
          "description": "A JWT from the realm's issuer: RS256 or ES256, `iss` (and `aud` when "
                         "the realm sets one) as configured, `exp`, `sub`; at most 32,768 bytes. "
                         "Roles in `realm_access.roles`, teams in `teams`."}
RESPONSE_HEADERS = {
    "X-Count-Source": {"description": "cache: warm counters; recomputed: rebuilt from SQL "
                                      "during this call; sql: answered from SQL (counter store "
                                      "unavailable)",
                       "schema": {"type": "string", "enum": ["cache", "recomputed", "sql"]}},
    "X-Poll-Interval": {"description": "Seconds a badge client should wait between polls",
                        "schema": {"type": "integer", "minimum": 1}},
    "ETag": {"description": "The version of the body (a hash of the view and the counts)",
             "schema": {"type": "string"}},
    "Cache-Control": {"description": "private, no-cache", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before trying again",
                    "schema": {"type": "integer", "minimum": 0}},
    "WWW-Authenticate": {"description": "`Bearer`, with `error=\"invalid_token\"` when a token "
                                        "was sent and refused (RFC 6750)",
                         "schema": {"type": "string"}},
    "Location": {"description": "The created filter's URL (where DELETE removes it)",
                 "schema": {"type": "string"}},
    "X-Count-Watermark": {"description": "The tenant's watermark this answer reflects: every "
                                         "write of the tenant up to it is counted (never one "
                                         "beyond). Opaque (`<n>.<tag>`), bound to the tenant; on "
                                         "POST /events, the accepted batch's watermark. "
                                         "docs/api-watermarks.md",
                          "schema": {"type": "string", "pattern": "^[0-9]+\\.[0-9a-f]{8}$"},
                          "example": "42.9f86d081"},
}


IF_NONE_MATCH = {"in": "header", "name": "If-None-Match", "required": False,
                 "description": "An ETag from an earlier answer: 304 while the counts are "
                                "unchanged", "schema": {"type": "string"}}
MIN_WATERMARK = {"in": "header", "name": "X-Min-Watermark", "required": False,
                 "description": "A watermark from POST /events (or an earlier count): the answer "
                                "reflects at least that write, waiting up to "
                                "TALLY_MIN_WATERMARK_WAIT_MS for the worker, else answered from "
                                "SQL (X-Count-Source: sql). Malformed, another tenant's, or "
                                "never issued: 400 VALIDATION_ERROR",
                 "schema": {"type": "string", "pattern": "^[0-9]+\\.[0-9a-f]{8}$"},
                 "example": "42.9f86d081"}
SUPPORT_HEADER = {"in": "header", "name": "issupportrequest", "required": False,
                  "description": "true: count only support requests; false or absent: no "
                                 "narrowing (case is ignored; anything else is a 400)",
                  "schema": {"type": "string", "enum": ["true", "false"]}, "example": "false"}


def header_refs(*names: str) -> dict[str, str]:
    """Response headers by their component name (see RESPONSE_HEADERS)."""
    return {name: name for name in names}


COUNT_HEADERS = header_refs("ETag", "X-Count-Source", "X-Count-Watermark", "Cache-Control",
                            "X-Poll-Interval")


def error_example(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """An error body as the renderer sends it, for the document's examples."""
    return {"success": False, "error": {"code": code, "message": message, "details": details},
            "timestamp": EXAMPLE_TIMESTAMP}


# The headers every answer of these statuses carries (tally.http.api.STATUS_HEADERS).
STATUS_HEADER_DOCS = {401: header_refs("WWW-Authenticate"), 429: header_refs("Retry-After"),
                      503: header_refs("Retry-After")}


# The code an example error body shows for each status a view documents.
EXAMPLE_CODES = {**HTTP_CODES, 404: "TENANT_NOT_FOUND", 422: "INVALID_FILTER_ID",
                 503: "SERVICE_UNAVAILABLE"}


def error_docs(blp: Any, errors: dict[int, str]) -> Callable[[Any], Any]:
    """A decorator documenting a view's error statuses (all in the envelope, with an example) on
    `blp`; the guard's statuses are added to every guarded operation by GuardDocs."""

    def decorate(func: Any) -> Any:
        for status, description in errors.items():
            example = error_example(EXAMPLE_CODES.get(status, "INTERNAL_ERROR"), description)
            func = blp.alt_response(status, schema=ErrorEnvelopeSchema, description=description,
                                    example=example,
                                    headers=STATUS_HEADER_DOCS.get(status))(func)
        return func

    return decorate


def error_response(description: str, code: str, message: str,
                   status: int | None = None) -> dict[str, Any]:
    response = {"description": description, "content": {"application/json": {
        "schema": ERROR_ENVELOPE, "example": error_example(code, message)}}}
    if status in STATUS_HEADER_DOCS:
        response["headers"] = dict(STATUS_HEADER_DOCS[status])
    return response


class GuardDocs(BasePlugin):
    """Adds the guard's security, headers and error statuses to every operation under PREFIX;
    what a view documents itself (a more precise description) is kept."""

    def operation_helper(self, path: str | None = None, operations: dict | None = None,
                         **kwargs: Any) -> None:
        if not path or not (path == PREFIX or path.startswith(PREFIX + "/")):
            return
        for operation in (operations or {}).values():
            operation.setdefault("security", [{SECURITY: []}])
            parameters = operation.setdefault("parameters", [])
            named = {(p.get("in"), p.get("name")) for p in parameters if isinstance(p, dict)}
            for header in (TENANT_HEADER, REALM_HEADER):
                if ("header", header["name"]) not in named:
                    parameters.append(dict(header))
            errors = dict(GUARD_ERRORS)
            if "requestBody" in operation:
                errors.update(BODY_ERRORS)
            responses = operation.setdefault("responses", {})
            for status, (code, description, message) in errors.items():
                if status not in responses and str(status) not in responses:
                    responses[str(status)] = error_response(description, code, message, status)


class TallyApi(Api):
    """flask-smorest's Api whose documented error schema is the contract's envelope."""

    ERROR_SCHEMA = ErrorEnvelopeSchema


def build_api(app: Flask) -> Api:
    """The app's Api with the guard's documentation, the bearer scheme and response headers."""
    api = TallyApi(app, spec_kwargs={"info": {"description": DESCRIPTION},
                                     "extra_plugins": [GuardDocs()]})
    api.spec.components.security_scheme(SECURITY, BEARER)
    for name, schema in zip(COUNT_DATA, (NotificationCountsSchema, MinimalCountSchema)):
        api.spec.components.schema(name, schema=schema)  # the two shapes of a count's `data`
    for name, header in RESPONSE_HEADERS.items():
        api.spec.components.header(name, header)
    return api
