"""The dashboard's server side through the real app (SQLite, the Daraja stand-in): the page
and its files, stream tickets, the event stream's per-customer filtering, /api/me and the
fleet pages, the STK desk. The browser itself is in test_browser.py."""

import asyncio
import json

import pytest

from cloud.app import create_app
from cloud.auth import Principal
from cloud.events import EventHub
from cloud.keys import EVENTS
from cloud.tickets import Tickets
from tests.cloud.cloud_harness import Harness, config, harness, make_config  # noqa: F401


async def read_event(resp, timeout=5.0):
    """The next SSE event as (name, data); comments and retry lines skipped."""
    name, data = None, None
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), timeout)).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and name is not None:
            return name, data


async def ticket(h, auth):
    resp = await h.client.post("/api/events/ticket", headers=auth)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["ticket"]


async def stream(h, auth):
    resp = await h.client.get("/api/events", params={"ticket": await ticket(h, auth)})
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    assert (await read_event(resp))[0] == "hello"
    return resp


async def test_the_page_and_its_files_are_served_same_origin(harness):
    resp = await harness.client.get("/")
    assert resp.status == 200
    assert '<script type="module" src="/static/app.js">' in await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    for path in ("/static/app.js", "/static/i18n.js", "/static/style.css",
                 "/static/vendor/uplot/uPlot.esm.js", "/static/vendor/uplot/uPlot.min.css"):
        assert (await harness.client.get(path)).status == 200, path
    assert (await harness.client.get("/static/../app.py")).status in (403, 404)
    module = await harness.client.get("/static/app.js")
    assert module.headers["Cache-Control"] == "no-cache"  # kept, but asked about each time
    again = await harness.client.get("/static/app.js", headers={
        "If-Modified-Since": module.headers["Last-Modified"]})
    assert again.status == 304
    assert (await harness.client.get("/api/me")).headers["Cache-Control"] == "no-store"
    # the API keeps its own stricter policy
    api = await harness.client.get("/health")
    assert api.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_a_stream_needs_a_ticket_that_only_the_api_credentials_get(harness):
    assert (await harness.client.post("/api/events/ticket")).status == 401
    assert (await harness.client.get("/api/events")).status == 401
    for forged in ("x.y", "x.\u00e9", "\u00e9", "." * 600):
        assert (await harness.client.get("/api/events", params={"ticket": forged})).status == 401
    one = await ticket(harness, harness.op())
    first = await harness.client.get("/api/events", params={"ticket": one})
    assert first.status == 200
    first.close()
    # one stream per ticket: a ticket seen in a log or a history opens nothing
    assert (await harness.client.get("/api/events", params={"ticket": one})).status == 401


def test_tickets_expire_and_a_forged_one_is_refused():
    now = [1000.0]
    tickets = Tickets(clock=lambda: now[0], ttl_s=60)
    who = Principal("u1", "customer")
    fresh, old = tickets.issue(who), tickets.issue(who)
    assert tickets.redeem(fresh) == who
    now[0] += 61
    with pytest.raises(Exception, match="expired"):
        tickets.redeem(old)
    body, _, sig = tickets.issue(Principal("u1", "customer")).partition(".")
    forged = Tickets().issue(Principal("u1", "operator"))
    with pytest.raises(Exception, match="expired"):
        tickets.redeem(forged.partition(".")[0] + "." + sig)


async def test_a_customer_hears_only_their_own_meters(harness):
    _, amina, mine, _ = await harness.customer_with_meter("MTR-0001")
    _, baraka, theirs, _ = await harness.customer_with_meter("MTR-0002")
    await harness.sandbox_settings(default_outcome="cancelled", callback_delay_s=0)
    feed = await stream(harness, amina)
    operator = await stream(harness, harness.op())
    assert (await harness.stk_push(baraka, theirs)).status == 201
    assert (await harness.stk_push(amina, mine)).status == 201
    seen = [await read_event(feed) for _ in range(2)]
    assert [(e["meter_no"], e["kind"], e["status"]) for _, e in seen] == [
        (mine, "stk", "pending"), (mine, "stk", "failed")]
    watched = {(e["meter_no"], e["status"]) for _, e in [await read_event(operator)
                                                          for _ in range(4)]}
    assert watched == {(m, s) for m in (mine, theirs) for s in ("pending", "failed")}
    feed.close()
    operator.close()


async def test_a_credit_is_announced_after_it_is_stored(harness):
    from tests.cloud.cloud_harness import stk_success
    _, auth, meter_no, _ = await harness.customer_with_meter()
    await harness.sandbox_settings(default_outcome="none", callback_delay_s=0)
    feed = await stream(harness, auth)
    checkout = (await (await harness.stk_push(auth, meter_no)).json())["checkout_request_id"]
    assert (await read_event(feed))[1]["status"] == "pending"
    await harness.post_callback(stk_success(checkout, "RCP0000001"))
    _, event = await read_event(feed)
    assert event["kind"] == "payment" and event["receipt"] == "RCP0000001"
    stored = await harness.store.get_transaction_by_receipt("RCP0000001")
    assert stored is not None
    feed.close()


def test_a_stream_that_falls_behind_is_told_to_resync():
    async def run():
        hub = EventHub()
        sub = hub.subscribe(["M1"])
        for i in range(300):
            hub.publish("M1", "telemetry", balance_cents=i)
        hub.publish("M2", "telemetry")  # not this stream's
        got = [await sub.next(0.01) for _ in range(256)]
        assert got[-1]["balance_cents"] == 255
        assert await sub.next(0.01) == {"kind": "resync"}
        assert await sub.next(0.01) is False
        hub.close()
        assert await sub.next(0.01) is None
    asyncio.run(run())


async def test_shutdown_ends_open_streams(harness):
    feed = await stream(harness, harness.op())
    harness.app[EVENTS].close()
    assert await asyncio.wait_for(feed.content.read(), 5) == b""


async def test_me_names_only_my_meters_and_the_paybill(harness):
    _, auth, meter_no, _ = await harness.customer_with_meter("MTR-0001")
    await harness.customer_with_meter("MTR-0002")
    me = await (await harness.client.get("/api/me", headers=auth)).json()
    assert [m["meter_no"] for m in me["meters"]] == [meter_no]
    assert me["role"] == "customer" and me["paybill"]
    assert "device_key" not in me["meters"][0]
    assert (await harness.client.get("/api/me")).status == 401


async def test_the_fleet_comes_in_pages_for_operators_only(harness):
    for i in range(5):
        await harness.customer_with_meter("MTR%04d" % i)
    _, auth, _, _ = await harness.customer_with_meter("MTR0009")
    assert (await harness.client.get("/api/fleet", headers=auth)).status == 403
    first = await (await harness.client.get("/api/fleet?limit=4", headers=harness.op())).json()
    assert [m["meter_no"] for m in first["meters"]] == ["MTR0000", "MTR0001", "MTR0002",
                                                       "MTR0003"]
    assert first["next"] == "MTR0003" and "device_key" not in first["meters"][0]
    rest = await (await harness.client.get("/api/fleet?limit=4&after=MTR0003",
                                           headers=harness.op())).json()
    assert [m["meter_no"] for m in rest["meters"]] == ["MTR0004", "MTR0009"]
    assert rest["next"] is None
    found = await (await harness.client.get("/api/fleet?prefix=mtr-000",
                                            headers=harness.op())).json()
    assert [m["meter_no"] for m in found["meters"]] == ["MTR0000", "MTR0001", "MTR0002",
                                                       "MTR0003", "MTR0004", "MTR0009"]
    one = await (await harness.client.get("/api/fleet?prefix=MTR0009", headers=harness.op())).json()
    assert [m["meter_no"] for m in one["meters"]] == ["MTR0009"]


async def test_the_desk_lists_failed_stk_requests_with_their_reason(harness):
    _, auth, meter_no, _ = await harness.customer_with_meter()
    await harness.sandbox_settings(default_outcome="wrong_pin", callback_delay_s=0)
    feed = await stream(harness, harness.op())
    assert (await harness.stk_push(auth, meter_no)).status == 201
    while (await read_event(feed))[1]["status"] != "failed":
        pass
    feed.close()
    assert (await harness.client.get("/api/payments/stk?status=failed", headers=auth)).status == 403
    resp = await harness.client.get("/api/payments/stk?status=failed", headers=harness.op())
    [failed] = await resp.json()
    assert failed["meter_no"] == meter_no and failed["reason"] == "wrong M-Pesa PIN"
    assert await (await harness.client.get("/api/payments/stk", headers=harness.op())).json() == []
    bad = await harness.client.get("/api/payments/stk?status=lost", headers=harness.op())
    assert bad.status == 400
