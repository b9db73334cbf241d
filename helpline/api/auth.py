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
    ResumeRequest,
    ResumeSessionResponse,
    StreamTicketResponse,
)
from helpline.edge import client_address
from helpline.errors import NotAuthenticated

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
    """Start a customer session on a website channel: a guest, or a verified customer (identity_token).

    With the customer's access token in `Authorization` (current, or expired but issued within the
    session lifetime), renew it: a fresh token for the same customer, and its conversations.
    """
    await services(request).login_limiter.hit(f"session-ip:{client_address(request)}", cost=0.2)
    return await accounts.start_customer_session(
        deployment_key,
        origin=request.headers.get("origin"),
        display_name=body.display_name,
        email=body.email,
        identity_token=body.identity_token,
        renew_token=bearer_token(request),
    )


@router.post("/sessions/resume", status_code=201, response_model=ResumeSessionResponse, responses=problems(401, 403))
async def resume_customer_session(body: ResumeRequest, request: Request, accounts: AccountsDep) -> dict[str, Any]:
    """Exchange the token of an emailed link (`?helpline_resume=…`) for a session of its customer, on any
    browser: the answer of a new customer session, with `conversation_id`.

    401 `not_authenticated` with `reason`: `invalid` (damaged or forged), `expired`, `wrong_purpose` (not a
    resume token), `customer_gone` (erased), `conversation_gone`. 403 from an origin the deployment does not
    allow.
    """
    await services(request).login_limiter.hit(f"session-ip:{client_address(request)}", cost=0.2)
    return await accounts.resume_customer_session(body.token, origin=request.headers.get("origin"))


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer …` header; None without the header, 401 when malformed."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


@router.post("/stream-tickets", response_model=StreamTicketResponse, responses=problems(401, 403))
async def stream_ticket(caller: Caller, accounts: AccountsDep) -> dict[str, Any]:
    """A single-use credential (≤ 60 s) for `GET /api/v1/events?ticket=`, since EventSource sends no headers."""
    return accounts.stream_ticket(caller)
