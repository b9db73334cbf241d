"""``/docs``: the API reference, rendered from ``/openapi.json`` with assets Helpline serves itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, which a self-hosted install behind a firewall
cannot reach (the page stays blank). Swagger UI's files ship in the ``fastapi-offline`` package; we serve
them under ``/static/api-docs/`` with our own small page that starts them, so no request leaves the server.
The page starts Swagger UI from our own script file (no inline script); the CSP allows inline styles only,
which Swagger UI sets at run time. There is no ``/redoc``: ReDoc's bundle always loads its logo from its
vendor's CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from helpline.errors import Unavailable
from helpline.events import EventType, handled_types
from helpline.web import PAGE_HEADERS, WEB_ROOT

ASSETS_PATH = "/static/api-docs"


def assets_root() -> Path | None:
    """Where the installed ``fastapi-offline`` keeps Swagger UI's files (None in an environment without it)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    return Path(fastapi_offline.__file__).with_name("static")


DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
DOCS_HEADERS = {**PAGE_HEADERS, "Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui() -> FileResponse:
    """The API reference with Swagger UI (try calls out from the browser)."""
    if assets_root() is None:
        raise Unavailable("the API reference needs the fastapi-offline package (pip install helpline again)")
    return FileResponse(WEB_ROOT / "api-docs.html", headers=DOCS_HEADERS)


def install(app: FastAPI) -> None:
    """Route the page and mount the viewers' assets (before ``/static``, which would shadow them)."""
    app.include_router(router)
    root = assets_root()
    if root is not None:
        app.mount(ASSETS_PATH, StaticFiles(directory=root), name="api-docs-assets")


def event_types() -> list[str]:
    """The stream's event types as the event catalogue (``helpline/events.py``) lists them for page code."""
    return handled_types()


def catalogue_markdown(types: list[str]) -> str:
    return "Event types (the SSE `event:` field and `data.type`): " + ", ".join(f"`{t}`" for t in types) + "."


def describe_streams(schema: dict[str, Any], types: list[str]) -> None:
    """Describe the two streams as ``text/event-stream`` and the poll's events with the event catalogue."""
    catalogue = catalogue_markdown(types)
    event_schema = {
        "type": "object",
        "description": "one event: the JSON of an SSE `data:` line",
        "required": ["type", "at"],
        "properties": {
            "id": {"type": "integer", "description": "the stored event's id (absent on ephemeral events)"},
            "type": {"type": "string", "enum": types},
            "conversation_id": {"type": ["string", "null"]},
            "at": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": True,
    }
    schema.setdefault("components", {}).setdefault("schemas", {})["Event"] = event_schema
    paths = schema["paths"]
    stream = paths["/api/v1/events"]["get"]
    stream["description"] += "\n\n" + catalogue
    stream["responses"]["200"]["content"]["text/event-stream"] = {
        "schema": {"type": "string", "description": "WHATWG server-sent events; each `data:` is an Event"},
        "x-event-types": types,
    }
    poll = paths.get("/api/v1/events/poll", {}).get("get")
    if poll is not None:
        poll["description"] = (poll.get("description", "") + "\n\n" + catalogue).strip()
        content = poll["responses"]["200"]["content"]["application/json"]
        content["schema"] = {
            "type": "object",
            "required": ["events", "last_event_id"],
            "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                "last_event_id": {"type": "string"},
            },
        }
    diagnostics = paths.get("/api/v1/diagnostics/stream", {}).get("get")
    if diagnostics is not None:
        diagnostics["responses"]["200"]["content"] = {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "WHATWG server-sent events, framed like /api/v1/events; "
                    "each event is `diagnostics.probe` {type, n, phase, server_time}",
                },
                "x-event-types": [EventType.DIAGNOSTICS_PROBE],
            }
        }
