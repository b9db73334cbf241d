"""The client's real address behind reverse proxies: ``--trusted-proxies`` / ``HELPLINE_TRUSTED_PROXIES``.

Behind nginx or haproxy every connection comes from the proxy, so without this every customer of a
site shares one address: one abuser rate-limits them all, and the access log names nobody (issue 13).
A proxy says who its client was in ``X-Forwarded-For`` (or the standard ``Forwarded: for=``), but any
client can send those headers too, so they are believed only from the peers listed here (addresses or
CIDR blocks). The client is then the right-most address in the chain that is not itself a trusted
proxy: everything left of it was written by someone we do not trust.

:meth:`TrustedProxies.rewrite` puts that address in the ASGI scope's ``client`` once, when a request
enters the app, so the rate limits, the caps and uvicorn's access log all read the same one.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from helpline.config import ConfigurationError

__all__ = ["TrustedProxies"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED_FOR = re.compile(r'(?:^|[;,\s])for=("?)([^;,"]+)\1', re.IGNORECASE)
_CACHE_SIZE = 10_000


class TrustedProxies:
    def __init__(self, spec: str) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(_network(part) for part in spec.split(",") if part.strip())
        self._trusted: dict[str, bool] = {}  # peer address → trusted, so the common case is one lookup

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        known = self._trusted.get(address)
        if known is None:
            try:
                parsed = ipaddress.ip_address(address)
            except ValueError:
                known = False
            else:
                known = any(parsed in network for network in self.networks)
            if len(self._trusted) >= _CACHE_SIZE:
                self._trusted.clear()
            self._trusted[address] = known
        return known

    def client_of(self, peer: str, headers: list[tuple[bytes, bytes]]) -> str:
        """The client's address for a request that arrived from ``peer`` with ``headers``."""
        if not self.trusts(peer):
            return peer
        chain = _forwarded_chain(headers)
        for address in reversed(chain):
            if address is None:
                return peer  # a hop we cannot read: believe nothing further left
            if not self.trusts(address):
                return address
        return chain[0] if chain and chain[0] else peer  # every hop is a trusted proxy: the first one

    def rewrite(self, scope: Any) -> None:
        """Put the real client in ``scope["client"]`` (only when the peer is a trusted proxy)."""
        client = scope.get("client")
        if client and self.trusts(client[0]):
            address = self.client_of(client[0], scope["headers"])
            if address != client[0]:
                scope["client"] = (address, 0)


def _network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigurationError(
            f"HELPLINE_TRUSTED_PROXIES: {text.strip()!r} is not an address or a CIDR block (e.g. 10.0.0.0/8)"
        ) from None


def _forwarded_chain(headers: list[tuple[bytes, bytes]]) -> list[str | None]:
    """The addresses proxies recorded, left (the first hop) to right (the last proxy before us).

    ``X-Forwarded-For`` when present (what nginx and haproxy send), else ``Forwarded`` (RFC 7239).
    An entry that is not an IP address (``unknown``, an obfuscated name) is ``None``.
    """
    forwarded_for = [v for k, v in headers if k == b"x-forwarded-for"]
    if forwarded_for:
        parts = b",".join(forwarded_for).decode("latin-1").split(",")
        return [_address(p.strip()) for p in parts if p.strip()]
    forwarded = [v for k, v in headers if k == b"forwarded"]
    if forwarded:
        text = ",".join(v.decode("latin-1") for v in forwarded)
        return [_address(match.group(2).strip()) for match in _FORWARDED_FOR.finditer(text)]
    return []


def _address(value: str) -> str | None:
    """An IP address out of ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:80`` or ``2001:db8::1``."""
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None
