"""What the two HTTP surfaces share: REST routes (``api/``) and the event transports (``transport/``).

The running services as a request sees them, who is calling (bearer token, rate limited per identity),
the client's address, and the OpenAPI description of problem+json answers. Both ``api/`` and
``transport/`` import this module; neither imports the other.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from helpline.errors import NotAuthenticated
from helpline.records import Principal
from helpline.services import Services


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is the stable machine-readable part."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: str


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give (schemathesis checks them)."""
    # 400: a body that is not JSON at all (FastAPI cannot parse it); 422: JSON that breaks the model.
    everywhere = {400, 413, 422, 429, 503}
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in sorted(everywhere | set(statuses))
    }


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send 'Authorization: Bearer <token>'")
    return token.strip()


async def current_principal(request: Request) -> Principal:
    svc = services(request)
    principal = await svc.accounts.principal(bearer_token(request))
    svc.rate_limiter.hit(principal.id)
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
