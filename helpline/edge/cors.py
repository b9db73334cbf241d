"""CORS for the chat widget, which runs on the company's website and calls Helpline cross-origin.

Only origins listed on some deployment (``allowed_origins``) get CORS headers; credentials travel as
bearer tokens, never cookies, so ``Access-Control-Allow-Credentials`` is never sent. The origin list is
cached for a few seconds so a preflight does not cost a database read each time.
"""

from __future__ import annotations

import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpline.edge.responses import NOSNIFF

ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
CACHE_SECONDS = 10.0


class DeploymentOrigins:
    """The union of every deployment's allowed origins, refreshed at most every few seconds."""

    def __init__(self) -> None:
        self._origins: frozenset[str] = frozenset()
        self._fetched_at = -CACHE_SECONDS
        self._version = -1

    async def allows(self, app: ASGIApp, origin: str) -> bool:
        services = getattr(getattr(app, "state", None), "services", None)
        if services is None:
            return False
        # Changes made through this node apply at once; those made through another node within seconds.
        stale = time.monotonic() - self._fetched_at > CACHE_SECONDS
        if stale or self._version != services.accounts.deployments_version:
            self._version = services.accounts.deployments_version
            deployments = await services.accounts.deployments()
            self._origins = frozenset(o for d in deployments for o in d.allowed_origins)
            self._fetched_at = time.monotonic()
        return origin in self._origins


class DeploymentCORS:
    def __init__(self, app: ASGIApp, root: ASGIApp) -> None:
        self.app = app
        self.root = root  # the FastAPI app, whose state holds the services once the lifespan ran
        self.origins = DeploymentOrigins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        try:
            allowed = await self.origins.allows(self.root, origin)
        except Exception:  # the store is down: answer without CORS rather than fail the request here
            allowed = False
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, origin if allowed else None)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = origin
                response_headers["Access-Control-Expose-Headers"] = "Retry-After"
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, with_cors)

    async def _preflight(self, send: Send, origin: str | None) -> None:
        headers = [(b"vary", b"Origin"), (b"content-length", b"0"), NOSNIFF]
        if origin is not None:
            headers += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", b"600"),
            ]
        await send({"type": "http.response.start", "status": 204 if origin else 403, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
