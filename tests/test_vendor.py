"""The vendored UI library is served from the gateway itself, as JavaScript modules."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from resonanz import vendor


async def test_vendored_modules_are_served_as_javascript_and_nothing_else_is() -> None:
    app = web.Application()
    app.router.add_routes(vendor.routes())
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        for name in ("preact.mjs", "hooks.mjs", "htm.mjs"):
            r = await client.get(f"/static/vendor/{name}")
            assert r.status == 200, name
            assert r.headers["Content-Type"].startswith("text/javascript")
            body = await r.text()
            assert "from\"preact\"" not in body  # hooks import preact by relative path: no import map needed
        for name in ("README.md", "LICENSE.preact", "..%2Fvendor.py", ".hidden.mjs", "missing.mjs"):
            r = await client.get(f"/static/vendor/{name}")
            assert r.status == 404, name
