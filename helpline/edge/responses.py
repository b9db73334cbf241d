"""Problem responses (RFC 9457), the one place exceptions become answers, and the headers every answer has.

Both surfaces render here: FastAPI's exception handlers (:func:`install_error_handlers`) and the raw-ASGI
hot paths and edge layers (:func:`send_problem`). So a 401 from the stream endpoint, from the message
fast path and from a route are the same bytes. Nothing below this module builds an error response, and
no traceback ever reaches a client.

Every response carries ``X-Content-Type-Options: nosniff`` (docs/protocol.md "Errors"): the responses
built here include it, and :class:`SecurityHeaders` adds it to whatever else the full stack answers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpline.errors import PROBLEM_CONTENT_TYPE, HelplineError, problem_body, problem_bytes

__all__ = [
    "NOSNIFF",
    "NOSNIFF_HEADERS",
    "Problem",
    "SecurityHeaders",
    "error_response",
    "install_error_handlers",
    "internal_error_response",
    "problem_response",
    "problems",
    "send_problem",
]

logger = logging.getLogger("helpline.api")

NOSNIFF = (b"x-content-type-options", b"nosniff")
NOSNIFF_HEADERS = {"X-Content-Type-Options": "nosniff"}
_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is the stable machine-readable part."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: str


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give (schemathesis checks them)."""
    # 400: a body that is not JSON or not UTF-8 (bad_request); 422: JSON that breaks the model.
    everywhere = {400, 413, 422, 429, 503}
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in sorted(everywhere | set(statuses))
    }


async def send_problem(send: Send, error: HelplineError, *, close: bool = False) -> None:
    """The problem response on a raw ASGI ``send`` (``close``: and end the connection after it)."""
    body = problem_bytes(error)
    headers = [(b"content-type", PROBLEM_CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    headers.append(NOSNIFF)
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        body, status_code=status, headers={**(headers or {}), **NOSNIFF_HEADERS}, media_type=PROBLEM_CONTENT_TYPE
    )


def error_response(exc: HelplineError) -> JSONResponse:
    """A :class:`HelplineError` as its problem response, with its headers (WWW-Authenticate, Retry-After)."""
    return problem_response(exc.status, exc.body(), exc.headers)


def internal_error_response(exc: Exception) -> JSONResponse:
    """Log an unexpected exception; the client gets a 500 that says nothing about it."""
    logger.error("unhandled error", exc_info=exc)
    body = problem_body(500, "internal_error", "Internal error", "an unexpected error occurred; it was logged")
    return problem_response(500, body)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HelplineError)
    async def helpline_error(_request: Request, exc: HelplineError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
            for error in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):  # the body is not JSON: FastAPI could not parse it
            return problem_response(400, problem_body(400, "bad_request", "Malformed request", "the body is not JSON"))
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5]) or "invalid request"
        body = problem_body(422, "validation_error", "Validation failed", detail, errors=errors)
        return problem_response(422, json.loads(json.dumps(body, default=str)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        body = problem_body(exc.status_code, code, detail, detail)
        return problem_response(exc.status_code, body, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return internal_error_response(exc)


class SecurityHeaders:
    """Adds ``X-Content-Type-Options: nosniff`` to every response of the full stack that lacks it
    (static files, the OpenAPI page, JSON answers of routes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if not any(name.lower() == NOSNIFF[0] for name, _ in headers):
                    message["headers"] = [*headers, NOSNIFF]
            await send(message)

        await self.app(scope, receive, with_headers)
