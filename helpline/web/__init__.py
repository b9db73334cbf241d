"""The browser side, served by the server itself: plain JS and CSS, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

WEB_ROOT = Path(__file__).with_name("static")

web_router = APIRouter(include_in_schema=False)


@web_router.get("/")
async def demo_site() -> FileResponse:
    """The demo website: a page with the customer chat widget on it."""
    return FileResponse(WEB_ROOT / "index.html", headers={"Cache-Control": "no-cache"})


@web_router.get("/console")
async def console() -> FileResponse:
    """The rep and supervisor console."""
    return FileResponse(WEB_ROOT / "console.html", headers={"Cache-Control": "no-cache"})
