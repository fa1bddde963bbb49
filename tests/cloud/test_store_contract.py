"""The store contract: every test runs against SQLite and against Firebase (firebase-admin to
the local RTDB stand-in; also Firebase's own emulator when MITA_FIREBASE_EMULATOR_HOST is set)."""

import asyncio
import json
import sqlite3

import pytest

from cloud.store import Conflict, InvalidRecord, NotFound, StoreError, open_store
from cloud.store import firebase_credit
from cloud.store.sqlite import SqliteStore
from cloud.store.sqlite_schema import SCHEMA_VERSION

T0 = 1_700_000_000_000


def payment(receipt, meter_no="M1", user_id="u1", amount_cents=50_000, ts=T0, source="stk",
            **extra):
    return dict(receipt=receipt, meter_no=meter_no, user_id=user_id, amount_cents=amount_cents,
                phone_number="254712345678", transaction_date="20231115120000",
                source=source, ts=ts, **extra)


async def given_meters(store, *meters, user_id="u1"):
    if await store.get_user(user_id) is None:
        await store.create_user({"user_id": user_id, "name": "Wanjiru",
                                 "phone_number": "254712345678"})
    for meter_no in meters:
        await store.create_meter(meter_no, user_id, "key-" + meter_no)


# users ------------------------------------------------------------------------------------

async def test_user_round_trip_has_the_full_shape(store):
    created = await store.create_user({"user_id": "u1", "name": "Wanjiru",
                                       "email": "w@example.com", "phone_number": "2547"})
    assert created["role"] == "customer" and isinstance(created["created_at"], int)
    assert await store.get_user("u1") == created
    assert created["latest_transaction_id"] is None and created["meter_no"] is None


async def test_user_id_is_generated_and_duplicates_conflict(store):
    made = await store.create_user({"name": "no id"})
    assert made["user_id"] and (await store.get_user(made["user_id"]))["name"] == "no id"
    await store.create_user({"user_id": "u1", "name": "first"})
    with pytest.raises(Conflict):
        await store.create_user({"user_id": "u1", "name": "second"})
    assert (await store.get_user("u1"))["name"] == "first"
    assert await store.get_user("nobody") is None


async def test_api_key_hash_finds_its_user_and_rotation_revokes_the_old_one(store):
    await given_meters(store)
    await store.create_user({"user_id": "u2"})
    assert await store.find_user_by_api_key_hash("h1") is None
    await store.set_user_api_key_hash("u1", "h1")
    assert (await store.find_user_by_api_key_hash("h1"))["user_id"] == "u1"
    await store.set_user_api_key_hash("u1", "h2")
    assert await store.find_user_by_api_key_hash("h1") is None
    assert (await store.find_user_by_api_key_hash("h2"))["user_id"] == "u1"
    with pytest.raises(Conflict):
        await store.set_user_api_key_hash("u2", "h2")
    with pytest.raises(NotFound):
        await store.set_user_api_key_hash("ghost", "h3")


# meters -----------------------------------------------------------------------------------

async def test_meter_starts_empty_and_is_linked_to_its_user(store):
    await given_meters(store)
    meter = await store.create_meter("M1", "u1", "secret")
    assert meter["current_balance_cents"] == 0 and meter["recharge_seq"] == 0
    assert meter["status"] == {} and meter["alerts"] == {} and meter["user_id"] == "u1"
    assert await store.get_meter("M1") == meter
    assert (await store.get_user("u1"))["meter_no"] == "M1"
    assert await store.get_device_key("M1") == "secret"
    assert "device_key" not in meter  # the secret never travels with the readable record


async def test_duplicate_meter_conflicts_and_changes_nothing(store):
    await given_meters(store, "M1")
    await store.create_user({"user_id": "u2"})
    with pytest.raises(Conflict):
        await store.create_meter("M1", "u2", "thief-key")
    assert (await store.get_meter("M1"))["user_id"] == "u1"
    assert await store.get_device_key("M1") == "key-M1"


async def test_a_device_key_is_rotated_in_place_and_only_for_a_registered_meter(store):
    await given_meters(store, "M1", "M2")
    before = await store.get_meter("M1")
    await store.set_device_key("M1", "key-M1-new")
    assert await store.get_device_key("M1") == "key-M1-new"
    assert await store.get_device_key("M2") == "key-M2"
    assert await store.get_meter("M1") == before  # nothing else about the meter changes
    with pytest.raises(NotFound):
        await store.set_device_key("NOSUCH", "k")
    assert await store.get_device_key("NOSUCH") is None and await store.get_meter("NOSUCH") is None


async def test_meter_for_unknown_user_and_unknown_meters(store):
    with pytest.raises(NotFound):
        await store.create_meter("M1", "ghost", "k")
    assert await store.get_meter("M1") is None
    assert await store.get_device_key("M1") is None
    with pytest.raises(NotFound):
        await store.update_meter_balance("M1", 100, T0)
    with pytest.raises(NotFound):
        await store.update_meter_status("M1", {"wifi_status": "up"}, T0)
    assert await store.get_meter("M1") is None  # no stray partial node either


async def test_list_meters_all_and_per_user(store):
    await given_meters(store, "M2", "M1")
    await given_meters(store, "M3", user_id="u2")
    assert [m["meter_no"] for m in await store.list_meters()] == ["M1", "M2", "M3"]
    assert [m["meter_no"] for m in await store.list_meters("u1")] == ["M1", "M2"]
    assert await store.list_meters("nobody") == []


async def test_meters_come_in_pages_after_a_cursor(store):
    await given_meters(store, "M4", "M2", "M1")
    await given_meters(store, "M3", user_id="u2")
    first = await store.list_meters_page(limit=3)
    assert [m["meter_no"] for m in first] == ["M1", "M2", "M3"]
    assert first[2]["user_id"] == "u2"
    assert [m["meter_no"] for m in await store.list_meters_page("M3", 3)] == ["M4"]
    assert [m["meter_no"] for m in await store.list_meters_page("M1", 2)] == ["M2", "M3"]
    assert await store.list_meters_page("M4", 3) == []


async def test_a_page_of_meters_can_be_only_those_starting_with_a_prefix(store):
    await given_meters(store, "A19", "AB1", "AB2", "AB3", "AC1", "B1")
    assert [m["meter_no"] for m in await store.list_meters_page(prefix="AB")] == [
        "AB1", "AB2", "AB3"]
    assert [m["meter_no"] for m in await store.list_meters_page("AB1", 1, "AB")] == ["AB2"]
    assert [m["meter_no"] for m in await store.list_meters_page(prefix="A", limit=2)] == [
        "A19", "AB1"]
    assert await store.list_meters_page(prefix="Z") == []


async def test_balance_is_integer_cents(store):
    await given_meters(store, "M1")
    meter = await store.update_meter_balance("M1", 45_075, T0)
    assert meter["current_balance_cents"] == 45_075 and meter["last_update"] == T0
    for bad in (450.75, "450", True):
        with pytest.raises(InvalidRecord):
            await store.update_meter_balance("M1", bad, T0 + 1)
    assert (await store.get_meter("M1"))["current_balance_cents"] == 45_075


async def test_status_and_alerts_merge(store):
    await given_meters(store, "M1")
    await store.update_meter_status("M1", {"load_connected": True, "wifi_status": "ok"}, T0)
    meter = await store.update_meter_status("M1", {"mqtt_status": "connected"}, T0 + 5)
    assert meter["status"] == {"load_connected": True, "wifi_status": "ok",
                               "mqtt_status": "connected", "last_seen": T0 + 5}
    await store.update_meter_alerts("M1", {"low_balance": True, "connection_lost": False})
    await store.update_meter_alerts("M1", {"low_balance": False, "critical_balance": True})
    assert (await store.get_meter("M1"))["alerts"] == {
        "low_balance": False, "critical_balance": True, "connection_lost": False}
    with pytest.raises(InvalidRecord):
        await store.update_meter_status("M1", {"bad/key": 1}, T0)


async def test_a_status_from_an_earlier_message_does_not_overwrite_a_later_one(store):
    # Two instances handle a meter's last will (arrived first) and its next online status
    # side by side; whichever is written last, the stored state is the later message's.
    await given_meters(store, "M1")
    online = await store.update_meter_status("M1", {"state": "online"}, T0 + 9, state_at=T0 + 2)
    assert online["status"]["state"] == "online" and online["status"]["state_at"] == T0 + 2
    stale = await store.update_meter_status("M1", {"state": "offline", "reason": "lost"},
                                            T0 + 10, state_at=T0 + 1)
    assert stale["status"] == online["status"]
    assert (await store.get_meter("M1"))["status"] == online["status"]
    later = await store.update_meter_status("M1", {"state": "offline"}, T0 + 11,
                                            state_at=T0 + 3)
    assert later["status"]["state"] == "offline" and later["status"]["state_at"] == T0 + 3
    with pytest.raises(NotFound):
        await store.update_meter_status("NOPE", {"state": "online"}, T0, state_at=T0)


async def test_telemetry_of_many_meters_is_one_write_and_skips_unknown_meters(store):
    await given_meters(store, "M1", "M2", "M3")
    await store.update_meter_alerts("M2", {"tamper": False, "low_balance": True})
    unknown = await store.write_telemetry({
        "M1": (12_000, {"low_balance": False}, T0),
        "M2": (None, {"low_balance": False}, T0 + 1),  # alerts only: the balance stays
        "GHOST": (5_000, {"low_balance": True}, T0),
        "M3": (0, None, T0 + 2)})
    assert unknown == ["GHOST"]
    m1, m2, m3 = [await store.get_meter(m) for m in ("M1", "M2", "M3")]
    assert (m1["current_balance_cents"], m1["last_update"]) == (12_000, T0)
    assert m1["alerts"] == {"low_balance": False}
    assert m2["alerts"] == {"tamper": False, "low_balance": False}  # merged, not replaced
    assert m2["current_balance_cents"] == 0 and m2["last_update"] != T0 + 1
    assert (m3["current_balance_cents"], m3["last_update"]) == (0, T0 + 2)
    assert await store.get_meter("GHOST") is None  # no stray record made for it


async def test_bad_telemetry_writes_nothing_of_the_batch(store):
    await given_meters(store, "M1", "M2")
    await store.update_meter_balance("M1", 100, T0)
    for bad in ({"M1": (200, None, T0 + 1), "M2": (1.5, None, T0 + 1)},
                {"M1": (200, None, T0 + 1), "M2": (300, {"bad/key": True}, T0 + 1)}):
        with pytest.raises(InvalidRecord):
            await store.write_telemetry(bad)
    assert (await store.get_meter("M1"))["current_balance_cents"] == 100


async def test_a_nonce_is_claimed_once_inside_the_window_and_forgotten_after(store):
    now = 1_800_000_000
    assert await store.claim_nonce("M1", "abcdef01", now, 300, now) == "ok"
    assert await store.claim_nonce("M1", "abcdef01", now, 300, now + 10) == "replayed"
    assert await store.claim_nonce("M2", "abcdef01", now, 300, now) == "ok"  # per meter
    assert await store.claim_nonce("M1", "abcdef02", now + 1, 300, now + 1) == "ok"
    # a window later the old claims are gone (a request that old fails the window check)
    later = now + 1000
    assert await store.claim_nonce("M1", "abcdef01", later, 300, later) == "ok"


async def test_nonce_claims_stop_at_the_limit_per_meter(store):
    now = 1_800_000_000
    for n in range(3):
        assert await store.claim_nonce("M1", "nonce%03d" % n, now, 300, now, limit=3) == "ok"
    assert await store.claim_nonce("M1", "nonce999", now, 300, now, limit=3) == "full"
    assert await store.claim_nonce("M2", "nonce999", now, 300, now, limit=3) == "ok"


async def test_concurrent_claims_of_one_nonce_give_one_ok(store):
    now = 1_800_000_000
    answers = await asyncio.gather(*(store.claim_nonce("M1", "racenonce", now, 300, now)
                                     for _ in range(5)))
    assert sorted(answers) == ["ok"] + ["replayed"] * 4


# STK requests -----------------------------------------------------------------------------

def stk(cid, created_at, meter_no="M1"):
    return {"checkout_request_id": cid, "merchant_request_id": "mr-" + cid,
            "meter_no": meter_no, "user_id": "u1", "phone_number": "254712345678",
            "amount_cents": 10_000, "created_at": created_at}


async def test_stk_request_round_trip_and_duplicate(store):
    made = await store.create_stk_request(stk("ws_CO_1", T0))
    assert made["status"] == "pending" and made["settled_at"] is None
    assert await store.get_stk_request("ws_CO_1") == made
    with pytest.raises(Conflict):
        await store.create_stk_request(stk("ws_CO_1", T0 + 1))
    assert await store.get_stk_request("nope") is None


async def test_pending_requests_by_age_oldest_first(store):
    for cid, at in (("c3", T0 + 3000), ("c1", T0 + 1000), ("c2", T0 + 2000), ("c9", T0 + 9000)):
        await store.create_stk_request(stk(cid, at))
    await store.fail_stk_request("c2", 1032, "cancelled", T0 + 2500)
    pending = await store.list_pending_stk_requests(T0 + 5000)
    assert [r["checkout_request_id"] for r in pending] == ["c1", "c3"]
    assert await store.list_pending_stk_requests(T0 + 1000) == []  # strictly before


async def test_stk_requests_by_status_newest_first(store):
    for cid, at in (("c1", T0 + 1000), ("c2", T0 + 2000), ("c3", T0 + 3000), ("c4", T0 + 4000)):
        await store.create_stk_request(stk(cid, at))
    for cid in ("c1", "c3", "c4"):
        await store.fail_stk_request(cid, 1032, "cancelled", T0 + 5000)
    failed = await store.list_stk_requests("failed", limit=2)
    assert [r["checkout_request_id"] for r in failed] == ["c4", "c3"]
    assert failed[0]["result_code"] == 1032 and failed[0]["meter_no"] == "M1"
    assert [r["checkout_request_id"] for r in await store.list_stk_requests("pending")] == ["c2"]
    assert await store.list_stk_requests("success") == []


async def test_fail_once_then_false(store):
    await store.create_stk_request(stk("c1", T0))
    assert await store.fail_stk_request("c1", 1032, "Request cancelled by user", T0 + 1) is True
    assert await store.fail_stk_request("c1", 1037, "timeout", T0 + 2) is False
    failed = await store.get_stk_request("c1")
    assert (failed["status"], failed["result_code"], failed["settled_at"]) == ("failed", 1032,
                                                                               T0 + 1)
    with pytest.raises(NotFound):
        await store.fail_stk_request("ghost", 1, "x", T0)


async def test_success_settles_even_after_a_failure_but_not_the_reverse(store):
    await given_meters(store, "M1")
    await store.create_stk_request(stk("c1", T0))
    await store.create_stk_request(stk("c2", T0))
    await store.fail_stk_request("c1", 1037, "timeout", T0 + 1)
    _, tx, _ = await store.record_payment(payment("R1", checkout_request_id="c1", ts=T0 + 9))
    settled = await store.get_stk_request("c1")
    assert settled["status"] == "success" and settled["transaction_id"] == tx["transaction_id"]
    await store.record_payment(payment("R2", checkout_request_id="c2", ts=T0 + 9))
    assert await store.fail_stk_request("c2", 1037, "late timeout", T0 + 20) is False
    assert (await store.get_stk_request("c2"))["status"] == "success"


# the credit path --------------------------------------------------------------------------

async def test_payment_records_transaction_recharge_and_user(store):
    await given_meters(store, "M1")
    created, tx, recharge = await store.record_payment(payment("QKJ12ABC", ts=T0))
    assert created is True
    assert tx["mpesa_receipt"] == "QKJ12ABC" and tx["amount_cents"] == 50_000
    assert tx["status"] == "SUCCESS" and tx["recharge_seq"] == 1 and tx["timestamp"] == T0
    assert recharge == {"meter_no": "M1", "seq": 1, "id": "QKJ12ABC", "amount_cents": 50_000,
                        "source": "cloud", "transaction_id": tx["transaction_id"],
                        "status": "pending", "reason": None, "created_at": T0,
                        "sent_at": None, "acked_at": None, "token_count": None}
    assert tx["token_count"] is None and tx["token"] is None  # no mint given: no token
    assert await store.get_transaction_by_receipt("QKJ12ABC") == tx
    user = await store.get_user("u1")
    assert user["latest_transaction_id"] == tx["transaction_id"]
    assert user["last_payment_amount_cents"] == 50_000 and user["last_payment_timestamp"] == T0
    assert (await store.get_meter("M1"))["recharge_seq"] == 1


async def test_sequential_duplicates_change_nothing(store):
    await given_meters(store, "M1")
    first = await store.record_payment(payment("R1", ts=T0))
    for i in range(1, 4):  # Daraja re-sends: later time, even a different amount
        again = await store.record_payment(payment("R1", ts=T0 + i, amount_cents=1))
        assert again == (False, first[1], first[2])
    assert len(await store.list_transactions_for_meter("M1")) == 1
    assert len(await store.list_recharges("M1")) == 1
    assert (await store.get_meter("M1"))["recharge_seq"] == 1
    assert (await store.get_user("u1"))["last_payment_timestamp"] == T0


async def test_concurrent_duplicates_create_one_credit(store):
    await given_meters(store, "M1")
    results = await asyncio.gather(*(store.record_payment(payment("R1", ts=T0 + i))
                                     for i in range(8)))
    assert sorted(created for created, _, _ in results) == [False] * 7 + [True]
    assert len({tx["transaction_id"] for _, tx, _ in results}) == 1
    assert all(rc["seq"] == 1 for _, _, rc in results)
    assert len(await store.list_transactions_for_meter("M1")) == 1
    assert [r["seq"] for r in await store.list_recharges("M1")] == [1]


async def test_sequence_counts_per_meter_even_under_concurrency(store):
    await given_meters(store, "M1", "M2")
    for i, meter in enumerate(["M1", "M2", "M1", "M1", "M2"]):
        _, _, rc = await store.record_payment(payment("R%d" % i, meter_no=meter, ts=T0 + i))
    assert [r["seq"] for r in await store.list_recharges("M1")] == [1, 2, 3]
    assert [r["seq"] for r in await store.list_recharges("M2")] == [1, 2]
    results = await asyncio.gather(*(store.record_payment(payment("C%d" % i, ts=T0 + 100 + i))
                                     for i in range(6)))
    assert sorted(rc["seq"] for _, _, rc in results) == [4, 5, 6, 7, 8, 9]


async def test_payment_for_unknown_meter_records_nothing(store):
    await given_meters(store)
    with pytest.raises(NotFound):
        await store.record_payment(payment("R1", meter_no="GHOST"))
    assert await store.get_transaction_by_receipt("R1") is None
    await given_meters(store, "GHOST")
    created, _, rc = await store.record_payment(payment("R1", meter_no="GHOST"))
    assert created and rc["seq"] == 1  # the refused attempt left no claim behind


async def test_money_must_be_integer_cents(store):
    await given_meters(store, "M1")
    for bad in (500.5, "500", None):
        with pytest.raises(InvalidRecord):
            await store.record_payment(payment("R1", amount_cents=bad))
    with pytest.raises(InvalidRecord):
        await store.record_payment(payment(""))
    assert await store.list_recharges("M1") == []


async def test_receipts_with_key_hostile_characters_stay_distinct(store):
    await given_meters(store, "M/1.x")
    odd = ["A.B", "A!2EB", "x$y#z[0]/%", "tab\there"]
    for i, receipt in enumerate(odd):
        created, tx, rc = await store.record_payment(payment(receipt, meter_no="M/1.x",
                                                             ts=T0 + i))
        assert created and rc["id"] == receipt and rc["seq"] == i + 1
    for receipt in odd:
        assert (await store.get_transaction_by_receipt(receipt))["mpesa_receipt"] == receipt
    assert (await store.get_meter("M/1.x"))["meter_no"] == "M/1.x"


async def test_transactions_newest_first_with_limit(store):
    await given_meters(store, "M1", "M2")
    await given_meters(store, "M3", user_id="u2")
    for receipt, meter, ts in (("R3", "M1", T0 + 3), ("R1", "M2", T0 + 1), ("R2", "M1", T0 + 2),
                               ("R9", "M3", T0 + 9)):
        user = "u2" if meter == "M3" else "u1"
        await store.record_payment(payment(receipt, meter_no=meter, user_id=user, ts=ts))
    by_user = await store.list_transactions_for_user("u1")
    assert [t["mpesa_receipt"] for t in by_user] == ["R3", "R2", "R1"]
    assert [t["mpesa_receipt"] for t in await store.list_transactions_for_user("u1", 2)] == [
        "R3", "R2"]
    assert [t["mpesa_receipt"] for t in await store.list_transactions_for_meter("M1")] == [
        "R3", "R2"]
    assert await store.list_transactions_for_user("nobody") == []


# one STK request, two receipts (issue #4) -------------------------------------------------
# An STK query settles a request under its CheckoutRequestID (no receipt in the reply); the
# late callback carries the MpesaReceiptNumber. Both name the same money.

def by_query(cid, ts=T0, **extra):
    return payment(cid, checkout_request_id=cid, ts=ts, source="stk_query", **extra)


def by_callback(receipt, cid, ts=T0, **extra):
    return payment(receipt, checkout_request_id=cid, ts=ts, **extra)


async def assert_one_credit(store, meter_no="M1"):
    txs = await store.list_transactions_for_meter(meter_no)
    recharges = await store.list_recharges(meter_no)
    assert len(txs) == 1 and [r["seq"] for r in recharges] == [1]
    assert recharges[0]["transaction_id"] == txs[0]["transaction_id"]
    assert (await store.get_meter(meter_no))["recharge_seq"] == 1
    return txs[0]


async def race_query_and_callback(one, two):
    """Two stores on one database settle ws_CO_1 by query and by callback at once, twice
    each; exactly one of the four creates the credit. Returns the four results."""
    await given_meters(one, "M1")
    racers = [(one, by_query("ws_CO_1", ts=T0)), (two, by_callback("QKJ1", "ws_CO_1")),
              (two, by_query("ws_CO_1", ts=T0)), (one, by_callback("QKJ1", "ws_CO_1"))]
    results = await asyncio.gather(*(s.record_payment(p) for s, p in racers))
    assert sum(created for created, _, _ in results) == 1
    return results


async def test_query_settled_then_late_callback_credits_once(store):
    await given_meters(store, "M1")
    await store.create_stk_request(stk("ws_CO_1", T0))
    first = await store.record_payment(by_query("ws_CO_1", ts=T0 + 10))
    assert first[0] is True and first[1]["mpesa_receipt"] == "ws_CO_1"
    for i in (1, 2):  # the late callback, then Daraja re-sending it
        late = await store.record_payment(by_callback("QKJ12ABC", "ws_CO_1", ts=T0 + 20 + i,
                                                      amount_cents=99))
        assert late == (False, first[1], first[2])
    tx = await assert_one_credit(store)
    assert tx["source"] == "stk_query"
    assert await store.get_transaction_by_receipt("QKJ12ABC") is None
    settled = await store.get_stk_request("ws_CO_1")
    assert settled["status"] == "success" and settled["transaction_id"] == tx["transaction_id"]
    assert (await store.get_user("u1"))["last_payment_timestamp"] == T0 + 10


async def test_callback_first_then_query_credits_once(store):
    await given_meters(store, "M1")
    await store.create_stk_request(stk("ws_CO_1", T0))
    first = await store.record_payment(by_callback("QKJ12ABC", "ws_CO_1", ts=T0 + 10))
    assert first[0] is True
    assert await store.record_payment(by_query("ws_CO_1", ts=T0 + 30)) == (False, first[1],
                                                                         first[2])
    tx = await assert_one_credit(store)
    assert tx["mpesa_receipt"] == "QKJ12ABC" and tx["source"] == "stk"
    assert await store.get_transaction_by_receipt("ws_CO_1") is None


async def test_query_and_callback_racing_credit_once(store):
    await given_meters(store, "M1")
    await store.create_stk_request(stk("ws_CO_1", T0))
    racers = [by_query("ws_CO_1", ts=T0 + 1), by_callback("QKJ12ABC", "ws_CO_1", ts=T0 + 2)]
    results = await asyncio.gather(*(store.record_payment(p) for p in racers * 3))
    assert sorted(created for created, _, _ in results) == [False] * 5 + [True]
    assert len({tx["transaction_id"] for _, tx, _ in results}) == 1
    assert {rc["seq"] for _, _, rc in results} == {1}
    tx = await assert_one_credit(store)
    assert (await store.get_stk_request("ws_CO_1"))["transaction_id"] == tx["transaction_id"]


async def test_different_checkouts_with_different_receipts_credit_twice(store):
    await given_meters(store, "M1")
    one = await store.record_payment(by_callback("QKJ1", "ws_CO_1", ts=T0 + 1))
    two = await store.record_payment(by_query("ws_CO_2", ts=T0 + 2))
    three = await store.record_payment(by_callback("QKJ3", "ws_CO_3", ts=T0 + 3))
    assert [r[0] for r in (one, two, three)] == [True, True, True]
    assert [r["seq"] for r in await store.list_recharges("M1")] == [1, 2, 3]
    # and each stays closed to its other receipt
    assert (await store.record_payment(by_query("ws_CO_1", ts=T0 + 4)))[0] is False
    assert (await store.record_payment(by_callback("QKJ2", "ws_CO_2", ts=T0 + 5)))[0] is False
    assert len(await store.list_recharges("M1")) == 3


async def test_c2b_payments_without_a_checkout_are_unaffected(store):
    await given_meters(store, "M1")
    await store.record_payment(by_query("ws_CO_1", ts=T0))
    for i, extra in enumerate(({}, {"checkout_request_id": None}, {})):
        created, tx, rc = await store.record_payment(payment("TRANS%d" % i, source="c2b",
                                                             ts=T0 + 1 + i, **extra))
        assert created and tx["checkout_request_id"] is None and rc["seq"] == i + 2
    assert (await store.record_payment(payment("TRANS0", source="c2b", ts=T0 + 9)))[0] is False
    assert len(await store.list_recharges("M1")) == 4


async def test_a_receipt_already_recorded_wins_over_a_new_checkout(store):
    # M-Pesa never reuses a receipt; if a caller did, the receipt's record is the answer
    await given_meters(store, "M1")
    first = await store.record_payment(by_callback("QKJ1", "ws_CO_1", ts=T0))
    again = await store.record_payment(by_callback("QKJ1", "ws_CO_9", ts=T0 + 1))
    assert again == (False, first[1], first[2])
    assert len(await store.list_recharges("M1")) == 1


# recharges --------------------------------------------------------------------------------

def minter(calls):
    """A mint that records what the store gave it and answers the next even count."""
    def mint(meter_no, device_key, last_count):
        calls.append((meter_no, device_key, last_count))
        return last_count + 2 - last_count % 2, "%09d" % (len(calls) * 111)
    return mint


async def test_a_new_credit_mints_its_token_in_the_same_write(store):
    await given_meters(store, "M1", "M2")
    calls = []
    _, tx1, rc1 = await store.record_payment(payment("R1", ts=T0), mint=minter(calls))
    _, tx2, rc2 = await store.record_payment(payment("R2", ts=T0 + 1), mint=minter(calls))
    _, tx3, _ = await store.record_payment(payment("R3", meter_no="M2", ts=T0 + 2),
                                           mint=minter(calls))
    # the store hands over the meter's key and its last count: 1 for a new meter
    assert calls == [("M1", "key-M1", 1), ("M1", "key-M1", 2), ("M2", "key-M2", 1)]
    assert (tx1["token_count"], tx1["token"], rc1["token_count"]) == (2, "000000111", 2)
    assert (tx2["token_count"], tx2["token"], rc2["token_count"]) == (4, "000000222", 4)
    assert tx3["token_count"] == 2
    assert (await store.get_meter("M1"))["token_count"] == 4
    assert (await store.list_recharges("M1"))[1]["token_count"] == 4
    assert (await store.get_transaction_by_receipt("R2"))["token"] == "000000222"
    assert [t["token"] for t in await store.list_transactions_for_meter("M1")] == [
        "000000222", "000000111"]


async def test_a_duplicate_mints_no_second_token(store):
    await given_meters(store, "M1")
    calls = []
    first = await store.record_payment(payment("R1", checkout_request_id="c1"),
                                       mint=minter(calls))
    again = await store.record_payment(payment("R1", ts=T0 + 5), mint=minter(calls))
    other_receipt = await store.record_payment(payment("R9", checkout_request_id="c1",
                                                       ts=T0 + 6), mint=minter(calls))
    assert len(calls) == 1
    assert again == (False, first[1], first[2]) and other_receipt[1] == first[1]
    assert (await store.get_meter("M1"))["token_count"] == 2


async def test_a_credit_no_token_carries_keeps_the_meter_count(store):
    await given_meters(store, "M1")
    _, tx, rc = await store.record_payment(payment("R1"), mint=lambda *args: None)
    assert tx["token"] is None and tx["token_count"] is None and rc["token_count"] is None
    assert (await store.get_meter("M1"))["token_count"] == 1


async def test_an_audit_record_is_kept_with_its_credit(store):
    await given_meters(store, "M1", "M2")
    audit = {"actor": "op1", "action": "operator_token", "reason": "goodwill: outage"}
    _, tx, _ = await store.record_payment(payment("OPT1", source="operator_token",
                                                  audit=audit, ts=T0 + 1))
    await store.record_payment(payment("OPT1", source="operator_token",
                                       audit=dict(audit, reason="again"), ts=T0 + 2))
    await store.record_payment(payment("OPT2", source="operator_token", audit=audit,
                                       ts=T0 + 3, meter_no="M2"))
    assert await store.list_audit("M1") == [{
        "transaction_id": tx["transaction_id"], "meter_no": "M1", "actor": "op1",
        "action": "operator_token", "reason": "goodwill: outage", "amount_cents": 50_000,
        "ts": T0 + 1}]
    assert tx["source"] == "operator_token"
    with pytest.raises(InvalidRecord):
        await store.record_payment(payment("OPT3", audit=dict(audit, reason="")))
    assert await store.get_transaction_by_receipt("OPT3") is None


async def test_recharges_by_status_and_sent(store):
    await given_meters(store, "M1")
    for i in range(3):
        await store.record_payment(payment("R%d" % i, ts=T0 + i))
    sent = await store.mark_recharge_sent("M1", 2, T0 + 50)
    assert sent["sent_at"] == T0 + 50 and sent["status"] == "pending"
    await store.ack_recharge("M1", 1, "applied", None, T0 + 60)
    assert [r["seq"] for r in await store.list_recharges("M1", "pending")] == [2, 3]
    assert [r["seq"] for r in await store.list_recharges("M1", "delivered")] == [1]
    assert await store.list_recharges("M1", "rejected") == []
    assert await store.mark_recharge_sent("M1", 99, T0) is None


async def test_ack_is_idempotent_and_delivered_is_final(store):
    await given_meters(store, "M1")
    await store.record_payment(payment("R1"))
    first = await store.ack_recharge("M1", 1, "applied", None, T0 + 10)
    assert first["status"] == "delivered" and first["acked_at"] == T0 + 10
    assert await store.ack_recharge("M1", 1, "duplicate", None, T0 + 20) == first
    assert await store.ack_recharge("M1", 1, "rejected", "late", T0 + 30) == first
    assert await store.ack_recharge("M1", 7, "applied", None, T0) is None
    with pytest.raises(InvalidRecord):
        await store.ack_recharge("M1", 1, "eaten", None, T0)


async def test_rejected_recharge_keeps_its_reason(store):
    await given_meters(store, "M1")
    await store.record_payment(payment("R1"))
    rejected = await store.ack_recharge("M1", 1, "rejected", "bad signature", T0 + 5)
    assert (rejected["status"], rejected["reason"]) == ("rejected", "bad signature")
    assert [r["seq"] for r in await store.list_recharges("M1", "rejected")] == [1]


# consumption history ----------------------------------------------------------------------

async def test_consumption_put_sets_and_day_totals_are_the_sum(store):
    await given_meters(store, "M1")
    await store.put_consumption_hour("M1", "2024-01-15", 7, 800, 200)
    await store.put_consumption_hour("M1", "2024-01-15", 7, 800, 200)  # re-sent: set, not add
    day = await store.put_consumption_hour("M1", "2024-01-15", 18, 1200, 300)
    assert day == {"date": "2024-01-15", "total_consumption_wh": 2000, "cost_cents": 500,
                   "readings": {"07": 800, "18": 1200}, "costs": {"07": 200, "18": 300}}
    corrected = await store.put_consumption_hour("M1", "2024-01-15", 7, 500, 125)
    assert (corrected["total_consumption_wh"], corrected["cost_cents"]) == (1700, 425)


async def test_a_full_day_of_hours(store):
    # every hour 00..23 (Firebase may serve dense integer keys as an array)
    await given_meters(store, "M1")
    for hour in range(24):
        await store.put_consumption_hour("M1", "2024-02-01", hour, hour + 1, 2 * hour)
    [day] = await store.get_consumption("M1", "2024-02-01", "2024-02-01")
    assert day["readings"] == {"%02d" % h: h + 1 for h in range(24)}
    assert day["total_consumption_wh"] == sum(range(1, 25)) == sum(day["readings"].values())
    assert day["cost_cents"] == sum(day["costs"].values())


async def test_consumption_date_range(store):
    await given_meters(store, "M1", "M2")
    for date in ("2024-01-31", "2024-01-29", "2024-02-01", "2024-01-30"):
        await store.put_consumption_hour("M1", date, 0, 10, 3)
    await store.put_consumption_hour("M2", "2024-01-30", 0, 99, 9)
    days = await store.get_consumption("M1", "2024-01-30", "2024-01-31")
    assert [d["date"] for d in days] == ["2024-01-30", "2024-01-31"]
    assert days[0]["readings"] == {"00": 10}
    assert await store.get_consumption("M1", "2025-01-01", "2025-12-31") == []
    for bad in ((24, 1, 1), (-1, 1, 1), (1, 1.5, 1), (1, 1, "3")):
        with pytest.raises(InvalidRecord):
            await store.put_consumption_hour("M1", "2024-01-30", *bad)
    with pytest.raises(InvalidRecord):
        await store.put_consumption_hour("M1", "30/01/2024", 1, 1, 1)


# tariff -----------------------------------------------------------------------------------

async def test_tariff_version_must_increase(store):
    assert await store.get_tariff() is None
    v1 = {"version": 1, "price_cents_per_kwh": 2500}
    await store.set_tariff(v1)
    for stale in (1, 0):
        with pytest.raises(Conflict):
            await store.set_tariff({"version": stale, "price_cents_per_kwh": 1})
    assert await store.get_tariff() == v1
    await store.set_tariff({"version": 2, "price_cents_per_kwh": 2600})
    assert (await store.get_tariff())["price_cents_per_kwh"] == 2600
    with pytest.raises(InvalidRecord):
        await store.set_tariff({"version": "3"})


# backend specifics: power cuts and crashes --------------------------------------------------

async def test_sqlite_credit_is_all_or_nothing(sqlite_store):
    await given_meters(sqlite_store, "M1")
    await sqlite_store.create_stk_request(stk("c1", T0))
    side = sqlite3.connect(sqlite_store.path)
    # the write fails after the transaction row went in: nothing of it may remain
    side.execute("CREATE TRIGGER cut BEFORE INSERT ON recharges "
                 "BEGIN SELECT RAISE(ABORT, 'power cut'); END")
    side.commit()
    with pytest.raises(StoreError):
        await sqlite_store.record_payment(payment("R1", checkout_request_id="c1"))
    assert await sqlite_store.get_transaction_by_receipt("R1") is None
    assert (await sqlite_store.get_meter("M1"))["recharge_seq"] == 0
    assert (await sqlite_store.get_stk_request("c1"))["status"] == "pending"
    side.execute("DROP TRIGGER cut")
    side.commit()
    side.close()
    created, _, rc = await sqlite_store.record_payment(payment("R1", checkout_request_id="c1"))
    assert created and rc["seq"] == 1


async def test_sqlite_survives_reopen_and_keeps_its_schema_version(tmp_path):
    path = tmp_path / "m.sqlite3"
    first = await open_store("sqlite", path=str(path))
    await given_meters(first, "M1")
    await first.record_payment(payment("R1"))
    await first.close()
    again = await SqliteStore.open(path)
    try:
        assert (await again.get_meter("M1"))["recharge_seq"] == 1
        assert await again.record_payment(payment("R1", ts=T0 + 5)) == (
            False, await again.get_transaction_by_receipt("R1"),
            (await again.list_recharges("M1"))[0])
    finally:
        await again.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_two_stores_on_one_file_still_credit_once(tmp_path):
    # two service processes sharing a file: BEGIN IMMEDIATE and the unique receipt decide
    path = tmp_path / "shared.sqlite3"
    one, two = await SqliteStore.open(path), await SqliteStore.open(path)
    try:
        await given_meters(one, "M1")
        results = await asyncio.gather(*(s.record_payment(payment("R1", ts=T0 + i))
                                         for i, s in enumerate([one, two] * 4)))
        assert sum(created for created, _, _ in results) == 1
        assert len(await two.list_recharges("M1")) == 1
    finally:
        await one.close()
        await two.close()


_DIE_MID_WRITE = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE meters SET recharge_seq = 99")
db.execute("INSERT INTO transactions (transaction_id, meter_no, amount_cents, mpesa_receipt,"
           " status, timestamp, recharge_seq) VALUES ('T', 'M1', 1, 'R9', 'SUCCESS', 1, 99)")
os._exit(1)  # the power goes before COMMIT
"""


async def test_sqlite_process_killed_mid_write_leaves_no_trace(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "cut.sqlite3"
    store = await SqliteStore.open(path)
    await given_meters(store, "M1")
    await store.close()
    subprocess.run([sys.executable, "-c", _DIE_MID_WRITE, str(path)], check=False, timeout=30)
    store = await SqliteStore.open(path)
    try:
        assert await store.get_transaction_by_receipt("R9") is None
        assert (await store.get_meter("M1"))["recharge_seq"] == 0
        created, _, rc = await store.record_payment(payment("R9"))
        assert created and rc["seq"] == 1
    finally:
        await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _back_to_schema_1(path):
    """Make a current file look like one written before `checkouts` existed, holding the
    double credit issue #4 made possible: ws_CO_2 credited again under a second receipt."""
    raw = sqlite3.connect(path)
    raw.execute("DROP TABLE checkouts")
    raw.execute("UPDATE schema_version SET version = 1")
    raw.execute("INSERT INTO transactions (transaction_id, meter_no, amount_cents, mpesa_receipt,"
                " status, source, checkout_request_id, timestamp, recharge_seq) VALUES "
                "('TXN_late', 'M1', 50000, 'QKJ2b', 'SUCCESS', 'stk', 'ws_CO_2', ?, 3)",
                (T0 + 5,))
    raw.execute("UPDATE meters SET recharge_seq = 3")
    raw.commit()
    raw.close()


async def test_sqlite_schema_1_file_is_migrated_and_its_history_kept(tmp_path, caplog):
    path = tmp_path / "v1.sqlite3"
    store = await SqliteStore.open(path)
    await given_meters(store, "M1")
    queried = await store.record_payment(by_query("ws_CO_1", ts=T0))
    called = await store.record_payment(by_callback("QKJ2", "ws_CO_2", ts=T0 + 1))
    await store.close()
    _back_to_schema_1(path)
    store = await SqliteStore.open(path)
    try:
        assert "credited more than once" in caplog.text
        late = await store.record_payment(by_callback("QKJ1", "ws_CO_1", ts=T0 + 9))
        assert late == (False, queried[1], queried[2])
        # of a request already credited twice, the earliest transaction stands
        again = await store.record_payment(by_query("ws_CO_2", ts=T0 + 9))
        assert again == (False, called[1], called[2])
        created, _, rc = await store.record_payment(by_callback("QKJ3", "ws_CO_3", ts=T0 + 9))
        assert created and rc["seq"] == 4
        assert len(await store.list_transactions_for_meter("M1")) == 4  # nothing erased
    finally:
        await store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    raw.close()
    assert SCHEMA_VERSION == 3


async def test_sqlite_schema_2_file_gets_token_columns_and_keeps_its_payments(tmp_path):
    path = tmp_path / "v2.sqlite3"
    store = await SqliteStore.open(path)
    await given_meters(store, "M1")
    _, old_tx, _ = await store.record_payment(payment("R1"))
    await store.close()
    raw = sqlite3.connect(path)  # as version 2 code left it: no token columns
    for table, column in (("meters", "token_count"), ("transactions", "token_count"),
                          ("transactions", "token"), ("recharges", "token_count")):
        raw.execute("ALTER TABLE %s DROP COLUMN %s" % (table, column))
    raw.execute("UPDATE schema_version SET version = 2")
    raw.commit()
    raw.close()
    store = await SqliteStore.open(path)
    try:
        assert await store.get_transaction_by_receipt("R1") == old_tx
        created, tx, rc = await store.record_payment(payment("R2", ts=T0 + 1),
                                                     mint=minter([]))
        assert created and rc["seq"] == 2 and (tx["token_count"], rc["token_count"]) == (2, 2)
    finally:
        await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(3,)]


async def test_sqlite_refuses_a_file_from_newer_code(tmp_path):
    path = tmp_path / "new.sqlite3"
    await (await SqliteStore.open(path)).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore.open(path)


async def test_sqlite_two_stores_on_one_file_credit_a_checkout_once(tmp_path):
    # the settle loop in one process, the callback in another
    path = tmp_path / "shared.sqlite3"
    one, two = await SqliteStore.open(path), await SqliteStore.open(path)
    try:
        await race_query_and_callback(one, two)
        await assert_one_credit(two)
    finally:
        await one.close()
        await two.close()


async def test_open_store_from_a_config(tmp_path, rtdb_server, monkeypatch):
    import types

    import firebase_admin
    config = types.SimpleNamespace(store="sqlite", sqlite_path=str(tmp_path / "c.sqlite3"))
    store = await open_store(config)
    assert isinstance(store, SqliteStore) and store.path == config.sqlite_path
    await store.close()
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", rtdb_server.emulator_host)
    config = types.SimpleNamespace(store="firebase", firebase_sa_base64="",
                                   google_application_credentials="",
                                   firebase_database_url="https://cfg-test.firebaseio.com")
    had_default = bool(firebase_admin._apps.get("[DEFAULT]"))
    store = await open_store(config)
    try:
        await given_meters(store, "M1")
        assert (await store.get_meter("M1"))["user_id"] == "u1"
        # opened from config, the store sets up the default app the auth checks rely on
        assert firebase_admin.get_app() is not None
    finally:
        await store.close()
    assert bool(firebase_admin._apps.get("[DEFAULT]")) == had_default


async def test_firebase_takes_over_a_claim_whose_writer_crashed(rtdb_server, monkeypatch):
    from tests.cloud.conftest import open_firebase_store
    store = await open_firebase_store(monkeypatch, rtdb_server.emulator_host,
                                      claim_wait_s=0.05)
    try:
        await given_meters(store, "M1")
        # a writer claimed R1, then died before taking a sequence number
        crashed = dict(payment("R1", ts=T0), owner="dead", state="claimed",
                       transaction_id="TXN_%013d_R1" % T0)
        await asyncio.to_thread(store._ref("receipts", "R1").set, crashed)
        created, tx, rc = await store.record_payment(payment("R1", ts=T0 + 7))
        assert created and rc["seq"] == 1 and tx["timestamp"] == T0  # the claim's payment
        # a writer that died after committing seq 2 is finished by the next duplicate
        committed = dict(payment("R2", ts=T0 + 1), owner="dead", state="committing", seq=2,
                         committed_by="dead", transaction_id="TXN_%013d_R2" % (T0 + 1))
        await asyncio.to_thread(store._ref().update, {"receipts/R2": committed,
                                                      "meters/M1/recharge_seq": 2})
        created, tx, rc = await store.record_payment(payment("R2", ts=T0 + 8))
        assert not created and rc["seq"] == 2 and rc["status"] == "pending"
        assert [r["seq"] for r in await store.list_recharges("M1")] == [1, 2]
        _, _, rc3 = await store.record_payment(payment("R3", ts=T0 + 9))
        assert rc3["seq"] == 3
    finally:
        await store.close()


async def test_firebase_writer_overtaken_mid_payment_does_not_credit_twice(rtdb_server,
                                                                          monkeypatch):
    from tests.cloud.conftest import open_firebase_store
    store = await open_firebase_store(monkeypatch, rtdb_server.emulator_host,
                                      claim_wait_s=0.05)
    try:
        await given_meters(store, "M1")
        ref = store._ref("receipts", "R1")
        slow = dict(payment("R1"), owner="slow", state="claimed",
                    transaction_id="TXN_%013d_R1" % T0)
        await asyncio.to_thread(ref.set, slow)
        # the slow writer stalls; a duplicate takes its claim over and finishes the payment
        created, _, rc = await store.record_payment(payment("R1", ts=T0 + 1))
        assert created and rc["seq"] == 1
        # the slow writer wakes up and tries to commit its own sequence number: refused
        after = await asyncio.to_thread(firebase_credit.commit, store._ref, ref, slow, "slow")
        assert after["committed_by"] != "slow" and after["seq"] == 1
        assert [r["seq"] for r in await store.list_recharges("M1")] == [1]
        _, _, rc = await store.record_payment(payment("R2", ts=T0 + 2))
        assert rc["seq"] == 3  # the refused writer's number stays unused: a gap, not a credit
    finally:
        await store.close()


async def test_firebase_checkout_credited_before_its_index_existed(firebase_store):
    store = firebase_store
    await given_meters(store, "M1")
    queried = await store.record_payment(by_query("ws_CO_1", ts=T0))
    called = await store.record_payment(by_callback("QKJ2", "ws_CO_2", ts=T0 + 1))
    # data written before `checkouts` existed, with the double credit issue #4 allowed
    doubled = await store.record_payment(by_callback("QKJ3", "elsewhere", ts=T0 + 2))
    await asyncio.to_thread(store._ref().update, {
        "checkouts": None,
        "transactions/%s/checkout_request_id" % doubled[1]["transaction_id"]: "ws_CO_2"})
    late = await store.record_payment(by_callback("QKJ1", "ws_CO_1", ts=T0 + 9))
    assert late == (False, queried[1], queried[2])
    again = await store.record_payment(by_query("ws_CO_2", ts=T0 + 9))
    assert again == (False, called[1], called[2])  # the earliest transaction stands
    assert len(await store.list_recharges("M1")) == 3


async def test_firebase_checkout_claimed_by_a_writer_that_died(rtdb_server, monkeypatch):
    from tests.cloud.conftest import open_firebase_store
    store = await open_firebase_store(monkeypatch, rtdb_server.emulator_host,
                                      claim_wait_s=0.05)
    try:
        await given_meters(store, "M1")
        # the callback's writer claimed the checkout, then died before claiming its receipt
        dead = dict(by_callback("QKJ1", "ws_CO_1", ts=T0), transaction_id="TXN_%013d_QKJ1" % T0)
        await asyncio.to_thread(store._ref("checkouts", "ws_CO_1").set, dead)
        # the settle loop's query finishes the dead writer's payment, not its own
        created, tx, rc = await store.record_payment(by_query("ws_CO_1", ts=T0 + 7))
        assert created and tx["mpesa_receipt"] == "QKJ1" and tx["timestamp"] == T0
        assert await store.record_payment(by_callback("QKJ1", "ws_CO_1", ts=T0 + 8)) == (
            False, tx, rc)
        await assert_one_credit(store)
        assert await store.get_transaction_by_receipt("ws_CO_1") is None
    finally:
        await store.close()


async def test_firebase_two_stores_on_one_database_credit_a_checkout_once(rtdb_server,
                                                                          monkeypatch):
    from cloud.store.firebase import FirebaseStore
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", rtdb_server.emulator_host)
    url = "https://mita-two-%s.firebaseio.com" % id(monkeypatch)
    one = await FirebaseStore.open(url, claim_wait_s=2.0)
    two = await FirebaseStore.open(url, claim_wait_s=2.0)
    try:
        results = await race_query_and_callback(one, two)
        assert len({tx["transaction_id"] for _, tx, _ in results}) == 1
        await assert_one_credit(two)
    finally:
        await one.close()
        await two.close()


async def test_open_store_refuses_unknown_backends():
    with pytest.raises(StoreError):
        await open_store("mongodb")
    with pytest.raises(StoreError):
        await open_store("sqlite")


# the rules file ---------------------------------------------------------------------------

def _rules():
    from tests.cloud.conftest import RULES_PATH
    return json.loads(RULES_PATH.read_text())["rules"]


def _walk(node, path=()):
    yield path, node
    for key, child in node.items():
        if not key.startswith(".") and isinstance(child, dict):
            yield from _walk(child, path + (key,))


def _rules_at(rules, pattern):
    node = rules
    for key in pattern.split("/"):
        node = node[key] if key in node else next(v for k, v in node.items()
                                                  if k.startswith("$"))
    return node


def test_rules_index_every_child_the_backends_query():
    from cloud.store.firebase import QUERIED_INDEXES
    rules = _rules()
    wanted = dict(QUERIED_INDEXES, users=("phone_number", "meter_no"))  # reference lookups
    for pattern, children in wanted.items():
        index_on = _rules_at(rules, pattern).get(".indexOn", [])
        for child in children:
            assert child in index_on, "%s needs .indexOn %s" % (pattern, child)


def test_rules_let_clients_write_nothing_but_their_own_name_and_email():
    # Balances, recharges, transactions, receipts: written by the server alone (Admin SDK).
    writable = {"/".join(path) for path, node in _walk(_rules())
                if node.get(".write", False) is not False}
    assert writable == {"users/$uid/name", "users/$uid/email"}
    for path, node in _walk(_rules()):
        assert "current_balance_cents" not in path
        if path[:1] in (("meters",), ("transactions",), ("recharges",), ("receipts",),
                        ("checkouts",)):
            assert ".write" not in node


def test_rules_never_expose_secrets_to_clients():
    rules = _rules()
    for secret in ("device_keys", "api_keys", "user_api_keys", "receipts", "checkouts",
                   "stk_requests", "unmatched_payments"):
        assert all(".read" not in node for _, node in _walk(rules[secret]))
    assert rules[".read"] is False and rules[".write"] is False


async def test_unmatched_payments_are_kept_once_per_receipt_oldest_first(store):
    first = {"receipt": "RKT.1/x", "source": "c2b", "amount_cents": 10000,
             "phone_number": "2547 ***** 126", "bill_ref": "METR 12", "reason": "unknown account",
             "ts": 2000}
    created, record = await store.record_unmatched_payment(first)
    assert created and record["receipt"] == "RKT.1/x" and record["checkout_request_id"] is None
    # a re-sent confirmation, even with other details, changes nothing
    created, record = await store.record_unmatched_payment(dict(first, amount_cents=1, ts=3000))
    assert not created and record["amount_cents"] == 10000 and record["ts"] == 2000
    await store.record_unmatched_payment({"receipt": "QK0", "source": "stk",
                                          "amount_cents": 500, "checkout_request_id": "ws_1",
                                          "ts": 1000})
    listed = await store.list_unmatched_payments()
    assert [r["receipt"] for r in listed] == ["QK0", "RKT.1/x"]
    assert listed[1]["bill_ref"] == "METR 12" and listed[0]["bill_ref"] is None
    for bad in ({"receipt": "R", "amount_cents": 1.5, "ts": 1},
                {"receipt": "", "amount_cents": 1, "ts": 1},
                {"receipt": "R", "amount_cents": 1, "ts": None}):
        with pytest.raises(InvalidRecord):
            await store.record_unmatched_payment(bad)
    assert len(await store.list_unmatched_payments()) == 2
    assert (await store.get_unmatched_payment("QK0"))["checkout_request_id"] == "ws_1"
    assert await store.get_unmatched_payment("QK1") is None


async def test_firebase_meter_left_without_a_key_by_a_crash_is_finished_by_its_owner(
        firebase_store):
    store = firebase_store
    await store.create_user({"user_id": "u1"})
    await store.create_user({"user_id": "u2"})
    # the registration wrote the meter node, then died before its device key
    await asyncio.to_thread(store._ref("meters", "M1").set,
                            {"meter_no": "M1", "user_id": "u1", "recharge_seq": 0})
    with pytest.raises(Conflict):
        await store.create_meter("M1", "u2", "thief-key")  # someone else's half-made meter
    assert await store.get_device_key("M1") is None
    meter = await store.create_meter("M1", "u1", "key-M1")
    assert meter["user_id"] == "u1" and await store.get_device_key("M1") == "key-M1"
    with pytest.raises(Conflict):
        await store.create_meter("M1", "u1", "second-key")  # complete now: a real duplicate
    assert await store.get_device_key("M1") == "key-M1"


# leases -----------------------------------------------------------------------------------

async def test_a_lease_has_one_holder_until_it_runs_out(store):
    assert await store.acquire_lease("settle", "a", 1000, T0) is True
    assert await store.acquire_lease("settle", "b", 1000, T0 + 10) is False
    assert await store.acquire_lease("settle", "a", 1000, T0 + 500) is True  # renewed
    assert await store.acquire_lease("settle", "b", 1000, T0 + 1400) is False
    assert await store.acquire_lease("settle", "b", 1000, T0 + 1501) is True  # a's ran out
    assert await store.acquire_lease("settle", "a", 1000, T0 + 1600) is False
    assert await store.acquire_lease("other", "a", 1000, T0 + 1600) is True  # per name


async def test_concurrent_takers_of_a_free_lease_get_one_holder(store):
    taken = await asyncio.gather(*(store.acquire_lease("settle", h, 1000, T0)
                                   for h in "abcde"))
    assert taken.count(True) == 1
