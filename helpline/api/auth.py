"""Credentials: staff login, customer sessions, EventSource stream tickets (docs/protocol.md "Credentials")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from helpline.api import problems
from helpline.api.deps import AccountsDep, Caller, services
from helpline.api.schemas import (
    CustomerSessionRequest,
    CustomerSessionResponse,
    LoginRequest,
    LoginResponse,
    StreamTicketResponse,
)
from helpline.edge import client_address

router = APIRouter(prefix="/api/v1", tags=["credentials"])

DeploymentKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@router.post("/auth/login", response_model=LoginResponse, responses=problems(401))
async def login(body: LoginRequest, request: Request, accounts: AccountsDep) -> dict[str, Any]:
    """Exchange a staff username and password for a bearer access token."""
    limiter = services(request).login_limiter
    await limiter.hit(f"login-ip:{client_address(request)}")
    await limiter.hit(f"login-user:{body.username.lower()}")
    return await accounts.login(body.username, body.password)


@router.post(
    "/deployments/{deployment_key}/sessions",
    status_code=201,
    response_model=CustomerSessionResponse,
    responses=problems(401, 403, 404),
)
async def start_customer_session(
    deployment_key: DeploymentKey, body: CustomerSessionRequest, request: Request, accounts: AccountsDep
) -> dict[str, Any]:
    """Start a customer session on a website channel: a guest, or a verified customer (identity_token)."""
    await services(request).login_limiter.hit(f"session-ip:{client_address(request)}", cost=0.2)
    return await accounts.start_customer_session(
        deployment_key,
        origin=request.headers.get("origin"),
        display_name=body.display_name,
        email=body.email,
        identity_token=body.identity_token,
    )


@router.post("/stream-tickets", response_model=StreamTicketResponse, responses=problems(401, 403))
async def stream_ticket(caller: Caller, accounts: AccountsDep) -> dict[str, Any]:
    """A single-use credential (≤ 60 s) for `GET /api/v1/events?ticket=`, since EventSource sends no headers."""
    return accounts.stream_ticket(caller)
