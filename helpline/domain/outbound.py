"""Requests Helpline makes to the outside (webhook deliveries), and the guard against request forgery.

A webhook URL is chosen by an admin, but a server that POSTs wherever it is told can be turned on the
network it runs in (cloud metadata at 169.254.169.254, an internal admin port on 127.0.0.1, a database
on 10.0.0.5). So, unless ``HELPLINE_WEBHOOK_ALLOW_PRIVATE=1``:

* a URL naming a loopback, private, link-local or otherwise non-public address is refused when it is
  registered (422), and so is ``localhost``;
* at every delivery the host name is resolved here, each address is checked, and the connection is made
  to a checked address (never re-resolved by someone else: no window for DNS rebinding); the address
  the socket actually connected to is checked once more before a byte is sent;
* redirects are never followed (a 3xx is an answer like any other non-2xx: the delivery failed).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore

from helpline.errors import ValidationFailed

MAX_URL_LENGTH = 2048
USER_AGENT = "Helpline-Webhooks/1.1"


class Refused(Exception):
    """The target is an address webhooks may not reach (loopback, private, link-local, …)."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def checked_url(url: str, *, allow_private: bool) -> str:
    """The URL if webhooks may be sent to it, else 422 saying why (checked again at every delivery)."""
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationFailed("the URL is malformed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise ValidationFailed("the URL must not carry credentials; deliveries are signed instead")
    if port == 0:
        raise ValidationFailed("the URL's port is invalid")
    if not allow_private:
        host = parts.hostname.rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost"):
            raise ValidationFailed(
                "webhooks may not target localhost (HELPLINE_WEBHOOK_ALLOW_PRIVATE=1 allows private targets)"
            )
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None and not is_public(str(literal)):
            raise ValidationFailed(
                f"webhooks may not target {literal}, a non-public address "
                "(HELPLINE_WEBHOOK_ALLOW_PRIVATE=1 allows private targets)"
            )
    return url


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses it resolved and checked itself."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [a for a in addresses if self.allow_private or is_public(a)]
        if not allowed:
            raise Refused(f"{host} resolves to non-public addresses only ({', '.join(addresses)})")
        last: Exception | None = None
        for address in allowed:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if not self.allow_private and (not peer or not is_public(str(peer[0]))):
                await stream.aclose()
                raise Refused(f"connected to a non-public address ({peer[0] if peer else 'unknown'})")
            return stream
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise Refused("webhooks are never sent to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None


class Sender:
    """One connection pool for every endpoint; each request has one deadline for all of it."""

    def __init__(self, *, allow_private: bool, max_connections: int = 100) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(),
            max_connections=max_connections,
            max_keepalive_connections=20,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(allow_private),
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        """POST ``body``; the answer's status and ``Retry-After`` (its body is not read)."""
        sent = [
            (b"Content-Type", b"application/json"),
            (b"User-Agent", USER_AGENT.encode()),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        async with asyncio.timeout(timeout):  # a receiver trickling bytes cannot hold a delivery for longer
            async with self._pool.stream(
                "POST", url, headers=sent, content=body, extensions={"timeout": limits}
            ) as response:
                retry_after = None
                for name, value in response.headers:
                    if name.lower() == b"retry-after":
                        retry_after = value.decode("latin-1")
                return Answer(response.status, retry_after)

    async def close(self) -> None:
        await self._pool.aclose()
