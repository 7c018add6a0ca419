"""Which web pages may open the web chat socket: the Origin header against an allow-list.

A browser always sends Origin on a WebSocket handshake and a page cannot forge it, so checking it
stops another site from opening a chat in its visitor's name (cross-site WebSocket hijacking).
Allowed: the gateway's own origin (its public URL when set, else the scheme-less host the request
was addressed to, http or https) and the sites named in resonanz.yml (`allowed_origins`).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from yarl import URL

from resonanz.config import ConfigError


def normalise(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case without a default port, or None if it is not one."""
    try:
        url = URL(origin.strip())
    except (ValueError, TypeError):
        return None
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/") or url.query_string:
        return None
    return str(url.origin()).lower()


class OriginPolicy:
    def __init__(self, public_url: str | None, allowed: Iterable[str]) -> None:
        self.public = normalise(public_url) if public_url else None
        if public_url and self.public is None:
            raise ConfigError(f"public_url {public_url!r} is not an http(s) URL")
        extra = set()
        for origin in allowed:
            got = normalise(origin) if isinstance(origin, str) else None
            if got is None:
                raise ConfigError(
                    f"connector 'webchat': allowed_origins entry {origin!r} is not an origin like https://www.example.de"
                )
            extra.add(got)
        self.extra = frozenset(extra)

    def allows(self, request: web.Request) -> bool:
        raw = request.headers.get("Origin")
        origin = normalise(raw) if raw else None
        if origin is None:
            return False
        if origin in self.extra or origin == self.public:
            return True
        if self.public is not None:
            return False
        # No public URL: the gateway's origin is whatever host the browser addressed (behind a
        # TLS-terminating proxy the scheme seen here is not the browser's, so both are accepted).
        host = request.headers.get("Host", "")
        return bool(host) and origin in (normalise(f"http://{host}"), normalise(f"https://{host}"))
