"""The application factory: configuration in, a wired aiohttp app out (one cleanup_ctx per
external client: store, Daraja, the settle task)."""

import asyncio
import logging
import time

import aiohttp
from aiohttp import web

from cloud.auth import MeterVerifier, UserAuthenticator
from cloud.daraja import DarajaClient
from cloud.errors import error_middleware
from cloud.payments import Payments
from cloud.settle import running_settler
from cloud.views import setup_routes
from cloud.views.keys import (CONFIG, DARAJA, METER_AUTH, PAYMENTS, RECHARGE_SINK, STARTED_AT,
                              STORE, USER_AUTH)
from cloud.views.middleware import (access_log_middleware, cors_middleware,
                                    security_headers_middleware)

__all__ = ["create_app", "CONFIG", "STORE", "DARAJA", "PAYMENTS", "RECHARGE_SINK"]

log = logging.getLogger("mita.app")
_RECHARGE_QUEUE_SIZE = 10_000


async def open_store(config):
    if config.store == "firebase":
        from cloud.store.firebase import FirebaseStore  # firebase-admin only when asked for
        return await FirebaseStore.open(config)
    from cloud.store.sqlite import SqliteStore
    return await SqliteStore.open(config.sqlite_path)


def firebase_verifier():
    """verify_id_token from firebase-admin; the store has initialised the default app."""
    from firebase_admin import auth as firebase_auth
    # Revocation is checked: a disabled customer must not keep access for the token's hour.
    return lambda token: firebase_auth.verify_id_token(token, check_revoked=True)


def _store_ctx(given):
    async def ctx(app):
        config = app[CONFIG]
        store = given if given is not None else await open_store(config)
        app[STORE] = store
        verifier = app.get(_VERIFIER) or (firebase_verifier() if config.auth_mode == "firebase"
                                          else None)
        app[USER_AUTH] = UserAuthenticator(store, config.auth_mode, config.operator_key,
                                           verifier)
        app[METER_AUTH] = MeterVerifier(store, config.meter_replay_window_s)
        yield
        if given is None:
            await store.close()
    return ctx


async def _start_embedded_sandbox(config):
    """The local Daraja stand-in on a free localhost port; zero accounts needed."""
    from standins.daraja import make_app as make_sandbox
    sandbox = make_sandbox({"consumer_key": config.daraja_consumer_key,
                            "consumer_secret": config.daraja_consumer_secret,
                            "shortcode": config.daraja_shortcode,
                            "passkey": config.daraja_passkey})
    runner = web.AppRunner(sandbox, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, sandbox, f"http://127.0.0.1:{port}"


def _daraja_ctx(given):
    async def ctx(app):
        config = app[CONFIG]
        if given is not None:
            app[DARAJA] = given
            yield
            return
        runner = None
        base_url = config.daraja_base_url
        if config.embedded_daraja:
            runner, app[EMBEDDED_SANDBOX], base_url = await _start_embedded_sandbox(config)
            log.info("embedded daraja stand-in", extra={"base_url": base_url})
        session = aiohttp.ClientSession()
        app[DARAJA] = DarajaClient(session, base_url, config.daraja_consumer_key,
                                   config.daraja_consumer_secret, config.daraja_shortcode,
                                   config.daraja_passkey,
                                   config.callback_url_for("127.0.0.1", config.port))
        try:
            yield
        finally:
            await session.close()
            if runner is not None:
                await runner.cleanup()
    return ctx


async def _payments_ctx(app):
    config = app[CONFIG]
    payments = Payments(app[STORE], app[DARAJA], config, recharges=app[RECHARGE_SINK])
    app[PAYMENTS] = payments
    if not app[_SETTLE]:
        yield
        return
    async with running_settler(payments, config.settle_every_s):
        yield


_VERIFIER = web.AppKey("id_token_verifier", object)
# The in-process Daraja stand-in's own app (embedded mode only): tests script it through it.
EMBEDDED_SANDBOX = web.AppKey("embedded_sandbox", web.Application)
_SETTLE = web.AppKey("settle_enabled", bool)


def create_app(config, *, store=None, daraja=None, verify_id_token=None, settle=True):
    """The service. `store`/`daraja` replace the configured ones (tests, benchmarks); they are
    then the caller's to close. `settle=False` leaves out the background settle task."""
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[access_log_middleware, security_headers_middleware,
                     cors_middleware(config.frontend_url), error_middleware])
    app[CONFIG] = config
    app[STARTED_AT] = time.monotonic()
    app[RECHARGE_SINK] = asyncio.Queue(_RECHARGE_QUEUE_SIZE)
    app[_SETTLE] = settle
    if verify_id_token is not None:
        app[_VERIFIER] = verify_id_token
    app.cleanup_ctx.append(_store_ctx(store))
    app.cleanup_ctx.append(_daraja_ctx(daraja))
    app.cleanup_ctx.append(_payments_ctx)
    setup_routes(app)
    return app
