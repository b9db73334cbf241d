"""The exception tree, and the one place that turns it into RFC 9457 problem responses.

Every error a client can cause is a :class:`HelplineError` subclass that carries its HTTP status and a
stable machine ``code`` (docs/protocol.md "Errors"). Routes and services raise; they never build responses.
Driver exceptions are translated in ``store/`` and ``bus/`` before they get here.
"""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = [
    "Conflict",
    "HelplineError",
    "NotAuthenticated",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationFailed",
    "problem_body",
]

logger = logging.getLogger("helpline")

PROBLEM_CONTENT_TYPE = "application/problem+json"


class HelplineError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, Any]:
        return problem_body(self.status, self.code, self.title, self.detail, **self.extra)


class ValidationFailed(HelplineError):
    status, code, title = 422, "validation_error", "Validation failed"


class BadRequest(HelplineError):
    status, code, title = 400, "bad_request", "Malformed request"


class NotAuthenticated(HelplineError):
    status, code, title = 401, "not_authenticated", "Not authenticated"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class PermissionDenied(HelplineError):
    status, code, title = 403, "permission_denied", "Permission denied"

    def __init__(self, permission: str, detail: str | None = None) -> None:
        super().__init__(detail or f"this requires the '{permission}' permission", permission=permission)
        self.permission = permission


class Forbidden(HelplineError):
    """The caller is authenticated but its kind (customer/staff) may never do this."""

    status, code, title = 403, "permission_denied", "Permission denied"


class NotFound(HelplineError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(HelplineError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(HelplineError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(HelplineError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class _RetryLater(HelplineError):
    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(_RetryLater):
    status, code, title = 429, "rate_limited", "Too many requests"


class Unavailable(_RetryLater):
    status, code, title = 503, "unavailable", "Service unavailable"


def problem_body(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://helpline.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return body


def problem_bytes(error: HelplineError) -> bytes:
    return json.dumps(error.body(), separators=(",", ":")).encode()
