"""Store fixtures for every cloud test: `store` runs a test once per backend, `sqlite_store`
and `firebase_store` pick one. Firebase goes through the real firebase-admin SDK to the local
RTDB stand-in (standins.rtdb, enforcing database.rules.json indexes) via
FIREBASE_DATABASE_EMULATOR_HOST; set MITA_FIREBASE_EMULATOR_HOST=host:port to also run
against Firebase's own emulator."""

import json
import os
import pathlib
import uuid

import pytest

from standins.rtdb import LocalRtdb
from cloud.store.sqlite import SqliteStore

RULES_PATH = pathlib.Path(__file__).resolve().parents[2] / "database.rules.json"
REAL_EMULATOR = os.environ.get("MITA_FIREBASE_EMULATOR_HOST", "")


@pytest.fixture(scope="session")
def rtdb_server():
    """One local RTDB for the session; tests stay apart by using a namespace each."""
    with LocalRtdb(rules=json.loads(RULES_PATH.read_text())) as server:
        yield server


async def open_firebase_store(monkeypatch, emulator_host, **options):
    from cloud.store.firebase import FirebaseStore
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", emulator_host)
    namespace = "mita-test-" + uuid.uuid4().hex[:12]
    return await FirebaseStore.open("https://%s.firebaseio.com" % namespace,
                                    claim_wait_s=options.pop("claim_wait_s", 2.0), **options)


@pytest.fixture
async def sqlite_store(tmp_path):
    store = await SqliteStore.open(tmp_path / "mita.sqlite3")
    yield store
    await store.close()


@pytest.fixture
async def firebase_store(rtdb_server, monkeypatch):
    store = await open_firebase_store(monkeypatch, rtdb_server.emulator_host)
    yield store
    await store.close()


# Firebase's own emulator joins only when asked for (it needs Java 21 and a download).
_BACKENDS = ["sqlite", "firebase"] + (["firebase-emulator"] if REAL_EMULATOR else [])


@pytest.fixture(params=_BACKENDS)
async def store(request, tmp_path, monkeypatch):
    """The same test against each backend."""
    if request.param == "sqlite":
        opened = await SqliteStore.open(tmp_path / "mita.sqlite3")
    elif request.param == "firebase":
        host = request.getfixturevalue("rtdb_server").emulator_host
        opened = await open_firebase_store(monkeypatch, host)
    else:
        opened = await open_firebase_store(monkeypatch, REAL_EMULATOR)
    yield opened
    await opened.close()
