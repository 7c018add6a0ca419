"""The agent console: a single page (Preact + htm, vendored; no build step) over the agent API."""

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


# The page's files (JavaScript modules must be served as JavaScript).
ASSETS = {"console.js": "text/javascript", "i18n.js": "text/javascript", "console.css": "text/css",
          "review.js": "text/javascript", "review.css": "text/css",
          "customers.js": "text/javascript"}


async def page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console.html", headers=HEADERS)


async def review_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "review.html", headers=HEADERS)


async def customers_page(request: web.Request) -> web.StreamResponse:
    """Merge and split customers (handover/customers.py): a page of its own beside the console."""
    return web.FileResponse(STATIC / "customers.html", headers=HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
                                                    "Content-Type": ASSETS[name]})


def console_routes() -> list[web.RouteDef]:
    return [web.get("/console", page), web.get("/console/review", review_page), web.get("/console/customers", customers_page),
            web.get("/console/static/{name}", asset)]
