"""Secrets never reach a log line or an error body (issue #14 part 3): a whole run on the real
runner (cloud/serving.py, as `python -m cloud serve` has it), every logger captured at DEBUG,
through users, meters, a paid STK push, callbacks right and wrong, a key rotation, refusals
and Daraja failures; then every secret of the run is looked for in everything logged and in
every body that was not meant to hand one out."""

import asyncio
import base64
import json
import logging

import aiohttp
import pytest

from cloud.app import create_app
from cloud.auth import signed_headers
from cloud.daraja import PATH_OAUTH, PATH_STK_PUSH
from cloud.keys import DARAJA, EMBEDDED_SANDBOX
from cloud.serving import start
from standins.daraja import SANDBOX
from tests.cloud.cloud_harness import OPERATOR_KEY, SECRET, c2b_body, make_config

CONSUMER_KEY = "ck-leakcheck-0123456789"
CONSUMER_SECRET = "cs-leakcheck-9876543210"
PASSKEY = "pk-leakcheck-bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"


@pytest.fixture
async def service(tmp_path):
    config = make_config(tmp_path, daraja_consumer_key=CONSUMER_KEY,
                         daraja_consumer_secret=CONSUMER_SECRET, daraja_passkey=PASSKEY)
    app = create_app(config, settle=False)
    runner = await start(app, config, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    app[DARAJA].callback_url = f"{base}/daraja/callback/{SECRET}"
    async with aiohttp.ClientSession(base) as session:
        yield app, session
    await runner.cleanup()


class Run:
    def __init__(self, session):
        self.session = session
        self.bodies = []  # (what, text) of every answer not meant to hand out a secret

    async def call(self, method, path, hands_out_secret=False, **kw):
        async with self.session.request(method, path, **kw) as resp:
            text = await resp.text()
        if not hands_out_secret:
            self.bodies.append((f"{method} {path} {resp.status}", text))
        return resp.status, text


async def _whole_run(app, run):
    op = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    sandbox = app[EMBEDDED_SANDBOX][SANDBOX]
    sandbox.update_settings({"callback_delay_s": 0})
    _, user = await run.call("POST", "/api/users", True, json={"name": "Amina"}, headers=op)
    user = json.loads(user)
    auth = {"Authorization": f"Bearer {user['api_key']}"}
    _, meter = await run.call("POST", "/api/meters", True, headers=op,
                              json={"meter_no": "MITA0001", "user_id": user["user_id"]})
    meter = json.loads(meter)
    status, pushed = await run.call("POST", "/api/payments/stkpush", headers=auth,
                                    json={"meter_no": "MITA0001", "phone": "0712345678",
                                          "amount": 50})
    assert status == 201, pushed
    checkout = json.loads(pushed)["checkout_request_id"]
    for _ in range(200):
        _, shown = await run.call("GET", f"/api/payments/stk/{checkout}", headers=auth)
        if '"success"' in shown:
            break
        await asyncio.sleep(0.01)
    assert '"success"' in shown
    path = "/api/meters/MITA0001/status"
    raw = b'{"wifi_status": "connected"}'
    await run.call("POST", path, data=raw, headers=dict(
        signed_headers("MITA0001", meter["device_key"], "POST", path, raw),
        **{"Content-Type": "application/json"}))
    await run.call("POST", "/api/meters/MITA0001/status", data=raw, headers=dict(
        signed_headers("MITA0001", "a-wrong-key", "POST", path, raw)))
    _, rotated = await run.call("POST", "/api/meters/MITA0001/key", True, headers=op)
    # the refusals and failures that log
    await run.call("GET", "/api/meters/MITA0001", headers={"Authorization": "Bearer mita_guess"})
    await run.call("POST", "/daraja/callback/not-the-secret-at-all", json={})
    await run.call("POST", f"/daraja/callback/{SECRET}/", json={})  # a typo'd registered URL
    await run.call("POST", f"/daraja/callback/{SECRET}", data=b"{not json")
    await run.call("POST", f"/daraja/c2b/confirmation/{SECRET}", json=c2b_body("LK000001",
                                                                             "NO-SUCH"))
    await run.call("POST", f"/daraja/callback?secret={SECRET}", json={"Body": {}})
    sandbox.faults.append({"path": PATH_OAUTH, "count": 1, "status": 401,
                           "errorCode": "401.003.01", "errorMessage": "Invalid credentials"})
    sandbox.tokens.clear()
    await run.call("POST", "/api/payments/stkpush", headers=auth,
                   json={"meter_no": "MITA0001", "phone": "0712345679", "amount": 51})
    sandbox.faults.append({"path": PATH_STK_PUSH, "count": 1, "status": 500,
                           "errorCode": "500.003.02", "errorMessage": "System is busy"})
    await run.call("POST", "/api/payments/stkpush", headers=auth,
                   json={"meter_no": "MITA0001", "phone": "0712345670", "amount": 52})
    rotated = json.loads(rotated)
    return [user["api_key"], meter["device_key"], meter["mqtt_password"],
            rotated["device_key"], rotated["mqtt_password"]] + _gateway_secrets(sandbox)


def _gateway_secrets(sandbox):
    passwords = [r["body"]["Password"] for r in sandbox.requests
                 if isinstance(r["body"], dict) and "Password" in r["body"]]
    basic = base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()
    assert passwords and sandbox.tokens
    return passwords + [basic] + list(sandbox.tokens)


async def test_no_secret_reaches_a_log_line_or_an_error_body(service, caplog):
    app, session = service
    caplog.set_level(logging.DEBUG)
    run = Run(session)
    secrets = [CONSUMER_SECRET, PASSKEY, SECRET, OPERATOR_KEY] + await _whole_run(app, run)
    logged = [(r.name, r.getMessage() + " " + repr(vars(r))
               + (logging.Formatter().formatException(r.exc_info) if r.exc_info else ""))
              for r in caplog.records]
    assert len(logged) > 20 and len(run.bodies) > 10  # the run did log and answer
    for secret in secrets:
        assert len(secret) >= 16
        leaks = [name for name, text in logged if secret in text]
        leaks += [what for what, text in run.bodies if secret in text]
        assert not leaks, (secret[:6] + "...", leaks)
