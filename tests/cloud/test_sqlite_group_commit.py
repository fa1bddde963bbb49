"""Group commit in the SQLite store: writes that arrive together share one COMMIT, each in its
own savepoint; a write that fails fails alone and leaves nothing behind; a COMMIT that fails
fails every write it held; a caller hears back only once its write is on the disk."""
import asyncio
import sqlite3

import pytest

from cloud.store import NotFound, StoreError
from cloud.store.sqlite import MAX_BATCH, SqliteStore


@pytest.fixture
async def store(tmp_path):
    s = await SqliteStore.open(tmp_path / "mita.sqlite3")
    yield s
    await s.close()


def other_connection(store):
    db = sqlite3.connect(store.path)
    db.row_factory = sqlite3.Row
    return db


def user(n):
    return {"user_id": "u%03d" % n, "name": "User %d" % n}


async def test_writes_that_arrive_together_share_one_commit(store):
    commits = store.commits
    await asyncio.gather(*(store.create_user(user(n)) for n in range(50)))
    assert store.commits - commits == 1
    db = other_connection(store)  # acknowledged means committed: another reader sees all 50
    assert db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 50


async def test_a_batch_is_bounded(store):
    commits = store.commits
    await asyncio.gather(*(store.create_user(user(n)) for n in range(MAX_BATCH + 10)))
    assert store.commits - commits == 2


async def test_a_write_that_fails_fails_alone_and_leaves_nothing(store):
    await store.create_user(user(1))

    def half_then_fail(db):
        db.execute("INSERT INTO users (user_id, name, role) VALUES ('half', 'Half', 'customer')")
        raise NotFound("the second half of this write could not be done")

    results = await asyncio.gather(store.create_user(user(2)), store._write(half_then_fail),
                                   store.create_user(user(1)),  # a duplicate: refused
                                   store.create_user(user(3)), return_exceptions=True)
    assert results[0] is None or not isinstance(results[0], Exception)
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], Exception)
    assert not isinstance(results[3], Exception)
    db = other_connection(store)
    ids = [r[0] for r in db.execute("SELECT user_id FROM users ORDER BY user_id")]
    assert ids == ["u001", "u002", "u003"]  # no trace of the failed write's first half


async def test_a_commit_that_fails_fails_every_write_in_it(store):
    await store.create_user(user(1))

    def orphan_meter(db):
        # checked at COMMIT, not at the INSERT: the commit itself fails
        db.execute("PRAGMA defer_foreign_keys=ON")
        db.execute("INSERT INTO meters (meter_no, user_id, device_key, created_at) "
                   "VALUES ('MORPHAN', 'nobody', 'k', 0)")

    results = await asyncio.gather(store.create_user(user(2)), store._write(orphan_meter),
                                   return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results), results
    db = other_connection(store)
    assert [r[0] for r in db.execute("SELECT user_id FROM users")] == ["u001"]
    assert db.execute("SELECT COUNT(*) FROM meters").fetchone()[0] == 0
    await store.create_user(user(4))  # and the store goes on working
    assert await store.get_user("u004") is not None


async def test_close_waits_for_writes_already_asked_for(tmp_path):
    s = await SqliteStore.open(tmp_path / "mita.sqlite3")
    writes = [asyncio.ensure_future(s.create_user(user(n))) for n in range(20)]
    await asyncio.sleep(0)
    await s.close()
    assert all(w.done() and w.exception() is None for w in writes)
    db = sqlite3.connect(str(tmp_path / "mita.sqlite3"))
    assert db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 20
