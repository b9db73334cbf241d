"""Request limits of the application layer: the body size cap, and a body that is not JSON.

A body over the cap is refused with 413 before the app sees a byte of it; a body announced as JSON
that is not UTF-8 or not JSON at all is a 400 ``bad_request``, so that a 422 ``validation_error`` always
means "JSON that breaks the schema" (docs/protocol.md "Errors"). The limits on the request head (size,
header count, deadline) and on connections are enforced below the app, in :mod:`helpline.edge.server`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic_core import from_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpline.edge.responses import send_problem
from helpline.errors import BadRequest, HelplineError, PayloadTooLarge

__all__ = ["BodySizeLimit", "is_json_type", "json_problem"]


def is_json_type(content_type: bytes | None) -> bool:
    """``application/json`` or ``application/*+json``, as FastAPI decides whether to parse a body."""
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    maintype, _, subtype = media.partition(b"/")
    return maintype == b"application" and (subtype == b"json" or subtype.endswith(b"+json"))


def json_problem(body: bytes) -> BadRequest | None:
    """Why ``body`` is not JSON (strict RFC 8259: UTF-8, no NaN, no lone surrogates), or None if it is."""
    if not body:
        return None  # no body at all: the schema decides (a required body is a 422)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return BadRequest("the body is not UTF-8")
    try:
        from_json(body, allow_inf_nan=False)
    except ValueError:
        return BadRequest("the body is not JSON")
    return None


class BodySizeLimit:
    """Refuse bodies over the cap with 413, and bodies announced as JSON that are not JSON with 400.

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
            await send_problem(send, BadRequest("Content-Length is not a number"), close=True)
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
        body = b"".join(chunks)
        content_types = [v for k, v in scope["headers"] if k == b"content-type"]
        if content_types and is_json_type(content_types[0]):  # the first one, as FastAPI reads it
            problem = json_problem(body)
            if problem is not None:
                await send_problem(send, problem)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, error: HelplineError | None = None, cap: int | None = None) -> None:
        error = error or PayloadTooLarge(f"request bodies are limited to {cap or self.max_bytes} bytes")
        await send_problem(send, error, close=True)
