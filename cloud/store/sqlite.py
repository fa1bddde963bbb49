"""The embedded store: one SQLite file (WAL), one worker thread, every credit in one transaction.

Writes are group-committed: writes that arrive while a commit is on the disk wait for it to end
and then go to the disk together, each in a savepoint of one transaction, so one fsync covers
them all. A write that fails rolls back to its own savepoint and fails alone; a commit that fails
fails every write in it. Each caller is answered only after the COMMIT that holds its write, so
"acknowledged" still means "durable"; the order of writes is the order they were asked for, so
the exactly-once rules (which read, then write, inside the write) see what they saw before."""

import asyncio
import concurrent.futures
import json
import sqlite3
import time
import uuid

from .base import (AUDIT_FIELDS, METER_FIELDS, RECHARGE_FIELDS, STK_FIELDS, TX_FIELDS,
                   UNMATCHED_FIELDS, USER_FIELDS, Conflict, InvalidRecord, NotFound, Store,
                   StoreError, audit_record, cents, check_date, check_field_names, check_hour,
                   check_limits, next_recharge_status, prefix_bounds, transaction_id_for,
                   unmatched_record)
from .sqlite_queries import (consumption_days, credit_payment, fetch_one, read_meter,
                             read_recharge, read_stk, read_tx_by_receipt, read_unmatched,
                             read_user, take_rate_slot)
from .sqlite_schema import insert_row, meter_record, open_database, select


def _now_ms():
    return int(time.time() * 1000)


def _store_error(error):
    """What a caller sees: the store's own errors as they are, SQLite's as StoreError."""
    if isinstance(error, sqlite3.Error):
        wrapped = StoreError("sqlite: %s" % error)
        wrapped.__cause__ = error
        return wrapped
    return error


# The most writes one commit takes: a bound on the transaction's size (and on the time a read
# queued behind it waits), not a wait for company: a batch never waits for more writes to come.
MAX_BATCH = 256


class SqliteStore(Store):
    """All SQL runs on one worker thread that owns the only connection."""

    def __init__(self, path):
        self.path = str(path)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._db = None
        self._queued = []  # [(fn, args, future)] waiting for the next commit
        self._committing = False
        self._idle = asyncio.Event()  # set whenever nothing is queued or committing
        self._idle.set()
        self.commits = 0  # for the benchmark and the tests: writes / commits = the batching
        self.writes = 0

    @classmethod
    async def open(cls, path):
        store = cls(path)
        await store._run(store._open)
        return store

    def _open(self):
        self._db = open_database(self.path)

    async def _run(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    async def _write(self, fn, *args):
        """fn(db, *args) in a transaction: all of it or none of it; returns once committed."""
        future = asyncio.get_running_loop().create_future()
        self._queued.append((fn, args, future))
        if not self._committing:
            self._committing = True
            self._idle.clear()
            asyncio.get_running_loop().create_task(self._commit_queued())
        return await future

    async def _commit_queued(self):
        try:
            while self._queued:
                batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
                try:
                    outcomes = await self._run(self._commit_batch, batch)
                except BaseException as error:  # the worker itself failed: nobody was written
                    outcomes = [(False, error)] * len(batch)
                for (_, _, future), (ok, value) in zip(batch, outcomes):
                    if not future.done():
                        future.set_result(value) if ok else future.set_exception(value)
        finally:
            self._committing = False
            self._idle.set()

    def _commit_batch(self, batch):
        """On the worker: one transaction, one savepoint per write; [(ok, result or error)]."""
        db = self._db
        outcomes = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for fn, args, _ in batch:
                db.execute("SAVEPOINT write")
                try:
                    value = fn(db, *args)
                except Exception as error:
                    db.execute("ROLLBACK TO write")
                    db.execute("RELEASE write")
                    outcomes.append((False, _store_error(error)))
                    continue
                db.execute("RELEASE write")
                outcomes.append((True, value))
            db.execute("COMMIT")
        except BaseException as error:
            # BEGIN or COMMIT failed (disk full, I/O error): none of these writes is durable
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return [(False, _store_error(error) if isinstance(error, Exception) else error)
                    for _ in batch]
        self.commits += 1
        self.writes += len(batch)
        return outcomes

    async def _read(self, fn, *args):
        try:
            return await self._run(lambda: fn(self._db, *args))
        except sqlite3.Error as error:
            raise StoreError("sqlite: %s" % error) from error

    async def close(self):
        await self._idle.wait()  # every write asked for is committed (or failed) first
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    # users and meters -------------------------------------------------------------------
    async def create_user(self, user):
        record = {f: user.get(f) for f in USER_FIELDS}
        record["user_id"] = record["user_id"] or uuid.uuid4().hex
        record["role"] = record["role"] or "customer"
        if record["created_at"] is None:
            record["created_at"] = _now_ms()

        def insert(db):
            if db.execute("SELECT 1 FROM users WHERE user_id = ?",
                          (record["user_id"],)).fetchone():
                raise Conflict("user %s exists" % record["user_id"])
            insert_row(db, "users", record, USER_FIELDS)
            return record
        return await self._write(insert)

    async def get_user(self, user_id):
        return await self._read(read_user, user_id)

    async def find_user_by_api_key_hash(self, key_hash):
        return await self._read(fetch_one, USER_FIELDS, "users", "WHERE api_key_hash = ?",
                                (key_hash,))

    async def set_user_api_key_hash(self, user_id, key_hash):
        def update(db):
            if db.execute("UPDATE users SET api_key_hash = ? WHERE user_id = ?",
                          (key_hash, user_id)).rowcount == 0:
                raise NotFound("user %s" % user_id)
        try:
            await self._write(update)
        except StoreError as error:
            if isinstance(error.__cause__, sqlite3.IntegrityError):
                raise Conflict("API key hash already in use") from error
            raise

    async def create_meter(self, meter_no, user_id, device_key):
        now = _now_ms()

        def insert(db):
            if read_user(db, user_id) is None:
                raise NotFound("user %s" % user_id)
            if db.execute("SELECT 1 FROM meters WHERE meter_no = ?", (meter_no,)).fetchone():
                raise Conflict("meter %s exists" % meter_no)
            db.execute("INSERT INTO meters (meter_no, user_id, device_key, created_at, "
                       "last_update) VALUES (?, ?, ?, ?, ?)",
                       (meter_no, user_id, device_key, now, now))
            # the reference schema keeps the user's meter on the user record
            db.execute("UPDATE users SET meter_no = ? WHERE user_id = ? AND meter_no IS NULL",
                       (meter_no, user_id))
            return read_meter(db, meter_no)
        return await self._write(insert)

    async def get_meter(self, meter_no):
        return await self._read(read_meter, meter_no)

    async def list_meters(self, user_id=None):
        def find(db):
            sql = select(METER_FIELDS, "meters")
            rows = (db.execute(sql + "WHERE user_id = ? ORDER BY meter_no", (user_id,))
                    if user_id is not None else db.execute(sql + "ORDER BY meter_no"))
            return [meter_record(r) for r in rows]
        return await self._read(find)

    async def list_meters_page(self, after=None, limit=100, prefix=None):
        low, high = prefix_bounds(prefix) if prefix else ("", "\U0010ffff")

        def find(db):
            rows = db.execute(select(METER_FIELDS, "meters") + "WHERE meter_no > ? AND "
                              "meter_no >= ? AND meter_no < ? ORDER BY meter_no LIMIT ?",
                              (after or "", low, high, limit))
            return [meter_record(r) for r in rows]
        return await self._read(find)

    async def get_device_key(self, meter_no):
        def find(db):
            row = db.execute("SELECT device_key FROM meters WHERE meter_no = ?",
                             (meter_no,)).fetchone()
            return row[0] if row else None
        return await self._read(find)

    async def set_device_key(self, meter_no, device_key):
        def change(db):
            if db.execute("UPDATE meters SET device_key = ? WHERE meter_no = ?",
                          (device_key, meter_no)).rowcount == 0:
                raise NotFound("meter %s" % meter_no)
        await self._write(change)

    async def update_meter_balance(self, meter_no, balance_cents, ts):
        cents(balance_cents, "balance_cents")

        def update(db):
            if db.execute("UPDATE meters SET current_balance_cents = ?, last_update = ? "
                          "WHERE meter_no = ?", (balance_cents, ts, meter_no)).rowcount == 0:
                raise NotFound("meter %s" % meter_no)
            return read_meter(db, meter_no)
        return await self._write(update)

    async def update_meter_status(self, meter_no, status, ts, state_at=None):
        if state_at is None:
            return await self._merge_json(meter_no, "status", dict(status, last_seen=ts))
        return await self._merge_json(meter_no, "status",
                                      dict(status, last_seen=ts, state_at=state_at),
                                      newer_than="state_at")

    async def update_meter_alerts(self, meter_no, alerts):
        return await self._merge_json(meter_no, "alerts", dict(alerts))

    async def claim_nonce(self, meter_no, nonce, ts, window_s, now, limit=4096):
        def claim(db):
            db.execute("DELETE FROM nonces WHERE meter_no = ? AND ts < ?",
                       (meter_no, int(now - window_s)))
            if db.execute("SELECT 1 FROM nonces WHERE meter_no = ? AND nonce = ?",
                          (meter_no, nonce)).fetchone():
                return "replayed"
            if db.execute("SELECT COUNT(*) FROM nonces WHERE meter_no = ?",
                          (meter_no,)).fetchone()[0] >= limit:
                return "full"
            db.execute("INSERT INTO nonces (meter_no, nonce, ts) VALUES (?, ?, ?)",
                       (meter_no, nonce, int(ts)))
            return "ok"
        return await self._write(claim)

    async def acquire_lease(self, name, holder, ttl_ms, now_ms):
        def take(db):
            row = db.execute("SELECT holder, expires_at FROM leases WHERE name = ?",
                             (name,)).fetchone()
            if row is not None and row[0] != holder and row[1] > now_ms:
                return False
            db.execute("INSERT OR REPLACE INTO leases (name, holder, expires_at) "
                       "VALUES (?, ?, ?)", (name, holder, int(now_ms + ttl_ms)))
            return True
        return await self._write(take)

    async def write_telemetry(self, readings):
        for balance, alerts, _ in readings.values():
            if balance is not None:
                cents(balance, "balance_cents")
            check_field_names(alerts or {})

        def write(db):
            unknown = []
            for meter_no, (balance, alerts, ts) in readings.items():
                meter = read_meter(db, meter_no)
                if meter is None:
                    unknown.append(meter_no)
                    continue
                if balance is not None:
                    db.execute("UPDATE meters SET current_balance_cents = ?, last_update = ? "
                               "WHERE meter_no = ?", (balance, ts, meter_no))
                if alerts:
                    db.execute("UPDATE meters SET alerts = ? WHERE meter_no = ?",
                               (json.dumps(dict(meter["alerts"], **alerts), sort_keys=True),
                                meter_no))
            return unknown
        return await self._write(write)

    async def _merge_json(self, meter_no, column, fields, newer_than=None):
        """Merge fields into a JSON column; with newer_than, only if the stored value of that
        field is not above the new one."""
        check_field_names(fields)
        def merge(db):
            meter = read_meter(db, meter_no)
            if meter is None:
                raise NotFound("meter %s" % meter_no)
            if newer_than and (meter[column].get(newer_than) or 0) > fields[newer_than]:
                return meter
            merged = dict(meter[column], **fields)
            db.execute("UPDATE meters SET %s = ? WHERE meter_no = ?" % column,
                       (json.dumps(merged, sort_keys=True), meter_no))
            meter[column] = merged
            return meter
        return await self._write(merge)

    # STK requests -----------------------------------------------------------------------
    async def create_stk_request(self, request):
        record = {f: request.get(f) for f in STK_FIELDS}
        record["status"] = record["status"] or "pending"
        if record["amount_cents"] is not None:
            cents(record["amount_cents"])
        if record["created_at"] is None:
            record["created_at"] = _now_ms()

        def insert(db):
            if read_stk(db, record["checkout_request_id"]):
                raise Conflict("STK request %s exists" % record["checkout_request_id"])
            insert_row(db, "stk_requests", record, STK_FIELDS)
            return record
        return await self._write(insert)

    async def get_stk_request(self, checkout_request_id):
        return await self._read(read_stk, checkout_request_id)

    async def list_pending_stk_requests(self, created_before):
        def find(db):
            rows = db.execute(select(STK_FIELDS, "stk_requests") + "WHERE status = 'pending'"
                              " AND created_at < ? ORDER BY created_at, checkout_request_id",
                              (created_before,))
            return [dict(r) for r in rows]
        return await self._read(find)

    async def list_stk_requests(self, status, limit=50):
        def find(db):
            rows = db.execute(select(STK_FIELDS, "stk_requests") + "WHERE status = ? ORDER BY "
                              "created_at DESC, checkout_request_id DESC LIMIT ?",
                              (status, limit))
            return [dict(r) for r in rows]
        return await self._read(find)

    async def fail_stk_request(self, checkout_request_id, result_code, result_desc, ts):
        def fail(db):
            stk = read_stk(db, checkout_request_id)
            if stk is None:
                raise NotFound("STK request %s" % checkout_request_id)
            if stk["status"] != "pending":
                return False
            db.execute("UPDATE stk_requests SET status = 'failed', result_code = ?, "
                       "result_desc = ?, settled_at = ? WHERE checkout_request_id = ?",
                       (result_code, result_desc, ts, checkout_request_id))
            return True
        return await self._write(fail)

    # the credit path --------------------------------------------------------------------
    async def record_payment(self, payment, mint=None):
        cents(payment.get("amount_cents"))
        receipt = payment.get("receipt")
        tx_id = transaction_id_for(receipt, payment["ts"])
        audit_record(payment, tx_id)  # refused before the write, not inside it
        return await self._write(credit_payment, payment, tx_id, mint)

    async def get_transaction_by_receipt(self, receipt):
        return await self._read(read_tx_by_receipt, receipt)

    async def list_audit(self, meter_no, limit=50):
        def find(db):
            rows = db.execute(select(AUDIT_FIELDS, "audit") + "WHERE meter_no = ? ORDER BY "
                              "ts DESC, transaction_id DESC LIMIT ?", (meter_no, int(limit)))
            return [dict(r) for r in rows]
        return await self._read(find)

    async def list_transactions_for_user(self, user_id, limit=50):
        return await self._list_transactions("user_id", user_id, limit)

    async def list_transactions_for_meter(self, meter_no, limit=50):
        return await self._list_transactions("meter_no", meter_no, limit)

    async def _list_transactions(self, column, value, limit):
        def find(db):
            rows = db.execute(select(TX_FIELDS, "transactions") + "WHERE %s = ? ORDER BY "
                              "timestamp DESC, transaction_id DESC LIMIT ?" % column,
                              (value, int(limit)))
            return [dict(r) for r in rows]
        return await self._read(find)

    async def record_unmatched_payment(self, record):
        record = unmatched_record(record)

        def insert(db):
            row = read_unmatched(db, record["receipt"])
            if row is not None:
                return False, row
            insert_row(db, "unmatched_payments", record, UNMATCHED_FIELDS)
            return True, record
        return await self._write(insert)

    async def get_unmatched_payment(self, receipt):
        return await self._read(read_unmatched, receipt)

    async def list_unmatched_payments(self, limit=500):
        def find(db):
            rows = db.execute(select(UNMATCHED_FIELDS, "unmatched_payments") +
                              "ORDER BY ts, receipt LIMIT ?", (int(limit),))
            return [dict(r) for r in rows]
        return await self._read(find)

    # recharges --------------------------------------------------------------------------
    async def list_recharges(self, meter_no, status=None):
        def find(db):
            sql = select(RECHARGE_FIELDS, "recharges") + "WHERE meter_no = ? "
            if status is None:
                rows = db.execute(sql + "ORDER BY seq", (meter_no,))
            else:
                rows = db.execute(sql + "AND status = ? ORDER BY seq", (meter_no, status))
            return [dict(r) for r in rows]
        return await self._read(find)

    async def mark_recharge_sent(self, meter_no, seq, ts):
        def update(db):
            db.execute("UPDATE recharges SET sent_at = ? WHERE meter_no = ? AND seq = ?",
                       (ts, meter_no, seq))
            return read_recharge(db, meter_no, seq)
        return await self._write(update)

    async def ack_recharge(self, meter_no, seq, status, reason, ts):
        def ack(db):
            recharge = read_recharge(db, meter_no, seq)
            if recharge is None:
                return None
            new_status = next_recharge_status(recharge["status"], status)
            if new_status == recharge["status"] and recharge["acked_at"] is not None:
                return recharge  # a repeated ack changes nothing
            db.execute("UPDATE recharges SET status = ?, reason = ?, acked_at = ? "
                       "WHERE meter_no = ? AND seq = ?", (new_status, reason, ts, meter_no, seq))
            return read_recharge(db, meter_no, seq)
        return await self._write(ack)

    # consumption history ----------------------------------------------------------------
    async def put_consumption_hour(self, meter_no, date, hour, wh, cost_cents):
        check_date(date)
        check_hour(hour)
        cents(wh, "wh")
        cents(cost_cents, "cost_cents")

        def put(db):
            db.execute("INSERT INTO consumption (meter_no, date, hour, wh, cost_cents) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT (meter_no, date, hour) DO UPDATE "
                       "SET wh = excluded.wh, cost_cents = excluded.cost_cents",
                       (meter_no, date, hour, wh, cost_cents))
            return consumption_days(db, meter_no, date, date)[0]
        return await self._write(put)

    async def get_consumption(self, meter_no, date_from, date_to):
        check_date(date_from)
        check_date(date_to)
        return await self._read(consumption_days, meter_no, date_from, date_to)

    # abuse limits -----------------------------------------------------------------------
    async def take_rate_slot(self, limits, now_ms, count=True):
        return await self._write(take_rate_slot, check_limits(limits), now_ms, count)

    # tariff -----------------------------------------------------------------------------
    async def get_tariff(self):
        def find(db):
            row = db.execute("SELECT body FROM tariff WHERE id = 1").fetchone()
            return json.loads(row[0]) if row else None
        return await self._read(find)

    async def set_tariff(self, tariff):
        version = tariff.get("version")
        if type(version) is not int:
            raise InvalidRecord("tariff version must be an integer")

        def put(db):
            row = db.execute("SELECT version FROM tariff WHERE id = 1").fetchone()
            if row is not None and version <= row[0]:
                raise Conflict("tariff version %d is not newer than %d" % (version, row[0]))
            db.execute("INSERT OR REPLACE INTO tariff (id, version, body) VALUES (1, ?, ?)",
                       (version, json.dumps(tariff, sort_keys=True)))
            return dict(tariff)
        return await self._write(put)
