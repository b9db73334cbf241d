"""Customers: guests, and verified customers who keep one history across devices."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
from fastapi import FastAPI

from helpline import create_app
from helpline.domain.security import ACCESS_AUDIENCE
from tests.conftest import SECRET, make_settings
from tests.world import World

COMPANY_KEY = "the-company-signs-identities-with-this-key-0123456789"


async def verified_deployment(app: FastAPI) -> str:
    await app.state.services.accounts.create_deployment("members", "support", [], identity_key=COMPANY_KEY)
    return "/api/v1/deployments/members/sessions"


def identity(subject: str, *, key: str = COMPANY_KEY, expires_in: int = 300, **claims: object) -> str:
    return jwt.encode({"sub": subject, "exp": int(time.time()) + expires_in, **claims}, key, algorithm="HS256")


async def test_a_verified_customer_keeps_one_history_across_devices(
    app: FastAPI, world: World, client: httpx.AsyncClient
) -> None:
    path = await verified_deployment(app)
    laptop = (await client.post(path, json={"identity_token": identity("cust-42", name="Grace")})).json()
    phone = (await client.post(path, json={"identity_token": identity("cust-42")})).json()
    assert laptop["customer_id"] == phone["customer_id"] and laptop["verified"] is True
    assert phone["last_event_id"] == "0"  # a new device resumes from the start of the history
    opened = await client.post(
        "/api/v1/conversations",
        json={"id": "from-laptop"},
        headers={"Authorization": f"Bearer {laptop['access_token']}"},
    )
    assert opened.status_code == 201
    seen = await client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {phone['access_token']}"})
    assert [c["id"] for c in seen.json()["conversations"]] == [opened.json()["id"]]


async def test_guests_are_strangers_to_each_other(world: World, client: httpx.AsyncClient) -> None:
    first = (await client.post("/api/v1/deployments/web/sessions", json={})).json()
    second = (await client.post("/api/v1/deployments/web/sessions", json={})).json()
    assert first["customer_id"] != second["customer_id"] and first["verified"] is False


async def test_bad_identity_tokens_are_refused(app: FastAPI, world: World, client: httpx.AsyncClient) -> None:
    path = await verified_deployment(app)
    for token in (
        identity("cust-42", expires_in=-10),
        identity("cust-42", key="not-the-company-key-but-long-enough-012345"),
        identity("cust-42", aud="another-deployment"),
        "not-a-jwt",
    ):
        refused = await client.post(path, json={"identity_token": token})
        assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"
    unsupported = await client.post("/api/v1/deployments/web/sessions", json={"identity_token": identity("x")})
    assert unsupported.status_code == 401  # that deployment has no signing key


# -- a guest's session lasts customer_session_days, renewed by use -----------------------------------
def customer_token(customer_id: str, *, issued_ago: float, lifetime: float = 24 * 3600, key: str = SECRET) -> str:
    """A customer access token as Helpline signs them, issued `issued_ago` seconds ago."""
    issued = int(time.time() - issued_ago)
    claims = {"sub": customer_id, "kind": "customer", "aud": ACCESS_AUDIENCE, "jti": uuid.uuid4().hex}
    return jwt.encode({**claims, "iat": issued, "exp": int(issued + lifetime)}, key, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_guest_session_renews_for_the_same_customer_and_conversation(
    world: World, client: httpx.AsyncClient
) -> None:
    path = "/api/v1/deployments/web/sessions"
    guest = (await client.post(path, json={})).json()
    assert guest["session_expires_in"] == 30 * 86400 and guest["expires_in"] == 24 * 3600
    opened = await client.post("/api/v1/conversations", json={"id": "renew-me"}, headers=bearer(guest["access_token"]))
    assert opened.status_code == 201
    # Its token, current or expired (here: issued 29 days ago, expired 28 days ago), renews it.
    for old in (guest["access_token"], customer_token(guest["customer_id"], issued_ago=29 * 86400)):
        renewed = await client.post(path, json={}, headers=bearer(old))
        assert renewed.status_code == 201, renewed.text
        fresh = renewed.json()
        assert fresh["customer_id"] == guest["customer_id"] and fresh["access_token"] != old
        assert fresh["session_expires_in"] == 30 * 86400
        seen = await client.get("/api/v1/conversations", headers=bearer(fresh["access_token"]))
        assert [c["id"] for c in seen.json()["conversations"]] == [opened.json()["id"]]
    expired = customer_token(guest["customer_id"], issued_ago=2 * 86400)
    assert (await client.get("/api/v1/conversations", headers=bearer(expired))).status_code == 401  # still short-lived


async def test_renewal_is_refused_past_the_lifetime_elsewhere_and_to_strangers(
    app: FastAPI, world: World, client: httpx.AsyncClient
) -> None:
    path = "/api/v1/deployments/web/sessions"
    guest = (await client.post(path, json={})).json()
    await app.state.services.accounts.create_deployment("other", "support", [])
    for where, token in (
        (path, customer_token(guest["customer_id"], issued_ago=30 * 86400 + 60)),  # past the session lifetime
        ("/api/v1/deployments/other/sessions", guest["access_token"]),  # another deployment's customer
        (path, customer_token("no-such-customer", issued_ago=0)),
        (path, customer_token(guest["customer_id"], issued_ago=0, key="not-the-server-key-but-long-enough-0123")),
        (path, "not-a-jwt"),
    ):
        refused = await client.post(where, json={}, headers=bearer(token))
        assert refused.status_code == 401, (where, refused.text)
        assert refused.json()["code"] == "not_authenticated"
    # A staff token is no customer session: a new guest, as for any caller without a customer token.
    staff = await client.post(path, json={}, headers=bearer(world.tokens["rep"]))
    assert staff.status_code == 201 and staff.json()["customer_id"] != guest["customer_id"]
    malformed = await client.post(path, json={}, headers={"Authorization": "Basic abc"})
    assert malformed.status_code == 401 and malformed.headers["content-type"].startswith("application/problem+json")


async def test_the_session_lifetime_is_configurable(sqlite_url: str) -> None:
    application = create_app(make_settings(sqlite_url, customer_session_days=2))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await application.state.services.accounts.create_queue("support")
            await application.state.services.accounts.create_deployment("web", "support", [])
            path = "/api/v1/deployments/web/sessions"
            guest = (await c.post(path, json={})).json()
            assert guest["session_expires_in"] == 2 * 86400
            inside = customer_token(guest["customer_id"], issued_ago=2 * 86400 - 3600)
            assert (await c.post(path, json={}, headers=bearer(inside))).status_code == 201
            outside = customer_token(guest["customer_id"], issued_ago=2 * 86400 + 60)
            assert (await c.post(path, json={}, headers=bearer(outside))).status_code == 401
