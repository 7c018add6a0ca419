"""Every client error is JSON: `{"error": "..."}`, also the ones aiohttp raises by itself (a body
over the size limit: 413, an unknown route: 404, a wrong method: 405), which are text/plain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not 400 <= exc.status < 500 or exc.content_type == "application/json":
            raise
        text = exc.text or ""
        message = exc.reason if text in ("", f"{exc.status}: {exc.reason}") else text
        headers = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        return web.json_response({"error": message}, status=exc.status, headers=headers)
