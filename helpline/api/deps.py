"""FastAPI dependencies: the services, and who is calling (shared with transport/ through helpline.edge)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from helpline.domain.accounts import Accounts
from helpline.domain.canned import CannedResponses
from helpline.domain.conversations import Conversations
from helpline.domain.notes import Notes
from helpline.domain.offers import Offers
from helpline.edge import Caller, bearer_token, current_principal, services

__all__ = [
    "AccountsDep",
    "Caller",
    "CannedDep",
    "ConversationsDep",
    "NotesDep",
    "OffersDep",
    "bearer_token",
    "current_principal",
    "services",
]


def accounts(request: Request) -> Accounts:
    return services(request).accounts


def conversations(request: Request) -> Conversations:
    return services(request).conversations


def notes(request: Request) -> Notes:
    return services(request).notes


def canned(request: Request) -> CannedResponses:
    return services(request).canned


def offers(request: Request) -> Offers:
    return services(request).offers


AccountsDep = Annotated[Accounts, Depends(accounts)]
ConversationsDep = Annotated[Conversations, Depends(conversations)]
NotesDep = Annotated[Notes, Depends(notes)]
CannedDep = Annotated[CannedResponses, Depends(canned)]
OffersDep = Annotated[Offers, Depends(offers)]
