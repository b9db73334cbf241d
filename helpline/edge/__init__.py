"""The HTTP edge: what every way into the server shares, whichever surface answers the request.

The REST routes (``api/``, through FastAPI) and the raw-ASGI hot paths (the message fast path in
``api/fastpath.py``, the event stream in ``transport/streaming.py``) call the same functions here, so
each rule has one implementation (issue 16, "One HTTP edge"):

- who is calling (:mod:`.auth`): bearer tokens, stream tickets, per-identity rate limits;
- problem responses and the headers every response carries (:mod:`.responses`);
- request limits: body size and JSON well-formedness (:mod:`.limits`), request heads, connections
  and keep-alive (:mod:`.server`, below the app, in the HTTP protocol);
- CORS for the widget (:mod:`.cors`);
- the client's real address behind trusted proxies (:mod:`.clients`).

Both ``api/`` and ``transport/`` import this package; neither imports the other.
"""

from __future__ import annotations

from fastapi import Request

from helpline.edge.auth import Caller, authenticate, bearer_token, current_principal, services
from helpline.edge.responses import Problem, problems

__all__ = [
    "Caller",
    "Problem",
    "authenticate",
    "bearer_token",
    "client_address",
    "current_principal",
    "problems",
    "services",
]


def client_address(request: Request) -> str:
    """The client's address: the peer, or what a trusted proxy said it is (:mod:`.clients` sets it)."""
    return request.client.host if request.client else "unknown"
