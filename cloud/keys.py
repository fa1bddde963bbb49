"""Typed application keys, all of them: what create_app hangs off the app, and the services
the views call through."""

from aiohttp import web

from cloud.abuse import AbuseGuard
from cloud.auth import MeterVerifier, UserAuthenticator
from cloud.config import Config
from cloud.events import EventHub
from cloud.link.service import Link
from cloud.meters import Meters
from cloud.payments import Payments
from cloud.store.base import Store
from cloud.tickets import Tickets

CONFIG = web.AppKey("config", Config)
STARTED_AT = web.AppKey("started_at", float)
# The record keeper: create_app's own contexts and services hold it; views do not.
STORE = web.AppKey("store", Store)
DARAJA = web.AppKey("daraja", object)
PAYMENTS = web.AppKey("payments", Payments)
METERS = web.AppKey("meters", Meters)
LINK = web.AppKey("link", Link)
USER_AUTH = web.AppKey("user_auth", UserAuthenticator)
METER_AUTH = web.AppKey("meter_auth", MeterVerifier)
ABUSE = web.AppKey("abuse", AbuseGuard)  # sign-in lockouts and the HTTP layer's refusal counts
# The dashboard's live feed (fed by the bridge and Payments) and its stream tickets.
EVENTS = web.AppKey("events", EventHub)
TICKETS = web.AppKey("tickets", Tickets)
# The in-process Daraja stand-in's own app (embedded mode only): tests script it through it.
EMBEDDED_SANDBOX = web.AppKey("embedded_sandbox", web.Application)
# Test and benchmark seams: an ID-token verifier instead of firebase-admin's, no settle task.
ID_TOKEN_VERIFIER = web.AppKey("id_token_verifier", object)
SETTLE_ENABLED = web.AppKey("settle_enabled", bool)
