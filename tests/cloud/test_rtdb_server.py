"""The local RTDB stand-in: raw REST behaviour, then the firebase-admin SDK against it."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import firebase_admin
import pytest
from firebase_admin import db

from standins.rtdb import LocalRtdb, RtdbServer

RULES = {"rules": {"users": {".indexOn": ["phone_number"]},
                   "recharges": {"$meter": {".indexOn": "status"}},
                   "scores": {".indexOn": [".value"]}}}


@pytest.fixture
async def rest(aiohttp_client):
    clock = {"ms": 1_700_000_000_000}
    server = RtdbServer(rules=RULES, clock_ms=lambda: clock["ms"])
    client = await aiohttp_client(server.make_app())
    client.clock = clock
    return client


async def put(client, path, value, **headers):
    return await client.put(path + ".json?ns=t", data=json.dumps(value), headers=headers)


async def get(client, path, query=""):
    resp = await client.get(path + ".json?ns=t" + query)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_put_get_delete_and_silent(rest):
    resp = await put(rest, "/a/b", {"x": 1, "y": [1, 2]})
    assert resp.status == 200 and await resp.json() == {"x": 1, "y": [1, 2]}
    assert await get(rest, "/a") == {"b": {"x": 1, "y": [1, 2]}}
    assert await get(rest, "/missing") is None
    resp = await rest.put("/a/c.json?ns=t&print=silent", data="5")
    assert resp.status == 204 and await resp.read() == b""
    await rest.delete("/a/b.json?ns=t")
    assert await get(rest, "/a") == {"c": 5}
    await rest.delete("/a/c.json?ns=t")
    assert await get(rest, "/") is None  # emptied parents vanish, as in Firebase


async def test_patch_multi_path_and_null_deletes(rest):
    await put(rest, "/m", {"a": {"k": 1, "j": 2}, "b": 3})
    resp = await rest.patch("/m.json?ns=t&print=silent",
                            data=json.dumps({"a/k": 10, "b": None, "c/d/e": "x"}))
    assert resp.status == 204
    assert await get(rest, "/m") == {"a": {"k": 10, "j": 2}, "c": {"d": {"e": "x"}}}


async def test_bad_writes_change_nothing(rest):
    await put(rest, "/m", {"a": 1})
    for body in (b"\xff\xfe garbage", b"{not json", json.dumps({"ok": 1, "a.b": 2}).encode(),
                 json.dumps({"x": {"bad/key": 1}}).encode()):
        resp = await rest.put("/m.json?ns=t", data=body)
        assert resp.status == 400 and "error" in await resp.json()
    resp = await rest.patch("/m.json?ns=t", data=json.dumps({"a": 2, "b$": 3}))
    assert resp.status == 400
    resp = await rest.patch("/m.json?ns=t", data="[1, 2]")
    assert resp.status == 400
    assert await get(rest, "/m") == {"a": 1}
    assert (await rest.get("/m?ns=t")).status == 404  # not a .json path


async def test_push_ids_sort_in_creation_order(rest):
    names = []
    for i in range(5):  # same millisecond: the random tail still counts up
        resp = await rest.post("/log.json?ns=t", data=json.dumps({"i": i}))
        names.append((await resp.json())["name"])
    rest.clock["ms"] += 1
    resp = await rest.post("/log.json?ns=t", data=json.dumps({"i": 5}))
    names.append((await resp.json())["name"])
    assert names == sorted(names) and len(set(names)) == 6 and all(len(n) == 20 for n in names)
    log = await get(rest, "/log")
    assert [log[n]["i"] for n in sorted(log)] == list(range(6))


async def test_etags_and_conditional_writes(rest):
    await put(rest, "/c", 1)
    resp = await rest.get("/c.json?ns=t", headers={"X-Firebase-ETag": "true"})
    etag = resp.headers["ETag"]
    resp = await rest.put("/c.json?ns=t", data="2", headers={"if-match": etag})
    assert resp.status == 200 and resp.headers["ETag"] != etag
    resp = await rest.put("/c.json?ns=t", data="3", headers={"if-match": etag})  # stale
    assert resp.status == 412 and await resp.json() == 2
    assert resp.headers["ETag"] != etag
    assert await get(rest, "/c") == 2
    fresh = resp.headers["ETag"]
    assert (await rest.get("/c.json?ns=t", headers={"if-none-match": fresh})).status == 304


async def test_conditional_create_of_a_missing_node(rest):
    resp = await rest.get("/new.json?ns=t", headers={"X-Firebase-ETag": "true"})
    null_etag = resp.headers["ETag"]
    assert (await rest.put("/new.json?ns=t", data='"a"', headers={"if-match": null_etag})
            ).status == 200
    assert (await rest.put("/new.json?ns=t", data='"b"', headers={"if-match": null_etag})
            ).status == 412


async def test_shallow_and_server_timestamp(rest):
    await put(rest, "/s", {"obj": {"deep": 1}, "n": 4, "at": {".sv": "timestamp"}})
    assert await get(rest, "/s", "&shallow=true") == {"obj": True, "n": 4,
                                                      "at": 1_700_000_000_000}
    resp = await put(rest, "/s/x", {".sv": "increment"})
    assert resp.status == 400


async def test_dense_integer_keys_come_back_as_an_array(rest):
    await put(rest, "/arr", {"0": "a", "1": "b", "3": "d"})
    assert await get(rest, "/arr") == ["a", "b", None, "d"]
    await put(rest, "/sparse", {"1": "a", "9": "b"})
    assert await get(rest, "/sparse") == {"1": "a", "9": "b"}
    await put(rest, "/hours", {"07": 1, "18": 2})  # leading zeros are not integers
    assert await get(rest, "/hours") == {"07": 1, "18": 2}


async def test_order_by_child_filters_and_limits(rest):
    users = {"u1": {"phone_number": "2547001"}, "u2": {"phone_number": "2547002"},
             "u3": {"phone_number": "2547003"}, "u4": {"name": "no phone"}}
    await put(rest, "/users", users)
    q = '&orderBy="phone_number"'
    assert await get(rest, "/users", q + '&equalTo="2547002"') == {"u2": users["u2"]}
    assert set(await get(rest, "/users", q + '&startAt="2547002"')) == {"u2", "u3"}
    assert set(await get(rest, "/users", q + '&endAt="2547002"')) == {"u1", "u2", "u4"}
    assert set(await get(rest, "/users", q + "&limitToFirst=2")) == {"u4", "u1"}  # null first
    assert set(await get(rest, "/users", q + "&limitToLast=2")) == {"u2", "u3"}
    assert await get(rest, "/users", q + '&equalTo="nobody"') == {}


async def test_order_by_key_and_value(rest):
    await put(rest, "/days", {"2024-01-01": 1, "2024-01-02": 2, "2024-01-03": 3})
    got = await get(rest, "/days", '&orderBy="$key"&startAt="2024-01-02"&endAt="2024-01-02"')
    assert got == {"2024-01-02": 2}
    await put(rest, "/scores", {"a": 30, "b": 10, "c": 20})
    assert await get(rest, "/scores", '&orderBy="$value"&limitToLast=2') == {"a": 30, "c": 20}


async def test_unindexed_queries_are_refused_like_firebase(rest):
    await put(rest, "/users", {"u1": {"email": "x"}})
    resp = await rest.get('/users.json?ns=t&orderBy="email"&equalTo="x"')
    assert resp.status == 400
    assert "Index not defined" in (await resp.json())["error"]
    ok = await rest.get('/recharges/M1.json?ns=t&orderBy="status"&equalTo="pending"')
    assert ok.status == 200  # indexed under a $wildcard
    for bad in ("&limitToFirst=2", '&orderBy="$key"&limitToLast=-1', "&orderBy=notjson"):
        assert (await rest.get("/users.json?ns=t" + bad)).status == 400


async def test_namespaces_are_separate_databases(rest):
    await rest.put("/k.json?ns=one", data="1")
    await rest.put("/k.json?ns=two", data="2")
    assert await (await rest.get("/k.json?ns=one")).json() == 1
    assert await (await rest.get("/k.json?ns=two")).json() == 2


# through the SDK ------------------------------------------------------------------------------

@pytest.fixture
def sdk_root(rtdb_server, monkeypatch):
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", rtdb_server.emulator_host)
    app = firebase_admin.initialize_app(
        None, {"databaseURL": "https://sdk-%s.firebaseio.com" % uuid.uuid4().hex[:10]},
        name="sdk-test-" + uuid.uuid4().hex)
    yield db.reference("/", app=app)
    firebase_admin.delete_app(app)


def test_sdk_works_without_credentials_in_emulator_mode(sdk_root):
    sdk_root.child("users/u1").set({"phone_number": "2547", "name": "A"})
    sdk_root.child("users/u1").update({"name": "B"})
    pushed = sdk_root.child("log").push({"n": 1})
    assert sdk_root.child("log").child(pushed.key).get() == {"n": 1}
    found = sdk_root.child("users").order_by_child("phone_number").equal_to("2547").get()
    assert dict(found) == {"u1": {"phone_number": "2547", "name": "B"}}


def test_sdk_transaction_retries_after_a_concurrent_write(sdk_root):
    counter = sdk_root.child("counter")
    counter.set(1)
    calls = []

    def bump(current):
        calls.append(current)
        if len(calls) == 1:
            counter.set(10)  # another writer sneaks in between read and write
        return current + 1
    assert counter.transaction(bump) == 11
    assert calls == [1, 10] and counter.get() == 11


def test_sdk_set_if_unchanged_reports_the_current_value(sdk_root):
    ref = sdk_root.child("v")
    ref.set("a")
    _, etag = ref.get(etag=True)
    ref.set("b")
    ok, value, new_etag = ref.set_if_unchanged(etag, "c")
    assert (ok, value) == (False, "b") and new_etag != etag


async def test_concurrent_sdk_transactions_lose_no_increment(sdk_root):
    counter = sdk_root.child("n")
    await asyncio.gather(*(asyncio.to_thread(counter.transaction, lambda v: (v or 0) + 1)
                           for _ in range(10)))
    assert counter.get() == 10


def test_local_rtdb_starts_and_stops_on_a_free_port():
    with LocalRtdb() as server:
        assert server.port > 0
        with socket.create_connection((server.host, server.port), timeout=2):
            pass
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=0.2).close()


def test_runs_as_a_module(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    proc = subprocess.Popen([sys.executable, "-m", "standins.rtdb", "--port", str(port),
                             "--rules", str(rules)], stdout=subprocess.PIPE,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert "FIREBASE_DATABASE_EMULATOR_HOST=127.0.0.1:%d" % port in (
            proc.stdout.readline().decode())
        for _ in range(200):  # the banner prints just before the socket binds
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.01)
        import urllib.request
        url = 'http://127.0.0.1:%d/users.json?orderBy="email"' % port
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=2)
        assert refused.value.code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=10)
