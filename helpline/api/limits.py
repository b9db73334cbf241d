"""Request hygiene at the edge: the body size cap, and every error rendered as problem+json.

This is the one place exceptions become responses (STYLE.md §7); nothing below it builds an error
response, and no traceback ever reaches a client.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpline.errors import (
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    HelplineError,
    PayloadTooLarge,
    problem_body,
    problem_bytes,
)

logger = logging.getLogger("helpline.api")

_HTTP_CODES = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
}


class BodySizeLimit:
    """Refuse bodies over the cap with 413 before the app sees a byte of them.

    The body is read here (at most ``max_bytes``) and handed on whole, so a chunked upload without a
    ``Content-Length`` is held to the same cap as one that announces its size. ``larger`` gives paths
    matching a pattern their own cap (attachment uploads: the server's file limit).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Sequence[tuple[re.Pattern[str], int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = tuple(larger)

    def cap(self, scope: Scope) -> int:
        for pattern, cap in self.larger:
            if pattern.fullmatch(scope["path"]):
                return cap
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        cap = self.cap(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await self._refuse(send, BadRequest("Content-Length is not a number"))
            return
        if declared is not None and int(declared) > cap:
            await self._refuse(send, cap=cap)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; let the app see the disconnect
            size += len(message.get("body", b""))
            if size > cap:
                await self._refuse(send, cap=cap)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, error: HelplineError | None = None, cap: int | None = None) -> None:
        error = error or PayloadTooLarge(f"request bodies are limited to {cap or self.max_bytes} bytes")
        body = problem_bytes(error)
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


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
