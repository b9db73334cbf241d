"""``POST /api/v1/conversations/{id}/messages`` on a lean raw-ASGI path: the happy path of the hottest write.

Why: the FastAPI stack costs a fixed amount of CPU on every request before the domain does anything
(``GET /healthz``, which does nothing, costs 0.40 ms of server CPU: bench/RESULTS.md "What bounds
throughput"); for a message that is the middleware chain, routing, dependency injection and the response
model. This path skips all of it for a well-formed message: one content-type check, one read of the
body, one pydantic parse, then the same authentication (:func:`~helpline.api.deps.current_principal`), the
same domain call and the same response bytes as the route. Measured in process (ASGI calls, SQLite, one
message at a time): 1.8-2.0 ms of CPU per message through the full stack, 1.3-1.5 ms through this path.

Anything unusual is handed to the full stack, with the body read so far replayed, so that the full stack
gives its exact answer: a body that is not ``application/json``, too large or not a valid
:class:`~helpline.api.schemas.MessageRequest`, or an app whose lifespan has not run. The route
(``conversations.post_message``) stays: it documents the operation and answers every request handed over.
"""

from __future__ import annotations

import re
from collections import deque

from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpline.api.conversations import entry_response
from helpline.api.deps import current_principal, services
from helpline.api.schemas import MessageRequest
from helpline.edge.cors import DeploymentCORS
from helpline.edge.responses import error_response, internal_error_response
from helpline.errors import HelplineError

PREFIX, SUFFIX = "/api/v1/conversations/", "/messages"
# The route's path with its ``Path(max_length=64)``; Starlette's ``{conversation_id}`` is ``[^/]+``.
MESSAGE_PATH = re.compile(re.escape(PREFIX) + r"[^/]{1,64}" + re.escape(SUFFIX))
MESSAGE_KEY = "helpline.message"  # the parsed body, in the scope, for the part behind the CORS layer


def is_message_post(scope: Scope) -> bool:
    """Whether the request is ``POST /api/v1/conversations/{id}/messages``, as the full app would route it."""
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and not scope.get("root_path")
        and MESSAGE_PATH.fullmatch(scope["path"]) is not None
    )


class MessagePost:
    """The ASGI endpoint for requests :func:`is_message_post` accepts; ``full_stack`` answers the rest."""

    def __init__(self, app: FastAPI, full_stack: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.full_stack = full_stack
        self.max_bytes = max_bytes
        # Outside it, as in the full stack: hand-overs (which have their own CORS layer) and 500s.
        self.answer_with_cors = DeploymentCORS(self.answer, root=app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received: list[Message] = []
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            message = await self.read_message(scope, receive, received)
            if message is not None:
                scope[MESSAGE_KEY] = message
                await self.answer_with_cors(scope, receive, send_tracked)
                return
        except Exception as exc:  # as ServerErrorMiddleware: logged, a bare 500 without CORS headers
            response = internal_error_response(exc)
            if not started:
                await response(scope, receive, send)
            return
        await self.full_stack(scope, replay(received, receive), send)

    async def read_message(self, scope: Scope, receive: Receive, received: list[Message]) -> MessageRequest | None:
        """The validated body, or None when the full stack must answer (``received`` holds what was read)."""
        if getattr(self.app.state, "services", None) is None:
            return None  # the lifespan has not run
        content_type = content_length = None
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value  # FastAPI reads the first one
            elif name == b"content-length":
                content_length = value  # BodySizeLimit reads the last one
        # FastAPI parses any application/json (parameters aside); other JSON types are left to it.
        if content_type is None or content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            return None
        if content_length is not None and (not content_length.isdigit() or int(content_length) > self.max_bytes):
            return None  # BodySizeLimit answers 400 or 413
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return None  # the client went away
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None  # stop reading: BodySizeLimit answers 413
            if not message.get("more_body", False):
                break
        try:
            return MessageRequest.model_validate_json(b"".join(m.get("body", b"") for m in received))
        except ValidationError:
            return None  # the full stack authenticates first, then answers 422

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Behind the CORS layer: authenticate, store, answer as the route and its error handler do."""
        message: MessageRequest = scope[MESSAGE_KEY]
        conversation_id = scope["path"][len(PREFIX) : -len(SUFFIX)]
        request = Request(scope)
        try:
            caller = await current_principal(request)
            entry, created = await services(request).conversations.post_message(
                caller, conversation_id, message.id, message.text, message.attachment_ids
            )
        except HelplineError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if created:
            self.app.state.metrics.messages_stored.inc()
        await entry_response(entry, created)(scope, receive, send)


def replay(received: list[Message], receive: Receive) -> Receive:
    """``receive`` for the full stack: the messages already read, in order, then the client's next ones."""
    pending = deque(received)

    async def replayed() -> Message:
        return pending.popleft() if pending else await receive()

    return replayed
