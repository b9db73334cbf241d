"""The browser side, served by the server itself: plain JS and CSS, no build step.

``static/`` holds ES modules loaded as they are: ``stream.js`` (the live event feed), ``api.js`` (REST),
``dom.js`` (DOM building, never innerHTML), ``transcript.js`` (shared message list), ``widget.js`` (the
customer chat widget, embeddable on other sites) and ``console.js`` (the rep and supervisor console).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from helpline.events import javascript_module

WEB_ROOT = Path(__file__).with_name("static")

# Our pages run only our own files: no inline script or style, no third-party origin, no framing. A
# message that somehow reached the DOM as markup still could not run (the code builds text nodes anyway).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",  # attachment thumbnails, fetched with the token (attachments.js)
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

web_router = APIRouter(include_in_schema=False)
EVENTS_MODULE = javascript_module()


class PublicStaticFiles(StaticFiles):
    """``/static``: public files any site may load, which the embeddable widget needs.

    ``widget.js`` and the modules it imports are loaded by the company's own pages, on another origin;
    module scripts are always fetched in CORS mode, so without ``Access-Control-Allow-Origin`` the
    browser refuses them. These files are public and carry no credentials, so ``*`` is safe.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@web_router.get("/static/events.js")
async def event_catalogue() -> Response:
    """The event catalogue as an ES module (helpline/events.py): ``stream.js`` and the pages import it.

    Public like the rest of ``/static`` (the widget imports it from other origins), and rendered from
    the server's own catalogue, so the browser's list of event types is the server's."""
    return Response(
        EVENTS_MODULE,
        media_type="text/javascript",
        headers={
            "Cache-Control": "no-cache",
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "X-Content-Type-Options": "nosniff",
        },
    )


@web_router.get("/")
async def demo_site() -> FileResponse:
    """The demo website: a page with the customer chat widget on it."""
    return FileResponse(WEB_ROOT / "index.html", headers=PAGE_HEADERS)


@web_router.get("/console")
async def console() -> FileResponse:
    """The rep and supervisor console."""
    return FileResponse(WEB_ROOT / "console.html", headers=PAGE_HEADERS)


@web_router.get("/diagnostics")
async def diagnostics_page() -> FileResponse:
    """The network doctor in the visitor's own browser (no login): tests streams, fetch and polling."""
    return FileResponse(WEB_ROOT / "diagnostics.html", headers=PAGE_HEADERS)


@web_router.get("/console/integrations")
async def integrations() -> FileResponse:
    """Admins: webhooks (and a paused one's banner), API keys, the bots in front of queues (issue 14)."""
    return FileResponse(WEB_ROOT / "integrations.html", headers=PAGE_HEADERS)
