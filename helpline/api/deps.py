"""FastAPI dependencies: the services, and who is calling (shared with transport/ through helpline.edge)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from helpline.domain.accounts import Accounts
from helpline.domain.conversations import Conversations
from helpline.domain.offers import Offers
from helpline.edge import Caller, bearer_token, current_principal, services

__all__ = ["AccountsDep", "Caller", "ConversationsDep", "OffersDep", "bearer_token", "current_principal", "services"]


def accounts(request: Request) -> Accounts:
    return services(request).accounts


def conversations(request: Request) -> Conversations:
    return services(request).conversations


def offers(request: Request) -> Offers:
    return services(request).offers


AccountsDep = Annotated[Accounts, Depends(accounts)]
ConversationsDep = Annotated[Conversations, Depends(conversations)]
OffersDep = Annotated[Offers, Depends(offers)]
