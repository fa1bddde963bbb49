"""Cross-cutting HTTP layers: security headers, CORS for the dashboard, a structured access log."""

import logging
import time

from aiohttp import web

from cloud.errors import json_error, loggable_path

access_log = logging.getLogger("mita.access")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # JSON and errors load nothing and may be framed by nobody; the dashboard's page sets its
    # own policy (cloud/views/dashboard.py: same-origin modules, CSS, EventSource, nothing
    # inline), which this default does not overwrite.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    # Honoured only over HTTPS (production sits behind TLS); ignored on plain HTTP.
    "Strict-Transport-Security": "max-age=15552000; includeSubDomains",
    # Replaces aiohttp's "Python/3.x aiohttp/3.x": no version list for scanners.
    "Server": "mita",
}
_CORS_METHODS = "GET, POST, PUT, OPTIONS"
_CORS_HEADERS = "Authorization, Content-Type"


async def add_security_headers(request, response):
    """on_response_prepare: every response the app sends, streamed ones (an EventSource)
    and those no handler made included. Errors aiohttp answers before the app sees the
    request get the same headers from cloud/serving.py."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # aiohttp has put its own banner in by now: replace it
    response.headers["Server"] = SECURITY_HEADERS["Server"]


def cors_middleware(allowed_origin):
    """Answer preflights and tag responses for one configured origin ("*": any origin).

    Credentials are sent as a bearer header, never cookies, so "*" stays safe to allow.
    """

    @web.middleware
    async def middleware(request, handler):
        origin = request.headers.get("Origin")
        allowed = origin is not None and allowed_origin in ("*", origin)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                return json_error(403, "forbidden", "origin not allowed")
            response = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = allowed_origin
            if allowed_origin != "*":
                response.headers["Vary"] = "Origin"
        return response

    return middleware


@web.middleware
async def access_log_middleware(request, handler):
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        path = loggable_path(request)  # never the callback secret
        access_log.info("%s %s %s", request.method, path, status, extra={
            "method": request.method, "path": path, "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "remote": request.remote})
