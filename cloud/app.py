"""The application factory: configuration in, the whole service out. One cleanup_ctx per
part, started in this order and stopped in the reverse: the store (and the authenticators on
it), Daraja, the meter link (broker and bridge), then payments with the settle task."""

import logging
import time

import aiohttp
from aiohttp import web

from cloud.abuse import AbuseGuard
from cloud.auth import MeterVerifier, UserAuthenticator
from cloud.daraja import DarajaClient
from cloud.errors import error_middleware
from cloud.events import EventHub
from cloud.keys import (ABUSE, CONFIG, DARAJA, EMBEDDED_SANDBOX, EVENTS, ID_TOKEN_VERIFIER, LINK,
                        METER_AUTH, METERS, PAYMENTS, SETTLE_ENABLED, STARTED_AT, STORE,
                        TICKETS, USER_AUTH)
from cloud.link.broker import check_port_free
from cloud.link.service import Link
from cloud.meters import Meters
from cloud.payments import Payments
from cloud.settle import running_settler
from cloud.store import open_store
from cloud.tickets import Tickets
from cloud.views import setup_routes
from cloud.views.middleware import (access_log_middleware, add_security_headers,
                                    cors_middleware)

__all__ = ["create_app"]

log = logging.getLogger("mita.app")


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
        verifier = app.get(ID_TOKEN_VERIFIER) or (firebase_verifier() if config.auth_mode == "firebase"
                                          else None)
        app[USER_AUTH] = UserAuthenticator(store, config.auth_mode, config.operator_key,
                                           verifier)
        app[METER_AUTH] = MeterVerifier(store, config.meter_replay_window_s)
        app[ABUSE] = AbuseGuard(store, time.time)
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


def _link_ctx(bridge_options):
    async def ctx(app):
        options = dict(bridge_options or {}, on_event=app[EVENTS].publish)
        link = Link(app[CONFIG].link, app[STORE], options)
        app[LINK] = link
        app[METERS] = Meters(app[STORE], link)
        await link.start()
        try:
            yield
        finally:
            await link.stop()
    return ctx


async def _payments_ctx(app):
    config = app[CONFIG]
    # Pull-only delivery: a recorded recharge only tells the link to look (docs/architecture.md).
    payments = Payments(app[STORE], app[DARAJA], config, on_recharge=app[LINK].kick,
                        on_event=app[EVENTS].publish)
    app[PAYMENTS] = payments
    try:
        if not app[SETTLE_ENABLED]:
            yield
            return
        async with running_settler(payments, config.settle_every_s):
            yield
    finally:
        payments.minter.close()


async def _close_events(app):
    app[EVENTS].close()


def create_app(config, *, store=None, daraja=None, verify_id_token=None, settle=True,
               bridge_options=None):
    """The service, the meter link included when `config.link` is enabled. `store`/`daraja`
    replace the configured ones (tests, benchmarks); they are then the caller's to close.
    `settle=False` leaves out the background settle task; `bridge_options` go to the Bridge
    (tests: clocks, resend periods)."""
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[access_log_middleware, cors_middleware(config.frontend_url),
                     error_middleware])
    app.on_response_prepare.append(add_security_headers)
    app[CONFIG] = config
    app[STARTED_AT] = time.monotonic()
    app[SETTLE_ENABLED] = settle
    app[EVENTS] = EventHub()
    app[TICKETS] = Tickets()
    # Open event streams end first, or shutdown would wait out their keep-alives.
    app.on_shutdown.append(_close_events)
    if verify_id_token is not None:
        app[ID_TOKEN_VERIFIER] = verify_id_token
    link = config.link
    if link.enabled and link.embedded and link.port:
        check_port_free(link.bind_host, link.port)  # before any other part opens
    app.cleanup_ctx.append(_store_ctx(store))
    app.cleanup_ctx.append(_daraja_ctx(daraja))
    app.cleanup_ctx.append(_link_ctx(bridge_options))
    app.cleanup_ctx.append(_payments_ctx)
    setup_routes(app)
    return app
