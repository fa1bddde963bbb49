"""The local Daraja stand-in speaks Safaricom's exact shapes and does what its controls say."""

import asyncio
import base64
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud.daraja import SANDBOX_PASSKEY, eat_timestamp, stk_password
from standins.daraja import SANDBOX, main, make_app
from tests.cloud.cloud_harness import CallbackReceiver, serve_receiver

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASIC = "Basic " + base64.b64encode(b"embedded-key:embedded-secret").decode()
PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"


class Receiver(CallbackReceiver):
    """Collects the stand-in's callbacks; replies can be scripted per path."""

    def __init__(self):
        super().__init__()
        self.replies = {}

    def reply(self, path):
        return self.replies.get(path, (200, {"ResultCode": 0}))


@pytest.fixture
async def receiver(aiohttp_server):
    return await serve_receiver(aiohttp_server, Receiver())


@pytest.fixture
async def gateway(receiver, aiohttp_client):
    """A stand-in and a test client to it: `await gateway(**settings)`.

    Depends on `receiver` so the stand-in (and its callback tasks) stops before the receiver.
    """

    async def start(**settings):
        settings.setdefault("callback_delay_s", 0)
        client = await aiohttp_client(make_app(settings))
        client.sandbox = client.app[SANDBOX]
        return client

    return start


async def token_for(client):
    response = await client.get("/oauth/v1/generate?grant_type=client_credentials",
                                headers={"Authorization": BASIC})
    assert response.status == 200
    return (await response.json())["access_token"]


def stk_body(callback_url, **changes):
    ts = eat_timestamp()
    body = {"BusinessShortCode": "174379", "Password": stk_password("174379", SANDBOX_PASSKEY, ts),
            "Timestamp": ts, "TransactionType": "CustomerPayBillOnline", "Amount": 10,
            "PartyA": "254708374149", "PartyB": "174379", "PhoneNumber": "254708374149",
            "CallBackURL": callback_url, "AccountReference": "MTR1", "TransactionDesc": "Power"}
    body.update(changes)
    return body


async def post(client, path, body, token=None):
    headers = {"Authorization": "Bearer " + (token or await token_for(client))}
    if isinstance(body, (bytes, str)):
        response = await client.post(path, data=body, headers=headers)
    else:
        response = await client.post(path, json=body, headers=headers)
    return response.status, await response.json()


# -- OAuth -----------------------------------------------------------------------------------

async def test_oauth_gives_a_token_with_expires_in_as_a_string(gateway):
    client = await gateway(token_ttl_s=3599)
    response = await client.get("/oauth/v1/generate?grant_type=client_credentials",
                                headers={"Authorization": BASIC})
    body = await response.json()
    assert response.status == 200 and body["expires_in"] == "3599"
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 20


@pytest.mark.parametrize("header, query, code", [
    ("Basic " + base64.b64encode(b"embedded-key:nope").decode(), "client_credentials",
     "400.008.01"),
    ("Basic !!!not-base64!!!", "client_credentials", "400.008.01"),
    ("", "client_credentials", "400.008.01"),
    (BASIC, "password", "400.008.02"),
])
async def test_oauth_refuses_bad_credentials_and_grant_types(gateway, header, query, code):
    client = await gateway()
    response = await client.get("/oauth/v1/generate?grant_type=" + query,
                                headers={"Authorization": header} if header else {})
    body = await response.json()
    assert response.status == 400
    assert set(body) == {"requestId", "errorCode", "errorMessage"} and body["errorCode"] == code


async def test_expired_token_gets_invalid_access_token(gateway, receiver):
    now = [time.time()]
    client = await gateway(token_ttl_s=60, clock=lambda: now[0])
    token = await token_for(client)
    assert (await post(client, PUSH, stk_body(receiver.url("/cb")), token))[0] == 200
    now[0] += 61
    ts = eat_timestamp(now[0])
    body = stk_body(receiver.url("/cb"), Timestamp=ts,
                    Password=stk_password("174379", SANDBOX_PASSKEY, ts))
    status, reply = await post(client, PUSH, body, token)
    assert status == 404
    assert reply["errorCode"] == "404.001.03" and reply["errorMessage"] == "Invalid Access Token"


async def test_unknown_and_missing_tokens_are_refused(gateway, receiver):
    client = await gateway()
    assert (await post(client, PUSH, stk_body(receiver.url("/cb")), "made-up"))[0] == 404
    response = await client.post(PUSH, json=stk_body(receiver.url("/cb")))
    assert response.status == 404
    assert client.sandbox.stk == {}


# -- STK push validation ---------------------------------------------------------------------

def _utc_timestamp():
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")


def _stale_timestamp():
    return (datetime.now(timezone(timedelta(hours=3))) - timedelta(minutes=30)).strftime(
        "%Y%m%d%H%M%S")


@pytest.mark.parametrize("changes, message", [
    ({"BusinessShortCode": "600000"}, "Invalid BusinessShortCode"),
    ({"Password": base64.b64encode(b"174379wrong").decode()}, "Invalid Password"),
    ({"Timestamp": "20191319102115"}, "Invalid Timestamp"),
    ({"Timestamp": "garbage"}, "Invalid Timestamp"),
    ({"Amount": 0}, "Invalid Amount"),
    ({"Amount": 250_001}, "Invalid Amount"),
    ({"Amount": 1.5}, "Invalid Amount"),
    ({"Amount": "ten"}, "Invalid Amount"),
    ({"Amount": True}, "Invalid Amount"),
    ({"PhoneNumber": "0708374149"}, "Invalid PhoneNumber"),
    ({"PartyA": "25470837414"}, "Invalid PartyA"),
    ({"TransactionType": "CustomerPayBill"}, "Invalid TransactionType"),
    ({"CallBackURL": "not a url"}, "Invalid CallBackURL"),
    ({"AccountReference": "THIRTEEN_CHRS"}, "Invalid AccountReference"),
    ({"AccountReference": ""}, "Invalid AccountReference"),
    ({"TransactionDesc": "fourteen chars"}, "Invalid TransactionDesc"),
])
async def test_stk_push_rejects_bad_fields_with_400_002_02(gateway, receiver, changes, message):
    client = await gateway()
    status, reply = await post(client, PUSH, stk_body(receiver.url("/cb"), **changes))
    assert status == 400
    assert reply["errorCode"] == "400.002.02" and message in reply["errorMessage"]
    assert client.sandbox.stk == {}


@pytest.mark.parametrize("make_timestamp", [_utc_timestamp, _stale_timestamp])
async def test_utc_or_stale_timestamp_is_invalid_even_with_a_matching_password(
        gateway, receiver, make_timestamp):
    client = await gateway()
    ts = make_timestamp()
    body = stk_body(receiver.url("/cb"), Timestamp=ts,
                    Password=stk_password("174379", SANDBOX_PASSKEY, ts))
    status, reply = await post(client, PUSH, body)
    assert status == 400 and reply["errorMessage"] == "Bad Request - Invalid Timestamp"


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", b"[1, 2]", b"", b"{\"Amount\": "])
async def test_garbage_bodies_get_a_clear_400_not_a_crash(gateway, raw):
    client = await gateway()
    status, reply = await post(client, PUSH, raw)
    assert status == 400 and reply["errorCode"] == "400.002.02"


async def test_accepted_reply_has_the_documented_shape(gateway, receiver):
    client = await gateway()
    status, reply = await post(client, PUSH, stk_body(receiver.url("/cb"), Amount="10"))
    assert status == 200
    assert set(reply) == {"MerchantRequestID", "CheckoutRequestID", "ResponseCode",
                          "ResponseDescription", "CustomerMessage"}
    assert reply["ResponseCode"] == "0"
    assert re.fullmatch(r"\d{5}-\d{8}-1", reply["MerchantRequestID"])
    assert re.fullmatch(r"ws_CO_\d{20}", reply["CheckoutRequestID"])


# -- STK callbacks ---------------------------------------------------------------------------

async def test_success_callback_has_exact_metadata_shapes(gateway, receiver):
    client = await gateway()
    _, reply = await post(client, PUSH, stk_body(receiver.url("/daraja/callback/x"), Amount=10))
    call = await receiver.next()
    assert call["path"] == "/daraja/callback/x"
    assert '{"Name": "Amount", "Value": 10.00}' in call["text"]
    assert '{"Name": "Balance"}' in call["text"]
    callback = call["json"]["Body"]["stkCallback"]
    assert callback["ResultCode"] == 0 and callback["CheckoutRequestID"] == \
        reply["CheckoutRequestID"]
    items = callback["CallbackMetadata"]["Item"]
    assert [i["Name"] for i in items] == ["Amount", "MpesaReceiptNumber", "Balance",
                                          "TransactionDate", "PhoneNumber"]
    values = {i["Name"]: i.get("Value") for i in items}
    assert isinstance(values["TransactionDate"], int) and len(str(values["TransactionDate"])) == 14
    assert values["PhoneNumber"] == 254708374149
    assert re.fullmatch(r"[A-Z][A-Z0-9]{9}", values["MpesaReceiptNumber"])


async def test_shuffled_items_come_in_varying_order_with_the_same_content(gateway, receiver):
    client = await gateway(shuffle_items=True, seed=7)
    token = await token_for(client)
    for _ in range(8):
        await post(client, PUSH, stk_body(receiver.url("/cb")), token)
    orders = set()
    for _ in range(8):
        items = (await receiver.next())["json"]["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
        orders.add(tuple(i["Name"] for i in items))
    assert len(orders) > 1
    assert all(sorted(order) == sorted(next(iter(orders))) for order in orders)


@pytest.mark.parametrize("outcome, code", [("insufficient", 1), ("cancelled", 1032),
                                           ("unreachable", 1037), ("wrong_pin", 2001),
                                           (1032, 1032), ("2001", 2001)])
async def test_failure_outcomes_call_back_without_metadata(gateway, receiver, outcome, code):
    client = await gateway()
    response = await client.post("/sandbox/outcome", json={"phone": "0708 374 149",
                                                           "outcome": outcome})
    assert response.status == 200
    await post(client, PUSH, stk_body(receiver.url("/cb")))
    callback = (await receiver.next())["json"]["Body"]["stkCallback"]
    assert callback["ResultCode"] == code and callback["ResultDesc"]
    assert "CallbackMetadata" not in callback


async def test_outcome_rules_match_phone_or_amount_newest_first_and_once(gateway, receiver):
    client = await gateway(default_outcome="cancelled")
    for rule in ({"amount": 77, "outcome": "wrong_pin"},
                 {"phone": "0711111111", "outcome": "success", "once": True},
                 {"phone": "0711111111", "amount": 77, "outcome": "unreachable"}):
        assert (await client.post("/sandbox/outcome", json=rule)).status == 200
    token = await token_for(client)
    cases = [("254708374149", 77, 2001), ("254711111111", 77, 1037),
             ("254711111111", 10, 0), ("254711111111", 10, 1032), ("254708374149", 10, 1032)]
    for phone, amount, _ in cases:
        await post(client, PUSH, stk_body(receiver.url("/cb"), PhoneNumber=phone, PartyA=phone,
                                          Amount=amount), token)
        await receiver.next()  # one at a time keeps callbacks in push order
    codes = [c["json"]["Body"]["stkCallback"]["ResultCode"] for c in receiver.calls]
    assert codes == [expected for _, _, expected in cases]


async def test_bad_outcome_rule_is_refused(gateway):
    client = await gateway()
    for rule in ({"outcome": "maybe"}, {"outcome": "success", "phone": "12"}, [1]):
        assert (await client.post("/sandbox/outcome", json=rule)).status == 400
    assert client.sandbox.rules == []


async def test_outcome_none_never_calls_back_but_query_tells(gateway, receiver):
    client = await gateway(default_outcome="none")
    token = await token_for(client)
    _, reply = await post(client, PUSH, stk_body(receiver.url("/cb")), token)
    checkout = reply["CheckoutRequestID"]
    ts = eat_timestamp()
    query = {"BusinessShortCode": "174379", "Timestamp": ts, "CheckoutRequestID": checkout,
             "Password": stk_password("174379", SANDBOX_PASSKEY, ts)}
    for _ in range(100):  # the zero-delay settle task runs between these polls
        status, result = await post(client, QUERY, query, token)
        if status == 200:
            break
    assert result["ResultCode"] == "0" and isinstance(result["ResultCode"], str)
    assert receiver.calls == [] and client.sandbox.callbacks == []


async def test_same_callback_delivered_n_times_and_replayed(gateway, receiver):
    client = await gateway(deliver_times=3)
    _, reply = await post(client, PUSH, stk_body(receiver.url("/cb")))
    texts = [(await receiver.next())["text"] for _ in range(3)]
    assert len(set(texts)) == 1
    response = await client.post("/sandbox/replay",
                                 json={"CheckoutRequestID": reply["CheckoutRequestID"]})
    assert response.status == 200
    assert (await receiver.next())["text"] == texts[0]
    assert (await client.post("/sandbox/replay", json={"CheckoutRequestID": "nope"})).status == 400


async def test_query_is_pending_with_500_until_settled_then_string_result(gateway, receiver):
    client = await gateway()
    await client.post("/sandbox/outcome", json={"outcome": "unreachable", "hold": True})
    token = await token_for(client)
    _, reply = await post(client, PUSH, stk_body(receiver.url("/cb")), token)
    ts = eat_timestamp()
    query = {"BusinessShortCode": "174379", "Timestamp": ts,
             "Password": stk_password("174379", SANDBOX_PASSKEY, ts),
             "CheckoutRequestID": reply["CheckoutRequestID"]}
    status, pending = await post(client, QUERY, query, token)
    assert status == 500
    assert pending["errorCode"] == "500.001.1001"
    assert pending["errorMessage"] == "The transaction is being processed"
    settled = await client.post("/sandbox/settle",
                                json={"CheckoutRequestID": reply["CheckoutRequestID"]})
    assert [d["status"] for d in (await settled.json())["deliveries"]] == [200]
    status, result = await post(client, QUERY, query, token)
    assert status == 200 and result["ResultCode"] == "1037"
    assert result["ResultDesc"] == "DS timeout user cannot be reached"
    assert (await client.post("/sandbox/settle", json={
        "CheckoutRequestID": reply["CheckoutRequestID"]})).status == 400  # only once


async def test_unreachable_callback_url_is_logged_not_fatal(gateway):
    client = await gateway()
    await post(client, PUSH, stk_body("http://127.0.0.1:9/cb"))
    for _ in range(200):
        if client.sandbox.callbacks and client.sandbox.callbacks[0]["error"]:
            break
        await asyncio.sleep(0.005)
    assert "Error" in client.sandbox.callbacks[0]["error"]


# -- C2B -----------------------------------------------------------------------------------

async def register(client, receiver, version="v2", response_type="Completed", shortcode="600999"):
    return await post(client, "/mpesa/c2b/%s/registerurl" % version, {
        "ShortCode": shortcode, "ResponseType": response_type,
        "ConfirmationURL": receiver.url("/c2b/confirmation"),
        "ValidationURL": receiver.url("/c2b/validation")})


async def simulate(client, amount=10, msisdn="254712345126", bill_ref="METER_12345678"):
    return await post(client, "/mpesa/c2b/v1/simulate", {
        "ShortCode": "600999", "CommandID": "CustomerPayBillOnline", "Amount": amount,
        "Msisdn": msisdn, "BillRefNumber": bill_ref})


@pytest.mark.parametrize("version, msisdn", [("v2", "2547 ***** 126"), ("v1", "254712345126")])
async def test_c2b_confirmation_body_shape(gateway, receiver, version, msisdn):
    client = await gateway()
    status, reply = await register(client, receiver, version)
    assert status == 200 and reply["ResponseCode"] == "0"
    status, reply = await simulate(client, 10, bill_ref="  mtr 1234-56 ")
    assert status == 200 and reply["ResponseCode"] == "0"
    call = await receiver.next()
    assert call["path"] == "/c2b/confirmation"
    body = call["json"]
    assert set(body) == {"TransactionType", "TransID", "TransTime", "TransAmount",
                         "BusinessShortCode", "BillRefNumber", "InvoiceNumber",
                         "OrgAccountBalance", "ThirdPartyTransID", "MSISDN", "FirstName",
                         "MiddleName", "LastName"}
    assert body["TransactionType"] == "Pay Bill" and body["TransAmount"] == "10.00"
    assert body["BillRefNumber"] == "  mtr 1234-56 " and body["MSISDN"] == msisdn
    assert re.fullmatch(r"\d{14}", body["TransTime"])
    assert re.fullmatch(r"\d+\.\d\d", body["OrgAccountBalance"])


async def test_validation_rejection_stops_the_confirmation(gateway, receiver):
    client = await gateway(external_validation=True)
    receiver.replies["/c2b/validation"] = (200, {"ResultCode": "C2B00012",
                                                 "ResultDesc": "Rejected"})
    await register(client, receiver)
    await simulate(client)
    assert (await receiver.next())["path"] == "/c2b/validation"
    for _ in range(200):
        if client.sandbox.c2b[0]["validation"]:
            break
        await asyncio.sleep(0.005)
    assert client.sandbox.c2b[0]["validation"] == "rejected:C2B00012"
    assert [c["path"] for c in receiver.calls] == ["/c2b/validation"]


@pytest.mark.parametrize("response_type, confirmed", [("Completed", True), ("Cancelled", False)])
async def test_failing_validation_url_follows_response_type(gateway, receiver, response_type,
                                                            confirmed):
    client = await gateway(external_validation=True)
    receiver.replies["/c2b/validation"] = (500, {"oops": True})
    await register(client, receiver, response_type=response_type)
    await simulate(client)
    assert (await receiver.next())["path"] == "/c2b/validation"
    if confirmed:
        assert (await receiver.next())["path"] == "/c2b/confirmation"
    else:
        for _ in range(200):
            if client.sandbox.c2b[0]["validation"]:
                break
            await asyncio.sleep(0.005)
        assert client.sandbox.c2b[0]["validation"] == "cancelled"
        assert len(receiver.calls) == 1


@pytest.mark.parametrize("changes, message", [
    ({"ShortCode": "111111"}, "No URLs registered"), ({"Amount": 0}, "Invalid Amount"),
    ({"Msisdn": "0712345678"}, "Invalid Msisdn"), ({"CommandID": "Pay"}, "Invalid CommandID")])
async def test_c2b_simulate_rejects_bad_requests(gateway, receiver, changes, message):
    client = await gateway()
    await register(client, receiver)
    body = dict({"ShortCode": "600999", "CommandID": "CustomerPayBillOnline", "Amount": 10,
                 "Msisdn": "254712345126", "BillRefNumber": "M1"}, **changes)
    status, reply = await post(client, "/mpesa/c2b/v1/simulate", body)
    assert status == 400 and message in reply["errorMessage"]
    assert client.sandbox.c2b == []


async def test_c2b_register_rejects_unknown_shortcode_and_response_type(gateway, receiver):
    client = await gateway()
    assert (await register(client, receiver, shortcode="999999"))[0] == 400
    assert (await register(client, receiver, response_type="Later"))[0] == 400
    assert client.sandbox.c2b_urls == {}


# -- controls, faults, lifecycle, CLI --------------------------------------------------------

async def test_faults_fail_the_next_requests_then_clear(gateway, receiver):
    client = await gateway()
    response = await client.post("/sandbox/faults", json={"path": PUSH, "count": 2,
                                                          "status": 503})
    assert response.status == 200
    token = await token_for(client)
    statuses = [(await post(client, PUSH, stk_body(receiver.url("/cb")), token))[0]
                for _ in range(3)]
    assert statuses == [503, 503, 200]
    listed = await (await client.get("/sandbox/requests?path=" + PUSH)).json()
    assert [r["status"] for r in listed["requests"]] == statuses
    assert len(listed["stk"]) == 1


async def test_settings_change_behaviour_and_refuse_unknown_keys(gateway, receiver):
    client = await gateway()
    response = await client.post("/sandbox/settings", json={"default_outcome": "cancelled"})
    assert response.status == 200
    await post(client, PUSH, stk_body(receiver.url("/cb")))
    assert (await receiver.next())["json"]["Body"]["stkCallback"]["ResultCode"] == 1032
    for bad in ({"passkey": "x"}, {"default_outcome": "bogus"}, {"shuffle_items": "yes"}):
        assert (await client.post("/sandbox/settings", json=bad)).status == 400


async def test_shutdown_cancels_pending_callbacks_cleanly(receiver):
    app = make_app({"callback_delay_s": 60})
    client = TestClient(TestServer(app))
    await client.start_server()
    await post(client, PUSH, stk_body(receiver.url("/cb")))
    sandbox = app[SANDBOX]
    assert len(sandbox._tasks) == 1
    task = next(iter(sandbox._tasks))
    await client.close()
    assert task.cancelled() and sandbox._tasks == set()
    assert sandbox.session.closed and receiver.calls == []


def test_cli_refuses_an_unknown_outcome():
    with pytest.raises(SystemExit):
        main(["--outcome", "bogus"])


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_runs_as_a_module_with_a_port():
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "standins.daraja", "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        request = urllib.request.Request(
            "http://127.0.0.1:%d/oauth/v1/generate?grant_type=client_credentials" % port,
            headers={"Authorization": BASIC})
        for _ in range(200):
            try:
                with urllib.request.urlopen(request, timeout=1) as response:
                    body = json.loads(response.read())
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(process.stderr.read().decode())
                time.sleep(0.02)
        assert body["expires_in"] == "3599"
    finally:
        process.terminate()
        process.wait(timeout=5)


_ODD_VALUES = [None, "", 0, -1, 1.5, float("nan"), float("inf"), 10**30, True, [], {}, "x" * 300,
               "\u0000", "254712345678", "\u0662\u0665\u0664", "20191219102115", "http://a/b"]


async def test_fuzzed_stk_bodies_get_200_or_a_gateway_400_never_a_crash(gateway, receiver):
    client = await gateway(callback_delay_s=60)  # keep the fuzz from calling back
    token = await token_for(client)
    rng = random.Random(1234)
    statuses = []
    for _ in range(150):
        body = stk_body(receiver.url("/cb"))
        for name in rng.sample(sorted(body), rng.randint(1, 3)):
            if rng.random() < 0.2:
                del body[name]
            else:
                body[name] = rng.choice(_ODD_VALUES)
        status, reply = await post(client, PUSH, json.dumps(body), token)
        statuses.append(status)
        if status != 200:
            assert status == 400 and reply["errorCode"] == "400.002.02", reply
            assert set(reply) == {"requestId", "errorCode", "errorMessage"}
    assert statuses.count(400) > 100
    assert len(client.sandbox.stk) == statuses.count(200)


async def test_revoke_reset_and_clearing_rules_over_http(gateway, receiver):
    client = await gateway()
    token = await token_for(client)
    assert (await client.post("/sandbox/tokens/revoke")).status == 200
    assert (await post(client, PUSH, stk_body(receiver.url("/cb")), token))[0] == 404
    await client.post("/sandbox/outcome", json={"outcome": "cancelled"})
    assert (await client.delete("/sandbox/outcome")).status == 200
    assert client.sandbox.rules == []
    await post(client, PUSH, stk_body(receiver.url("/cb")))
    assert (await receiver.next())["json"]["Body"]["stkCallback"]["ResultCode"] == 0
    assert (await client.post("/sandbox/reset")).status == 200
    listed = await (await client.get("/sandbox/requests")).json()
    assert listed["requests"] == [] and listed["stk"] == [] and listed["callbacks"] == []
