"""Who is calling: one implementation for the routes, the message fast path and the stream endpoint.

Credentials travel in ``Authorization: Bearer …``; only the stream endpoint also takes a single-use
``?ticket=`` (EventSource cannot send headers), and no endpoint ever takes an access token in a URL
(docs/protocol.md "Credentials").
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from starlette.types import Scope

from helpline.errors import NotAuthenticated
from helpline.records import Principal
from helpline.services import Services

__all__ = ["Caller", "authenticate", "bearer_token", "current_principal", "services"]


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _bearer(scope: Scope) -> str | None:
    """The token of the first ``Authorization`` header (as Starlette's ``headers.get`` reads it)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def bearer_token(request: Request) -> str:
    token = _bearer(request.scope)
    if token is None:
        raise NotAuthenticated("send 'Authorization: Bearer <token>'")
    return token


async def authenticate(svc: Services, scope: Scope, *, tickets: bool = False) -> Principal:
    """The caller of a request: a bearer token, or (``tickets``: the stream endpoint) a ``?ticket=``."""
    token = _bearer(scope)
    if not tickets:
        if token is None:
            raise NotAuthenticated("send 'Authorization: Bearer <token>'")
        return await svc.accounts.principal(token)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if any(name in query for name in ("access_token", "token")):
        raise NotAuthenticated("access tokens are never accepted in a URL; use a stream ticket")
    if token is not None:
        return await svc.accounts.principal(token)
    found = query.get("ticket")
    if found:
        return await svc.accounts.redeem_ticket(found[0])
    raise NotAuthenticated("send 'Authorization: Bearer <token>' or '?ticket=' from POST /api/v1/stream-tickets")


async def current_principal(request: Request) -> Principal:
    """The caller of a REST request, rate limited per identity."""
    svc = services(request)
    principal = await authenticate(svc, request.scope)
    await svc.rate_limiter.hit(principal.id)
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
