"""FastAPI dependencies: the services, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from helpline.domain.accounts import Accounts
from helpline.domain.canned import CannedResponses
from helpline.domain.conversations import Conversations
from helpline.domain.models import Principal
from helpline.domain.notes import Notes
from helpline.errors import NotAuthenticated
from helpline.services import Services


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


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


def accounts(request: Request) -> Accounts:
    return services(request).accounts


def conversations(request: Request) -> Conversations:
    return services(request).conversations


def notes(request: Request) -> Notes:
    return services(request).notes


def canned(request: Request) -> CannedResponses:
    return services(request).canned


Caller = Annotated[Principal, Depends(current_principal)]
AccountsDep = Annotated[Accounts, Depends(accounts)]
ConversationsDep = Annotated[Conversations, Depends(conversations)]
NotesDep = Annotated[Notes, Depends(notes)]
CannedDep = Annotated[CannedResponses, Depends(canned)]
