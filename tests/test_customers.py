"""Customers: guests, and verified customers who keep one history across devices."""

from __future__ import annotations

import time

import httpx
import jwt
from fastapi import FastAPI

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
    assert [c["id"] for c in seen.json()["conversations"]] == ["from-laptop"]


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
