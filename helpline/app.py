"""The app factory: build a configured ASGI app; the lifespan opens and closes the store and the bus."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from helpline.api import (
    admin,
    api_keys,
    attachments,
    auth,
    canned,
    conversations,
    escalation,
    fastpath,
    notes,
    ops,
    ratings,
    transcripts,
    webhooks,
)
from helpline.bus import open_bus
from helpline.config import Settings
from helpline.edge.clients import TrustedProxies
from helpline.edge.cors import DeploymentCORS
from helpline.edge.limits import BodySizeLimit
from helpline.edge.responses import SecurityHeaders, install_error_handlers
from helpline.metrics import Metrics
from helpline.services import Services
from helpline.store import open_store
from helpline.transport import diagnostics, polling, streaming
from helpline.web import WEB_ROOT, PublicStaticFiles, apidocs, web_router

logger = logging.getLogger("helpline")


class HelplineApp(FastAPI):
    """FastAPI, with ``GET /api/v1/events`` and ``POST …/messages`` dispatched ahead of the middleware stack.

    A stream lives for minutes and there may be 20,000 of them: every middleware layer would keep a
    frame alive per stream (measured in bench/: 28.7 → 21.4 KiB per idle stream without them). The
    stream endpoint does its own authentication, limits and problem responses, and is wrapped in the
    same CORS layer as the rest of the API. Posting a message is the hottest write: its fast path
    (helpline/api/fastpath.py) answers the happy path and hands anything unusual to the full stack.
    """

    proxies: TrustedProxies | None = None

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__(**options)
        # A raw ASGI endpoint (Starlette routes treat a non-function endpoint as an ASGI app).
        self.events = streaming.EventStream(self)
        self.stream_endpoint: ASGIApp = DeploymentCORS(self.events, root=self)
        # The hottest write; the route in conversations.py documents it and answers what the fast path hands over.
        full_stack = partial(FastAPI.__call__, self)
        self.message_endpoint = fastpath.MessagePost(self, full_stack, max_bytes=settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.proxies is not None and scope["type"] == "http":
            self.proxies.rewrite(scope)  # the real client, for the limits, the caps and the access log
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/api/v1/events":
            scope["app"] = self
            await self.stream_endpoint(scope, receive, send)
            return
        if fastpath.is_message_post(scope):
            scope["app"] = self
            await self.message_endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, seed_demo: bool = True) -> FastAPI:
    """``seed_demo=False``: demo data was seeded once already (``helpline serve --workers``)."""
    settings = (settings or Settings.from_env()).checked()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await open_store(settings.database_url)
        bus = open_bus(settings.bus_url)
        await bus.connect()
        streams = app.state.streams = streaming.StreamRegistry(settings, app.state.metrics)  # fresh on every start
        services = Services.build(settings, store, bus, app.state.metrics, connected=lambda: list(streams.per_identity))
        await services.follower.start()
        app.state.services = services
        streams.counters = services.counters
        if settings.demo and seed_demo:
            from helpline.demo import seed_demo as seed

            await seed(services)
        routing = (
            asyncio.create_task(services.router.run(), name="helpline-router") if settings.router_enabled else None
        )
        deliveries = (
            asyncio.create_task(services.deliveries.run(), name="helpline-webhooks")
            if settings.webhooks_enabled
            else None
        )
        services.invalidation.on_invalidate(partial(_end_changed_streams, streams, services))
        invalidations = asyncio.create_task(services.invalidation.run(), name="helpline-invalidation")
        silent_bots = asyncio.create_task(services.escalations.run(), name="helpline-silent-bots")
        mailing = None
        if settings.outbox_enabled and services.outbox.sends_email:
            mailing = asyncio.create_task(services.outbox.run(), name="helpline-outbox")
        retention = None
        if settings.retention_interval_seconds > 0:
            retention = asyncio.create_task(services.retention.run(), name="helpline-retention")
        try:
            yield
        finally:
            for task in (routing, invalidations, deliveries, silent_bots, mailing, retention):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await app.state.streams.shutdown()
            await services.follower.stop()
            await services.accounts.api_keys.flush()  # the API keys' last use, kept in memory until now
            if services.counters is not None:
                await services.counters.close()
            await bus.disconnect()
            await store.close()

    app = HelplineApp(
        settings,
        title="Helpline",
        version="1.0",
        summary="Real-time contact-center web chat over Server-Sent Events.",
        lifespan=lifespan,
        docs_url=None,  # helpline/web/apidocs.py serves /docs with local assets
        redoc_url=None,
    )
    app.state.settings = settings
    proxies = TrustedProxies(settings.trusted_proxies)
    app.proxies = proxies if proxies else None
    app.state.metrics = Metrics()
    app.state.streams = streaming.StreamRegistry(settings, app.state.metrics)
    app.state.diagnostics = diagnostics.DiagnosticsGate()
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    upload_cap = settings.attachment_max_bytes + attachments.MULTIPART_OVERHEAD
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, larger=[(attachments.UPLOAD_PATH, upload_cap)])
    app.add_middleware(DeploymentCORS, root=app)
    for router in (
        auth.router,
        conversations.router,
        notes.router,
        canned.router,
        attachments.router,
        ratings.router,
        transcripts.router,
        admin.router,
        webhooks.router,
        api_keys.router,
        escalation.router,
        ops.router,
        polling.router,
        diagnostics.router,
    ):
        app.include_router(router)
    # The stream is also routed, so that other methods get the usual 405 problem response.
    app.add_route("/api/v1/events", app.events, methods=["GET"], include_in_schema=False)  # type: ignore[arg-type]
    app.include_router(web_router)
    apidocs.install(app)
    # The widget is loaded by companies' own pages; module scripts are always fetched with CORS.
    app.mount("/static", PublicStaticFiles(directory=WEB_ROOT), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _end_changed_streams(streams: streaming.StreamRegistry, services: Services, principal_id: str | None) -> None:
    """An invalidation (domain/invalidation.py): end the streams of whoever changed; when some may
    have been missed (``None``), re-check every stream's caller against the store."""
    if principal_id is not None:
        streams.end_streams_of(principal_id)
    elif streams.subscriptions:
        task = asyncio.get_running_loop().create_task(streams.revalidate(services.accounts.current))
        streams.background.add(task)
        task.add_done_callback(streams.background.discard)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        schema["paths"]["/api/v1/events"] = copy.deepcopy(streaming.OPENAPI_PATH)
        apidocs.describe_streams(schema, apidocs.event_types())
        app.openapi_schema = schema
    return app.openapi_schema
