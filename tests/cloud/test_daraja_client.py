"""The Daraja client against the local stand-in, both in-process: no real network."""

import asyncio
import base64
import re
import time
from datetime import datetime, timezone

import aiohttp
import pytest
from aiohttp import web

from cloud.daraja import (PATH_C2B_REGISTER, PATH_C2B_SIMULATE, PATH_OAUTH, PATH_STK_PUSH,
                          PATH_STK_QUERY, PRODUCTION_BASE_URL, SANDBOX_PASSKEY, DarajaAuthError,
                          DarajaClient, DarajaError, DarajaPending, DarajaRejected,
                          DarajaTimeout)
from standins.daraja import SANDBOX, make_app
from cloud.phone import InvalidPhone
from tests.cloud.cloud_harness import CallbackReceiver, serve_receiver

KEY, SECRET = "test-key", "test-secret"


class FakeClock:
    """Unix seconds that only move when a test says so; shared by client and stand-in."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


class Receiver(CallbackReceiver):
    """Plays the cloud service; its C2B validation answer can be changed."""

    def __init__(self):
        super().__init__()
        self.validation_reply = {"ResultCode": "0", "ResultDesc": "Accepted"}

    def reply(self, path):
        if path.endswith("/validation"):
            return 200, self.validation_reply
        return super().reply(path)


@pytest.fixture
async def receiver(aiohttp_server):
    return await serve_receiver(aiohttp_server, Receiver())


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def gateway(aiohttp_server, clock, receiver):
    """Start a stand-in; returns (base_url, its Sandbox state). Stops before `receiver`."""

    async def start(**settings):
        config = dict(consumer_key=KEY, consumer_secret=SECRET, callback_delay_s=0,
                      clock=clock)
        config.update(settings)
        app = make_app(config)
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/"), app[SANDBOX]

    return start


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client_for(session, receiver, clock):
    sleeps = []

    async def fake_sleep(seconds):
        sleeps.append(seconds)

    def build(base_url, cls=DarajaClient, **options):
        settings = dict(consumer_key=KEY, consumer_secret=SECRET, shortcode="174379",
                        passkey=SANDBOX_PASSKEY,
                        callback_url=receiver.url("/daraja/callback/s3cr3t?k=v"),
                        clock=clock, sleep=fake_sleep)
        settings.update(options)
        client = cls(session, base_url, **settings)
        client.sleeps = sleeps
        return client

    return build


def paths(sandbox, path):
    return [r for r in sandbox.requests if r["path"] == path]


# -- token --------------------------------------------------------------------------------

async def test_token_is_fetched_once_and_cached(gateway, client_for):
    base, sandbox = await gateway()
    client = client_for(base)
    first = await client.token()
    assert await client.token() == first
    assert len(paths(sandbox, PATH_OAUTH)) == 1


async def test_concurrent_callers_share_one_token_fetch(gateway, client_for):
    base, sandbox = await gateway()
    client = client_for(base)
    tokens = await asyncio.gather(*(client.token() for _ in range(10)))
    assert len(set(tokens)) == 1
    assert len(paths(sandbox, PATH_OAUTH)) == 1


async def test_token_is_renewed_a_margin_before_expires_in(gateway, client_for, clock):
    base, sandbox = await gateway(token_ttl_s=3599)
    client = client_for(base)
    first = await client.token()
    clock.now += 3599 - 60 - 1  # still inside the renewal margin
    assert await client.token() == first
    clock.now += 2
    second = await client.token()
    assert second != first
    assert len(paths(sandbox, PATH_OAUTH)) == 2


async def test_short_lived_token_keeps_half_its_life_as_margin(gateway, client_for, clock):
    base, sandbox = await gateway(token_ttl_s=10)
    client = client_for(base)
    first = await client.token()
    clock.now += 4.9
    assert await client.token() == first
    clock.now += 0.2
    assert await client.token() != first


@pytest.mark.parametrize("staleness", ["revoked", "expired at the gateway"])
async def test_invalid_token_reply_renews_once_and_retries(gateway, client_for, clock,
                                                           staleness):
    base, sandbox = await gateway(token_ttl_s=600)
    client = client_for(base)
    await client.token()
    if staleness == "revoked":
        sandbox.tokens.clear()
    else:  # the gateway ended the token early, as a skewed clock would
        sandbox.tokens = {token: clock.now - 1 for token in sandbox.tokens}
    reply = await client.stk_push("0712345678", 10, "MTR1", "Power")
    assert reply["ResponseCode"] == "0"
    pushes = paths(sandbox, PATH_STK_PUSH)
    assert [p["status"] for p in pushes] == [404, 200]
    assert len(paths(sandbox, PATH_OAUTH)) == 2
    assert len(sandbox.stk) == 1  # one prompt reached the phone


async def test_persistent_invalid_token_raises_auth_error_after_one_renewal(gateway, client_for):
    base, sandbox = await gateway()
    sandbox.faults.append({"path": PATH_STK_PUSH, "count": 5, "status": 401,
                           "errorCode": "404.001.03", "errorMessage": "Invalid Access Token"})
    client = client_for(base)
    with pytest.raises(DarajaAuthError) as raised:
        await client.stk_push("0712345678", 10, "MTR1", "Power")
    assert raised.value.code == "404.001.03"
    assert len(paths(sandbox, PATH_STK_PUSH)) == 2
    assert len(paths(sandbox, PATH_OAUTH)) == 2


async def test_wrong_consumer_secret_is_an_auth_error_and_nothing_is_sent(gateway, client_for):
    base, sandbox = await gateway()
    client = client_for(base, consumer_secret="wrong")
    with pytest.raises(DarajaAuthError) as raised:
        await client.stk_push("0712345678", 10, "MTR1", "Power")
    assert raised.value.status == 400
    assert "Invalid Authentication" in str(raised.value)
    assert paths(sandbox, PATH_STK_PUSH) == []


async def test_oauth_reply_with_garbage_expires_in_is_an_auth_error(aiohttp_server, client_for):
    async def oauth(request):
        return web.json_response({"access_token": "abc", "expires_in": "soon"})

    app = web.Application()
    app.router.add_get(PATH_OAUTH, oauth)
    server = await aiohttp_server(app)
    client = client_for(str(server.make_url("")).rstrip("/"))
    with pytest.raises(DarajaAuthError, match="expires_in"):
        await client.token()


# -- timestamp and password ------------------------------------------------------------

def test_timestamp_is_east_africa_time(client_for):
    client = client_for("http://unused")
    utc_moment = datetime(2019, 12, 19, 7, 21, 15, tzinfo=timezone.utc)
    assert client.timestamp(utc_moment) == "20191219102115"
    assert client.timestamp(utc_moment.timestamp()) == "20191219102115"
    # Across midnight and a year end: 22:30 UTC on 31 Dec is already New Year in Nairobi.
    new_year = datetime(2023, 12, 31, 22, 30, 0, tzinfo=timezone.utc)
    assert client.timestamp(new_year) == "20240101013000"
    with pytest.raises(ValueError):
        client.timestamp(datetime(2019, 12, 19, 10, 21, 15))  # naive: ambiguous


def test_password_is_base64_of_shortcode_passkey_timestamp(client_for):
    client = client_for("http://unused")
    expected = base64.b64encode(("174379" + SANDBOX_PASSKEY + "20191219102115").encode())
    assert client.password("20191219102115") == expected.decode()


class UtcClient(DarajaClient):
    """The most reported Daraja bug: a timestamp in UTC instead of Nairobi time."""

    def timestamp(self, now=None):
        return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")


async def test_client_sending_utc_gets_invalid_timestamp(aiohttp_server, client_for):
    app = make_app({"consumer_key": KEY, "consumer_secret": SECRET, "callback_delay_s": 0})
    server = await aiohttp_server(app)
    client = client_for(str(server.make_url("")).rstrip("/"), cls=UtcClient, clock=None)
    with pytest.raises(DarajaRejected) as raised:
        await client.stk_push("0712345678", 10, "MTR1", "Power")
    assert raised.value.code == "400.002.02"
    assert raised.value.status == 400
    assert "Invalid Timestamp" in str(raised.value)
    assert app[SANDBOX].stk == {}


# -- STK push ------------------------------------------------------------------------------

async def test_stk_push_success_flow_delivers_callback_to_the_secret_url(gateway, client_for,
                                                                        receiver):
    base, sandbox = await gateway()
    client = client_for(base)
    reply = await client.stk_push("+254 712-345-678", 10, "METER_12345678", "Electricity top-up")
    assert reply["ResponseCode"] == "0"
    assert reply["CheckoutRequestID"].startswith("ws_CO_")
    sent = paths(sandbox, PATH_STK_PUSH)[0]["body"]
    assert sent["PhoneNumber"] == sent["PartyA"] == "254712345678"
    assert sent["AccountReference"] == "METER_123456"  # 12 chars
    assert sent["TransactionDesc"] == "Electricity t"  # 13 chars
    assert sent["Amount"] == 10 and sent["TransactionType"] == "CustomerPayBillOnline"

    call = await receiver.next()
    assert call["path"] == "/daraja/callback/s3cr3t" and call["query"] == {"k": "v"}
    callback = call["json"]["Body"]["stkCallback"]
    assert callback["CheckoutRequestID"] == reply["CheckoutRequestID"]
    assert callback["MerchantRequestID"] == reply["MerchantRequestID"]
    assert callback["ResultCode"] == 0
    items = {i["Name"]: i.get("Value") for i in callback["CallbackMetadata"]["Item"]}
    assert items["Amount"] == 10 and '"Value": 10.00' in call["text"]
    assert re.fullmatch(r"[A-Z][A-Z0-9]{9}", items["MpesaReceiptNumber"])
    assert items["PhoneNumber"] == 254712345678


@pytest.mark.parametrize("amount", [0, -5, 250_001, 10.5, 10.0, True, "10", None])
async def test_bad_amount_is_refused_before_any_request(gateway, client_for, amount):
    base, sandbox = await gateway()
    with pytest.raises(ValueError):
        await client_for(base).stk_push("0712345678", amount, "MTR1", "Power")
    assert sandbox.requests == []


async def test_bad_phone_is_refused_before_any_request(gateway, client_for):
    base, sandbox = await gateway()
    with pytest.raises(InvalidPhone):
        await client_for(base).stk_push("0812 345 678", 10, "MTR1", "Power")
    with pytest.raises(ValueError):
        await client_for(base).stk_push("0712345678", 10, "   ", "Power")
    assert sandbox.requests == []


async def test_amount_limits_are_inclusive(gateway, client_for):
    base, sandbox = await gateway()
    client = client_for(base)
    await client.stk_push("0712345678", 1, "MTR1", "Power")
    await client.stk_push("0712345678", 250_000, "MTR1", "Power")
    assert [p["status"] for p in paths(sandbox, PATH_STK_PUSH)] == [200, 200]


async def test_stk_push_is_not_retried_on_server_error(gateway, client_for):
    base, sandbox = await gateway()
    sandbox.faults.append({"path": PATH_STK_PUSH, "count": 1, "status": 503,
                           "errorCode": "503.001.01", "errorMessage": "Service Unavailable"})
    with pytest.raises(DarajaError) as raised:
        await client_for(base).stk_push("0712345678", 10, "MTR1", "Power")
    assert raised.value.status == 503 and raised.value.code == "503.001.01"
    assert not isinstance(raised.value, (DarajaPending, DarajaRejected, DarajaTimeout))
    assert len(paths(sandbox, PATH_STK_PUSH)) == 1


async def test_stk_push_timeout_is_reported_not_retried(gateway, client_for):
    base, sandbox = await gateway()
    sandbox.faults.append({"path": PATH_STK_PUSH, "count": 1, "hang_s": 5})
    with pytest.raises(DarajaTimeout):
        await client_for(base, timeout_s=0.05).stk_push("0712345678", 10, "MTR1", "Power")
    assert len(paths(sandbox, PATH_STK_PUSH)) == 1


async def test_non_zero_response_code_is_rejected(aiohttp_server, client_for):
    async def oauth(request):
        return web.json_response({"access_token": "t", "expires_in": "3599"})

    async def push(request):
        return web.json_response({"ResponseCode": "1", "ResponseDescription": "Merchant busy"})

    app = web.Application()
    app.router.add_get(PATH_OAUTH, oauth)
    app.router.add_post(PATH_STK_PUSH, push)
    server = await aiohttp_server(app)
    with pytest.raises(DarajaRejected) as raised:
        await client_for(str(server.make_url("")).rstrip("/")).stk_push(
            "0712345678", 10, "MTR1", "Power")
    assert raised.value.code == "1" and "Merchant busy" in str(raised.value)


# -- STK query -------------------------------------------------------------------------------

async def test_stk_query_pending_then_settled(gateway, client_for, session, receiver):
    base, sandbox = await gateway()
    sandbox.rules.append({"outcome": "cancelled", "hold": True})
    client = client_for(base)
    checkout = (await client.stk_push("0712345678", 10, "MTR1", "Power"))["CheckoutRequestID"]
    with pytest.raises(DarajaPending) as raised:
        await client.stk_query(checkout)
    assert raised.value.code == "500.001.1001" and raised.value.status == 500
    assert len(paths(sandbox, PATH_STK_QUERY)) == 1  # pending is an answer, not a failure
    async with session.post(base + "/sandbox/settle",
                            json={"CheckoutRequestID": checkout}) as response:
        assert response.status == 200
    result = await client.stk_query(checkout)
    assert result["ResultCode"] == "1032" and result["CheckoutRequestID"] == checkout
    assert (await receiver.next())["json"]["Body"]["stkCallback"]["ResultCode"] == 1032


async def test_stk_query_retries_server_errors_with_backoff(gateway, client_for):
    base, sandbox = await gateway()
    client = client_for(base, retry_backoff_s=0.5)
    checkout = (await client.stk_push("0712345678", 10, "MTR1", "Power"))["CheckoutRequestID"]
    await asyncio.sleep(0)  # the zero-delay settle task
    sandbox.faults.append({"path": PATH_STK_QUERY, "count": 2, "status": 503})
    result = await client.stk_query(checkout)
    assert result["ResultCode"] == "0"
    assert [q["status"] for q in paths(sandbox, PATH_STK_QUERY)] == [503, 503, 200]
    assert client.sleeps == [0.5, 1.0]


async def test_stk_query_gives_up_after_bounded_retries(gateway, client_for):
    base, sandbox = await gateway()
    client = client_for(base, query_retries=3)
    sandbox.faults.append({"path": PATH_STK_QUERY, "count": 100, "status": 502})
    with pytest.raises(DarajaError) as raised:
        await client.stk_query("ws_CO_unknown")
    assert raised.value.status == 502
    assert len(paths(sandbox, PATH_STK_QUERY)) == 4


async def test_stk_query_retries_after_timeout(gateway, client_for):
    base, sandbox = await gateway()
    client = client_for(base, timeout_s=0.05)
    checkout = (await client.stk_push("0712345678", 10, "MTR1", "Power"))["CheckoutRequestID"]
    await asyncio.sleep(0)
    sandbox.faults.append({"path": PATH_STK_QUERY, "count": 1, "hang_s": 5})
    assert (await client.stk_query(checkout))["ResultCode"] == "0"
    assert len(paths(sandbox, PATH_STK_QUERY)) == 2


async def test_stk_query_does_not_retry_a_bad_request(gateway, client_for):
    base, sandbox = await gateway()
    with pytest.raises(DarajaRejected) as raised:
        await client_for(base).stk_query("ws_CO_no_such_request")
    assert "CheckoutRequestID" in str(raised.value)
    assert len(paths(sandbox, PATH_STK_QUERY)) == 1


async def test_html_error_page_from_a_proxy_is_retried_then_reported(aiohttp_server,
                                                                     client_for):
    async def oauth(request):
        return web.json_response({"access_token": "t", "expires_in": "3599"})

    async def query(request):
        return web.Response(status=502, text="<html>Bad Gateway</html>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get(PATH_OAUTH, oauth)
    app.router.add_post(PATH_STK_QUERY, query)
    server = await aiohttp_server(app)
    client = client_for(str(server.make_url("")).rstrip("/"), query_retries=1)
    with pytest.raises(DarajaError) as raised:
        await client.stk_query("ws_CO_1")
    assert raised.value.status == 502 and "Bad Gateway" in str(raised.value)
    assert len(client.sleeps) == 1


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00\x81garbage", b"[1, 2]", b""])
async def test_garbage_oauth_reply_is_an_auth_error_not_a_crash(aiohttp_server, client_for, raw):
    async def oauth(request):
        return web.Response(body=raw, content_type="application/json")

    app = web.Application()
    app.router.add_get(PATH_OAUTH, oauth)
    server = await aiohttp_server(app)
    with pytest.raises(DarajaAuthError):
        await client_for(str(server.make_url("")).rstrip("/")).token()


async def test_unreachable_gateway_is_a_daraja_error(client_for):
    client = client_for("http://127.0.0.1:9", query_retries=0)  # discard port: refused
    with pytest.raises(DarajaError, match="cannot reach"):
        await client.token()


# -- C2B -----------------------------------------------------------------------------------

async def test_c2b_register_then_simulate_calls_validation_then_confirmation(gateway, client_for,
                                                                            receiver):
    base, sandbox = await gateway(external_validation=True, c2b_shortcode="600999")
    client = client_for(base, c2b_shortcode="600999")
    registered = await client.register_c2b_urls(receiver.url("/c2b/confirmation"),
                                                receiver.url("/c2b/validation"))
    assert registered["ResponseCode"] == "0"
    assert paths(sandbox, PATH_C2B_REGISTER)[0]["body"]["ShortCode"] == "600999"
    await client.simulate_c2b(250, "0712 345 126", "mtr-0042 A")
    validation, confirmation = await receiver.next(), await receiver.next()
    assert validation["path"] == "/c2b/validation"
    assert confirmation["path"] == "/c2b/confirmation"
    body = confirmation["json"]
    assert validation["json"] == body
    assert body["TransAmount"] == "250.00" and body["BillRefNumber"] == "mtr-0042 A"
    assert body["MSISDN"] == "2547 ***** 126" and body["BusinessShortCode"] == "600999"
    assert re.fullmatch(r"[A-Z0-9]{10}", body["TransID"])
    assert paths(sandbox, PATH_C2B_SIMULATE)[0]["body"]["Msisdn"] == "254712345126"


async def test_c2b_register_checks_response_type(client_for):
    with pytest.raises(ValueError):
        await client_for("http://unused").register_c2b_urls("http://a/c", "http://a/v", "Maybe")


async def test_simulate_c2b_is_refused_in_production(client_for):
    client = client_for(PRODUCTION_BASE_URL)
    with pytest.raises(DarajaRejected, match="production"):
        await client.simulate_c2b(10, "0712345678", "MTR1")


async def test_other_auth_gateway_codes_are_auth_errors_without_renewal(gateway, client_for):
    base, sandbox = await gateway()
    sandbox.faults.append({"path": PATH_STK_QUERY, "count": 1, "status": 404,
                           "errorCode": "404.001.04",
                           "errorMessage": "Invalid Authentication Header"})
    with pytest.raises(DarajaAuthError, match="Authentication Header"):
        await client_for(base).stk_query("ws_CO_1")
    assert len(paths(sandbox, PATH_STK_QUERY)) == 1
    assert len(paths(sandbox, PATH_OAUTH)) == 1


def test_daraja_error_message_names_code_and_status():
    error = DarajaRejected("Bad Request - Invalid Timestamp", "400.002.02", 400)
    assert str(error) == "Bad Request - Invalid Timestamp (code 400.002.02, HTTP 400)"
    assert error.message == "Bad Request - Invalid Timestamp"
