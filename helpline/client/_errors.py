"""The client's exception tree, and the boundary where httpx's errors and responses are translated into it.

Nothing from httpx leaks past this module: a failed request becomes a `TransportError` (the httpx
error kept as its `__cause__`), an error status an `HTTPStatusError`, a body the protocol does not
allow a `ProtocolError`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class HelplineError(Exception):
    """Base of every error the client raises: catch it to handle them all."""


class TransportError(HelplineError):
    """The server could not be reached, or the connection broke (the httpx error is the `__cause__`)."""


class ProtocolError(HelplineError):
    """The server answered something docs/protocol.md does not allow, such as a body that is not JSON."""


class HTTPStatusError(HelplineError):
    """The server answered 4xx or 5xx.

    `status` is the HTTP status, `code` the stable machine code of the problem+json body (e.g.
    `permission_denied`), `detail` its human explanation, `retry_after` the seconds the server asked
    us to wait (429 and 503), when it said so.
    """

    def __init__(
        self,
        status: int,
        code: str | None = None,
        detail: str | None = None,
        *,
        title: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.retry_after = retry_after
        summary = f"{status} {code or title or 'error'}"
        super().__init__(f"{summary}: {detail}" if detail else summary)


# What httpx raises when a request or a stream fails on the way (not for an error status).
HTTPX_ERRORS = (httpx.RequestError, httpx.StreamError)


def transport_error(exc: Exception) -> TransportError:
    """Translate an httpx error at the boundary, keeping the original as the cause."""
    error = TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    error.__cause__ = exc
    return error


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` is either delay-seconds or an HTTP date (RFC 9110 § 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> HTTPStatusError:
    """Build the error for a 4xx/5xx response whose body has been read."""
    try:
        body = response.json()
    except ValueError:  # not JSON (a proxy's HTML error page, say): keep the status alone
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}

    def text(key: str) -> str | None:
        value = problem.get(key)
        return value if isinstance(value, str) else None

    return HTTPStatusError(
        response.status_code,
        text("code"),
        text("detail"),
        title=text("title"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def decode_json(response: httpx.Response) -> Any:
    """The JSON body of a successful response; None when there is none (204, 202 without body)."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise ProtocolError(f"{response.request.url.path} answered a body that is not JSON") from exc


def as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a JSON object, got {type(value).__name__}")
    return value
