"""The vendored front-end libraries (resonanz/static/vendor), served at /static/vendor/<file>.

Only the files that are there; JavaScript modules get a JavaScript content type (browsers refuse
module scripts served as anything else)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

VENDOR = Path(__file__).parent / "static" / "vendor"
_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".css": "text/css"}


async def vendor_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = VENDOR / name
    kind = _TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(path, headers={
        "Content-Type": kind, "X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600",
    })


def routes() -> list[web.RouteDef]:
    return [web.get("/static/vendor/{name}", vendor_file)]
