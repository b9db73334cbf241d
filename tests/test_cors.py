"""The widget works from the company's own website: CORS for deployment origins, and only for them."""

from __future__ import annotations

import httpx

from tests.world import World

SHOP = "https://shop.example"


async def test_a_deployment_origin_may_call_the_api_cross_origin(world: World, client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/api/v1/deployments/web/sessions",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == SHOP
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    session = await client.post("/api/v1/deployments/web/sessions", json={}, headers={"Origin": SHOP})
    assert session.status_code == 201
    assert session.headers["access-control-allow-origin"] == SHOP
    assert "access-control-allow-credentials" not in session.headers  # bearer tokens, never cookies


async def test_other_origins_get_no_cors_and_cannot_start_sessions(world: World, client: httpx.AsyncClient) -> None:
    evil = "https://evil.example"
    preflight = await client.options(
        "/api/v1/conversations", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    refused = await client.post("/api/v1/deployments/web/sessions", json={}, headers={"Origin": evil})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


async def test_a_new_deployment_origin_is_allowed_at_once(world: World, client: httpx.AsyncClient) -> None:
    newcomer = "https://new-shop.example"
    ask = {"Origin": newcomer, "Access-Control-Request-Method": "POST"}
    assert (await client.options("/api/v1/conversations", headers=ask)).status_code == 403  # warms the cache
    created = await world.call(
        "admin",
        "POST",
        "/api/v1/admin/deployments",
        {"key": "new-shop", "queue": "support", "allowed_origins": [newcomer]},
    )
    assert created.status_code == 201
    assert (await client.options("/api/v1/conversations", headers=ask)).status_code == 204
