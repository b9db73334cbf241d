"""The client's real address behind the proxies of docs/deployment.md (``--trusted-proxies``).

Customers reach nginx or haproxy from addresses of their own (client sockets bound to 127.0.0.5,
127.0.0.6, …; Linux routes all of 127/8 to loopback), and the proxy reaches Helpline from 127.0.0.1,
the one trusted proxy. What each test shows, and how it could fail:
- behind each proxy, one customer who exhausts the session-creation limit is refused (429) while
  another customer of the same site is still served: the limit is per customer, not per proxy (it
  would be per proxy if the header were not set, or not believed);
- a client that is not a trusted proxy cannot choose its address by sending the header itself;
- the parsing rules (chains, ``Forwarded``, IPv6, ports, garbage) on their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from helpline import Settings
from helpline.config import ConfigurationError
from helpline.edge.clients import TrustedProxies
from tests.conftest import LiveServer, make_settings
from tests.proxies import Proxy, haproxy, nginx

SESSIONS_BURST = 10  # login_attempts_per_minute=2, a session costs 0.2 of an attempt


@pytest.fixture
def live_settings(sqlite_url: str) -> Settings:
    return make_settings(
        sqlite_url, demo=True, demo_password="proxied-demo", login_attempts_per_minute=2, trusted_proxies="127.0.0.1"
    )


@asynccontextmanager
async def customer_at(base_url: str, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose connections come from ``address``."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=10) as client:
        yield client


async def new_sessions_until_refused(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> int:
    for created in range(SESSIONS_BURST * 3):
        response = await client.post("/api/v1/deployments/demo/sessions", json={}, headers=headers)
        if response.status_code == 429:
            assert response.json()["code"] == "rate_limited" and "retry-after" in response.headers
            return created
        assert response.status_code == 201, response.text
    raise AssertionError("never rate limited")


@pytest.fixture(params=["nginx", "haproxy"])
def proxy(request: pytest.FixtureRequest, live_server: LiveServer) -> Iterator[Proxy]:
    make = nginx if request.param == "nginx" else haproxy
    with make(live_server.url) as running:
        yield running


@pytest.mark.proxy
async def test_behind_the_proxy_each_customer_has_their_own_limit(proxy: Proxy) -> None:
    async with customer_at(proxy.url, "127.0.0.5") as abuser, customer_at(proxy.url, "127.0.0.6") as neighbour:
        # The abuser's own X-Forwarded-For is not believed: the proxy appends the real address.
        assert await new_sessions_until_refused(abuser, {"X-Forwarded-For": "198.51.100.7"}) == SESSIONS_BURST
        served = await neighbour.post("/api/v1/deployments/demo/sessions", json={})
        assert served.status_code == 201, (served.text, proxy.logs())
        assert (await abuser.post("/api/v1/deployments/demo/sessions", json={})).status_code == 429


async def test_a_client_that_is_not_a_proxy_cannot_choose_its_address(live_server: LiveServer) -> None:
    async with customer_at(live_server.url, "127.0.0.7") as liar, customer_at(live_server.url, "127.0.0.8") as other:
        assert await new_sessions_until_refused(liar, {"X-Forwarded-For": "127.0.0.8"}) == SESSIONS_BURST
        assert (await other.post("/api/v1/deployments/demo/sessions", json={})).status_code == 201


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


@pytest.mark.parametrize(
    ("peer", "sent", "client"),
    [
        ("10.0.0.2", headers(x_forwarded_for="203.0.113.9"), "203.0.113.9"),
        ("10.0.0.2", headers(x_forwarded_for="1.1.1.1, 203.0.113.9, 10.0.0.3"), "203.0.113.9"),  # spoofed head
        ("10.0.0.2", headers(x_forwarded_for="203.0.113.9:4711"), "203.0.113.9"),
        ("10.0.0.2", headers(x_forwarded_for="2001:db8::1"), "2001:db8::1"),
        ("10.0.0.2", headers(x_forwarded_for="unknown"), "10.0.0.2"),  # unreadable: the peer
        ("10.0.0.2", headers(x_forwarded_for="1.1.1.1, garbage"), "10.0.0.2"),
        ("10.0.0.2", headers(forwarded='for="[2001:db8::7]:80";proto=https, for=10.0.0.9'), "2001:db8::7"),
        ("10.0.0.2", headers(forwarded="for=198.51.100.1;by=10.0.0.2"), "198.51.100.1"),
        ("10.0.0.2", headers(), "10.0.0.2"),
        ("10.0.0.2", headers(x_forwarded_for="10.0.0.4, 10.0.0.3"), "10.0.0.4"),  # only proxies: the first
        ("192.0.2.50", headers(x_forwarded_for="203.0.113.9"), "192.0.2.50"),  # not a trusted peer
    ],
)
def test_the_client_is_the_last_address_no_trusted_proxy_wrote(
    peer: str, sent: list[tuple[bytes, bytes]], client: str
) -> None:
    proxies = TrustedProxies("10.0.0.0/24, 127.0.0.1")
    scope = {"type": "http", "client": (peer, 5000), "headers": sent}
    proxies.rewrite(scope)
    assert scope["client"][0] == client


def test_a_malformed_trusted_proxies_setting_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="not an address or a CIDR"):
        TrustedProxies("10.0.0.0/8, nginx.internal")
    assert not TrustedProxies("")
