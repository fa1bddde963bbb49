"""The store's abuse-limit counters (take_rate_slot), against every backend: counts survive a
reopened store and are shared by two stores on the same database (two instances)."""

import asyncio

import pytest

from cloud.store import InvalidRecord
from cloud.store.sqlite import SqliteStore

T0 = 1_700_000_000_000
MINUTE = 60_000


async def test_a_key_takes_its_limit_then_refuses_until_the_oldest_event_leaves(store):
    key = "phone:254712345678"
    limits = [(key, 3, 10 * MINUTE)]
    for i in range(3):
        assert await store.take_rate_slot(limits, T0 + i * MINUTE) == (0, None)
    # full: the first event (at T0) leaves the window at T0 + 10 min
    assert await store.take_rate_slot(limits, T0 + 4 * MINUTE) == (6 * MINUTE, key)
    assert await store.take_rate_slot(limits, T0 + 10 * MINUTE - 1) == (1, key)
    assert await store.take_rate_slot(limits, T0 + 10 * MINUTE) == (0, None)
    # a refused take counted nothing: the next slot frees with the second event
    assert await store.take_rate_slot(limits, T0 + 10 * MINUTE) == (MINUTE, key)


async def test_keys_are_counted_all_or_none(store):
    phone, meter = ("phone:254700000001", 1, MINUTE), ("meter:M1", 2, MINUTE)
    assert await store.take_rate_slot([phone, meter], T0) == (0, None)
    # the phone is full: the meter must not be charged for the refused push
    assert await store.take_rate_slot([meter, phone], T0 + 1) == (MINUTE - 1, phone[0])
    assert await store.take_rate_slot([meter], T0 + 2) == (0, None)
    assert await store.take_rate_slot([meter], T0 + 3) == (MINUTE - 3, meter[0])
    other = ("phone:254700000002", 1, MINUTE)
    assert await store.take_rate_slot([other], T0 + 3) == (0, None)  # keys are apart


async def test_concurrent_takes_never_pass_the_limit(store):
    limits = [("customer:u1", 5, MINUTE)]
    answers = await asyncio.gather(*(store.take_rate_slot(limits, T0 + i) for i in range(12)))
    assert sum(1 for a in answers if a == (0, None)) <= 5
    assert await store.take_rate_slot(limits, T0 + 20) != (0, None)


async def test_limits_are_checked(store):
    for bad in ([], [("", 1, 1)], [("k", 0, 1)], [("k", 1, 0)], [("k", 1.5, 1)],
                [("k", 1, 24 * 60 * MINUTE + 1)]):
        with pytest.raises(InvalidRecord):
            await store.take_rate_slot(bad, T0)


async def test_sqlite_counts_survive_a_restart_and_are_shared_by_two_instances(tmp_path):
    path = tmp_path / "mita.sqlite3"
    limits = [("phone:254712345678", 2, MINUTE)]
    first = await SqliteStore.open(path)
    assert await first.take_rate_slot(limits, T0) == (0, None)
    second = await SqliteStore.open(path)  # another instance on the same file
    assert await second.take_rate_slot(limits, T0 + 1) == (0, None)
    assert await first.take_rate_slot(limits, T0 + 2) == (MINUTE - 2, limits[0][0])
    await first.close()
    await second.close()
    reopened = await SqliteStore.open(path)  # a restart
    try:
        assert await reopened.take_rate_slot(limits, T0 + 3) == (MINUTE - 3, limits[0][0])
    finally:
        await reopened.close()


async def test_firebase_counts_are_shared_by_two_instances(firebase_store):
    from cloud.store.firebase import FirebaseStore
    limits = [("phone:254712345678", 2, MINUTE)]
    url = firebase_store._app.options.get("databaseURL")
    other = await FirebaseStore.open(url, claim_wait_s=2.0)
    try:
        assert await firebase_store.take_rate_slot(limits, T0) == (0, None)
        assert await other.take_rate_slot(limits, T0 + 1) == (0, None)
        assert await firebase_store.take_rate_slot(limits, T0 + 2) == (MINUTE - 2, limits[0][0])
    finally:
        await other.close()


async def test_asking_without_counting_answers_the_same_and_counts_nothing(store):
    limits = [("auth:10.0.0.1", 2, MINUTE)]
    for _ in range(5):
        assert await store.take_rate_slot(limits, T0, count=False) == (0, None)
    assert await store.take_rate_slot(limits, T0) == (0, None)
    assert await store.take_rate_slot(limits, T0 + 1) == (0, None)
    assert await store.take_rate_slot(limits, T0 + 2, count=False) == (MINUTE - 2, limits[0][0])


async def test_a_shorter_window_elsewhere_does_not_forget_a_longer_ones_events(store):
    push = ("stk:phone:254712345678", 1, 10 * MINUTE)
    assert await store.take_rate_slot([push], T0) == (0, None)
    assert await store.take_rate_slot([("auth:10.0.0.1", 5, 5 * MINUTE)], T0 + 6 * MINUTE) \
        == (0, None)
    assert await store.take_rate_slot([push], T0 + 7 * MINUTE) == (3 * MINUTE, push[0])
