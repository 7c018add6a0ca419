"""The agent console: a single page (plain JavaScript) over the agent API."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


async def page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console.html", headers=HEADERS)


async def review_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "review.html", headers=HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ("console.js", "console.css", "review.js", "review.css"):
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


def console_routes() -> list[web.RouteDef]:
    return [web.get("/console", page), web.get("/console/review", review_page), web.get("/console/static/{name}", asset)]
