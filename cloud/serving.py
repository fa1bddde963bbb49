"""Running the app on a socket: the runner settings that bound slow clients, and JSON (with the
security headers) for the errors aiohttp answers itself before any handler runs (a bad
request line, a 10 KB path, a header too long), which no middleware or signal sees."""

import asyncio
import contextlib
import http
import json
import logging

from aiohttp import web, web_protocol, web_server

from cloud.views.middleware import SECURITY_HEADERS

log = logging.getLogger("mita.http")


def runner_settings(config):
    """AppRunner keyword arguments for the service (tests pass the same ones).

    aiohttp arms its keep-alive timer when a connection opens and again after each response,
    and closes the connection if no whole request head has arrived when it fires: so the
    keep-alive timeout is also the header read timeout (its default is an hour)."""
    return {"keepalive_timeout": config.header_timeout_s, "access_log": None}


class _JsonErrorHandler(web_protocol.RequestHandler):
    def handle_error(self, request, status=500, exc=None, message=None):
        if request.writer.output_size > 0:  # as the parent: too late for another response
            raise ConnectionError("response already started")
        # Not the parent's traceback: the parser's message quotes the raw request line,
        # which may hold the callback secret. What failed and from where is enough.
        log.warning("unreadable request", extra={"status": status, "remote": request.remote,
                                                 "error": type(exc).__name__ if exc else None})
        phrase = _phrase(status)
        body = {"error": phrase.lower().replace(" ", "_").replace("-", "_"),
                "message": "the request could not be read: " + phrase.lower()}
        response = web.Response(status=status, text=json.dumps(body),
                                content_type="application/json", headers=SECURITY_HEADERS)
        response.force_close()
        return response


def _phrase(status):
    with contextlib.suppress(ValueError):
        return http.HTTPStatus(status).phrase
    return "Error"


class _JsonErrorServer(web_server.Server):
    """Only the protocol class differs; aiohttp offers no setting for it."""

    def __call__(self):
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class ServiceRunner(web.AppRunner):
    """An AppRunner whose connections answer pre-handler errors as JSON."""

    async def _make_server(self):
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server


async def start(app, config, host="0.0.0.0", port=None):
    """The app listening; returns the runner (cleanup() stops it)."""
    runner = ServiceRunner(app, handle_signals=True, **runner_settings(config))
    await runner.setup()
    await web.TCPSite(runner, host, config.port if port is None else port).start()
    return runner


def serve_forever(app, config):
    """Like web.run_app, with the service's runner; SIGINT/SIGTERM stop it cleanly."""
    async def run():
        if config.tracemalloc_path:  # before the app starts: its warm-up is in the report
            from cloud import memtrace
            memtrace.install(config.tracemalloc_path, asyncio.get_running_loop())
        runner = await start(app, config)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(run())
