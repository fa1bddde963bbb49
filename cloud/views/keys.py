"""Typed application keys: everything a view needs hangs off the app under one of these."""

import asyncio

from aiohttp import web

from cloud.auth import MeterVerifier, UserAuthenticator
from cloud.config import Config
from cloud.payments import Payments
from cloud.store.base import Store

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
DARAJA = web.AppKey("daraja", object)
PAYMENTS = web.AppKey("payments", Payments)
USER_AUTH = web.AppKey("user_auth", UserAuthenticator)
METER_AUTH = web.AppKey("meter_auth", MeterVerifier)
# Recharges created by payments; the MQTT bridge drains this queue to deliver them.
RECHARGE_SINK = web.AppKey("recharge_sink", asyncio.Queue)
STARTED_AT = web.AppKey("started_at", float)
