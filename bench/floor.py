"""The floor: the smallest raw-ASGI app, served by the same uvicorn (uvloop, httptools) as Helpline.

``python -m bench.costs`` measures it first, so every Helpline figure can be read against what any
Python ASGI server pays per request on this machine before it does any work of its own.
"""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
