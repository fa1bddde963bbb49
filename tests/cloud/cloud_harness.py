"""Shared wiring for the cloud API tests: a real SQLite store on a tmp file, the Daraja
stand-in in-process, and helpers to register customers and meters and send callbacks."""

import asyncio
import json

import pytest
from aiohttp import web

from cloud.app import create_app
from cloud.auth import signed_headers
from cloud.config import Config
from standins.daraja import SANDBOX
from cloud.keys import DARAJA, EMBEDDED_SANDBOX, PAYMENTS, STORE

OPERATOR_KEY = "op-test-key-0123456789"
SECRET = "test-callback-secret-0123"
PHONE = "254712345678"


def make_config(tmp_path, **changes):
    config = Config(sqlite_path=str(tmp_path / "mita.sqlite3"), callback_secret=SECRET,
                    operator_key=OPERATOR_KEY, settle_after_s=30, settle_every_s=3600,
                    settle_give_up_s=600, max_amount_kes=70_000)
    for name, value in changes.items():
        setattr(config, name, value)
    return config


class Harness:
    """The client plus shortcuts; `app` gives the store, payments and the stand-in."""

    def __init__(self, client):
        self.client = client
        self.app = client.server.app
        self.store = self.app[STORE]
        self.payments = self.app[PAYMENTS]
        self.daraja = self.app[DARAJA]
        self.daraja.callback_url = str(client.make_url(f"/daraja/callback/{SECRET}"))

    @property
    def sandbox(self):
        return self.app[EMBEDDED_SANDBOX][SANDBOX]

    def op(self):
        return {"Authorization": f"Bearer {OPERATOR_KEY}"}

    async def create_customer(self, name="Amina"):
        resp = await self.client.post("/api/users", json={"name": name}, headers=self.op())
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        return body["user_id"], {"Authorization": f"Bearer {body['api_key']}"}

    async def register_meter(self, user_id, meter_no="MTR-0001"):
        resp = await self.client.post("/api/meters", json={"meter_no": meter_no,
                                                           "user_id": user_id},
                                      headers=self.op())
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        return body["meter_no"], body["device_key"]

    async def customer_with_meter(self, meter_no="MTR-0001"):
        user_id, auth = await self.create_customer()
        meter_no, device_key = await self.register_meter(user_id, meter_no)
        return user_id, auth, meter_no, device_key

    async def stk_push(self, auth, meter_no, amount=100, phone="0712345678"):
        resp = await self.client.post("/api/payments/stkpush", headers=auth,
                                      json={"meter_no": meter_no, "phone": phone,
                                            "amount": amount})
        return resp

    async def post_callback(self, body, path=None):
        path = path or f"/daraja/callback/{SECRET}"
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return await self.client.post(path, data=data,
                                      headers={"Content-Type": "application/json"})

    async def signed_post(self, meter_no, device_key, path, body, **kw):
        raw = json.dumps(body).encode()
        headers = signed_headers(meter_no, device_key, "POST", path, raw, **kw)
        headers["Content-Type"] = "application/json"
        return await self.client.post(path, data=raw, headers=headers)

    async def sandbox_settings(self, **settings):
        self.sandbox.update_settings(settings)

    async def snapshot(self, meter_no):
        """Everything a payment could change for one meter."""
        return {"meter": await self.store.get_meter(meter_no),
                "transactions": await self.store.list_transactions_for_meter(meter_no, 500),
                "recharges": await self.store.list_recharges(meter_no)}


def stk_success(checkout, receipt, amount=100.0, phone=254712345678):
    return {"Body": {"stkCallback": {
        "MerchantRequestID": "29115-34620561-1", "CheckoutRequestID": checkout,
        "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": amount},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": 20191219102115},
            {"Name": "PhoneNumber", "Value": phone}]}}}}


def stk_failure(checkout, code=1032, desc="Request cancelled by user"):
    return {"Body": {"stkCallback": {"MerchantRequestID": "1-2-3", "CheckoutRequestID": checkout,
                                     "ResultCode": code, "ResultDesc": desc}}}


def c2b_body(trans_id, bill_ref, amount="100.00"):
    return {"TransactionType": "Pay Bill", "TransID": trans_id, "TransTime": "20191122063845",
            "TransAmount": amount, "BusinessShortCode": "600638", "BillRefNumber": bill_ref,
            "InvoiceNumber": "", "OrgAccountBalance": "49197.00", "ThirdPartyTransID": "",
            "MSISDN": "2547 ***** 126", "FirstName": "John", "MiddleName": "", "LastName": ""}


async def eventually(check, timeout_s=3.0):
    """Poll an async condition in a few-ms steps (for callbacks the stand-in sends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.005)


async def pending_push(h, amount=100):
    """A customer, a meter and one pending STK push: (meter_no, checkout id, auth)."""
    user_id, auth, meter_no, key = await h.customer_with_meter()
    # "none": the customer pays but no callback comes unless the test sends one
    await h.sandbox_settings(default_outcome="none", callback_delay_s=0)
    resp = await h.stk_push(auth, meter_no, amount)
    assert resp.status == 201, await resp.text()
    return meter_no, (await resp.json())["checkout_request_id"], auth


async def sandbox_settled(h, checkout):
    record = h.sandbox.stk.get(checkout)
    return record is not None and record["status"] == "settled"


class CallbackReceiver:
    """Stands where the cloud's callback URLs point: records every call Daraja (or the
    stand-in) makes, raw text included, and answers with reply(path)."""

    def __init__(self):
        self.calls = []
        self.arrived = asyncio.Queue()

    def reply(self, path):
        return 200, {"ResultCode": 0, "ResultDesc": "Accepted"}

    async def handle(self, request):
        text = await request.text()
        call = {"path": request.path, "query": dict(request.query), "text": text,
                "json": json.loads(text)}
        self.calls.append(call)
        await self.arrived.put(call)
        status, body = self.reply(request.path)
        return web.json_response(body, status=status)

    async def next(self):
        return await asyncio.wait_for(self.arrived.get(), 5)


async def serve_receiver(aiohttp_server, receiver):
    """Serve the receiver on every POST path; gives it url(path)."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    server = await aiohttp_server(app)
    receiver.url = lambda path: str(server.make_url(path))
    return receiver


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path)


@pytest.fixture
async def harness(aiohttp_client, config):
    client = await aiohttp_client(create_app(config, settle=False))
    return Harness(client)
