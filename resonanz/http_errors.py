"""The one error middleware: every error answer is JSON, `{"error": "...", ...}` (the shape is
`handover.schemas.Error`).

- a domain error (`resonanz.errors`) gets the status of its kind (`STATUS`) and its message;
- aiohttp's own client errors (a body over the size limit: 413, an unknown route: 404, a wrong
  method: 405), which are text/plain, become the same shape;
- anything unexpected is logged with its traceback and answered with a bare 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import hdrs, web

from resonanz import errors

log = structlog.get_logger(__name__)

STATUS: dict[type[errors.DomainError], int] = {
    errors.Invalid: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.TooManyRequests: 429,
    errors.Unavailable: 503,
}


def status_of(exc: errors.DomainError) -> int:
    return next(status for kind, status in STATUS.items() if isinstance(exc, kind))


def _domain_response(exc: errors.DomainError) -> web.Response:
    headers = {}
    if isinstance(exc, errors.TooManyRequests) and "retry_after" in exc.extra:
        headers[hdrs.RETRY_AFTER] = str(exc.extra["retry_after"])
    return web.json_response({"error": str(exc), **exc.extra}, status=status_of(exc), headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.DomainError as exc:
        return _domain_response(exc)
    except web.HTTPException as exc:
        if not 400 <= exc.status < 500 or exc.content_type == "application/json":
            raise
        text = exc.text or ""
        message = exc.reason if text in ("", f"{exc.status}: {exc.reason}") else text
        headers = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        return web.json_response({"error": message}, status=exc.status, headers=headers)
    except Exception:
        if request.writer.output_size > 0:  # a stream already under way: nothing more can be said
            raise
        log.exception("request.failed", method=request.method, path=request.path)
        return web.json_response({"error": "internal server error"}, status=500)
