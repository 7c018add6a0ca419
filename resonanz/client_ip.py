"""The client's address: the TCP peer, or — when that peer is a trusted reverse proxy
(RESONANZ_TRUSTED_PROXIES) — the rightmost address in X-Forwarded-For that is not itself a trusted
proxy. Anything left of it was written by the client and proves nothing."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.5:1234"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(addr: Address, networks: Iterable[Network]) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in networks)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: tuple[str, ...]) -> str:
    """The client's address given the TCP peer, the X-Forwarded-For header values (in order) and
    the trusted proxies. Unknown peer: "unknown" (one shared bucket, never a free pass)."""
    networks = _networks(trusted)
    peer_addr = _address(peer or "")
    if peer_addr is None:
        return peer or "unknown"
    if not networks or not _trusted(peer_addr, networks):
        return str(peer_addr)
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    nearest = peer_addr  # the nearest hop known to be trusted
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            return str(nearest)  # a trusted hop passed on garbage: go no further than that hop
        if not _trusted(addr, networks):
            return str(addr)
        nearest = addr
    return str(nearest)


def client_ip(request: web.Request) -> str:
    """The client's address for rate limits and logs (see the module docstring)."""
    from resonanz.keys import SETTINGS  # not at import: connectors use client_address without the app

    settings = request.app[SETTINGS]
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", ()), settings.trusted_proxies)
