"""The SQLite store's tables and opening a database file."""

import json
import logging
import sqlite3

from .base import StoreError

log = logging.getLogger(__name__)

# 2: `checkouts` holds the one transaction that credited each STK request (issue #4)
# 3: token counts and tokens on meters, transactions and recharges (issue #11)
SCHEMA_VERSION = 3
# Columns version 3 adds to a version 2 file (a new file gets them from _SCHEMA).
_TOKEN_COLUMNS = (("meters", "token_count INTEGER NOT NULL DEFAULT 1"),
                  ("transactions", "token_count INTEGER"), ("transactions", "token TEXT"),
                  ("recharges", "token_count INTEGER"))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, name TEXT, email TEXT, phone_number TEXT, meter_no TEXT,
    role TEXT NOT NULL, created_at INTEGER, latest_transaction_id TEXT,
    last_payment_amount_cents INTEGER, last_payment_timestamp INTEGER,
    api_key_hash TEXT UNIQUE);
CREATE INDEX IF NOT EXISTS users_by_phone ON users (phone_number);
CREATE TABLE IF NOT EXISTS meters (
    meter_no TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (user_id),
    device_key TEXT, current_balance_cents INTEGER NOT NULL DEFAULT 0, last_update INTEGER,
    created_at INTEGER, status TEXT NOT NULL DEFAULT '{}', alerts TEXT NOT NULL DEFAULT '{}',
    recharge_seq INTEGER NOT NULL DEFAULT 0, token_count INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS meters_by_user ON meters (user_id);
CREATE TABLE IF NOT EXISTS stk_requests (
    checkout_request_id TEXT PRIMARY KEY, merchant_request_id TEXT, meter_no TEXT,
    user_id TEXT, phone_number TEXT, amount_cents INTEGER, status TEXT NOT NULL,
    result_code INTEGER, result_desc TEXT, created_at INTEGER, settled_at INTEGER,
    transaction_id TEXT);
CREATE INDEX IF NOT EXISTS stk_by_status ON stk_requests (status, created_at);
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id TEXT PRIMARY KEY, user_id TEXT, meter_no TEXT NOT NULL,
    amount_cents INTEGER NOT NULL, mpesa_receipt TEXT NOT NULL, phone_number TEXT,
    transaction_date TEXT, status TEXT NOT NULL, source TEXT, checkout_request_id TEXT,
    timestamp INTEGER NOT NULL, recharge_seq INTEGER NOT NULL, token_count INTEGER,
    token TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS transactions_by_receipt ON transactions (mpesa_receipt);
CREATE INDEX IF NOT EXISTS transactions_by_user ON transactions (user_id, timestamp);
CREATE INDEX IF NOT EXISTS transactions_by_meter ON transactions (meter_no, timestamp);
CREATE TABLE IF NOT EXISTS recharges (
    meter_no TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL, source TEXT NOT NULL, transaction_id TEXT,
    status TEXT NOT NULL, reason TEXT, created_at INTEGER, sent_at INTEGER, acked_at INTEGER,
    token_count INTEGER, PRIMARY KEY (meter_no, seq));
-- One STK request credits once, whatever receipt it arrives under: the query-settled
-- CheckoutRequestID or the callback's MpesaReceiptNumber. A table rather than a unique index
-- on transactions, so a file that already holds such a double credit still opens.
CREATE TABLE IF NOT EXISTS checkouts (
    checkout_request_id TEXT PRIMARY KEY,
    transaction_id TEXT NOT NULL REFERENCES transactions (transaction_id));
CREATE UNIQUE INDEX IF NOT EXISTS recharges_by_id ON recharges (meter_no, id);
CREATE TABLE IF NOT EXISTS consumption (
    meter_no TEXT NOT NULL, date TEXT NOT NULL, hour INTEGER NOT NULL,
    wh INTEGER NOT NULL, cost_cents INTEGER NOT NULL, PRIMARY KEY (meter_no, date, hour));
CREATE TABLE IF NOT EXISTS tariff (id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL, body TEXT NOT NULL);
-- Added without a schema bump: a new table only, created on open, that older code ignores.
CREATE TABLE IF NOT EXISTS unmatched_payments (
    receipt TEXT PRIMARY KEY, source TEXT, amount_cents INTEGER NOT NULL, phone_number TEXT,
    bill_ref TEXT, checkout_request_id TEXT, transaction_date TEXT, reason TEXT,
    ts INTEGER NOT NULL);
-- Also without a bump: the signed-request nonces every process sharing the file has seen.
CREATE TABLE IF NOT EXISTS nonces (
    meter_no TEXT NOT NULL, nonce TEXT NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (meter_no, nonce));
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
-- Abuse limits (cloud/push_guard.py, sign-in failures): one row per counted event, so every
-- process on this file and every restart sees the same counts. Also added without a bump.
CREATE TABLE IF NOT EXISTS rate_events (key TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rate_events_by_key ON rate_events (key, ts);
CREATE INDEX IF NOT EXISTS rate_events_by_ts ON rate_events (ts);
-- Who credited a meter by hand, when and why (operator tokens); a new table, no bump needed.
CREATE TABLE IF NOT EXISTS audit (
    transaction_id TEXT PRIMARY KEY REFERENCES transactions (transaction_id),
    meter_no TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL,
    amount_cents INTEGER NOT NULL, ts INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_meter ON audit (meter_no, ts);
"""


def open_database(path):
    """A connection in WAL mode with the schema in place; refuses a newer schema."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # a recorded payment survives a power cut
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(_SCHEMA)
    try:
        _settle_version(db)
    except BaseException:
        db.close()
        raise
    return db


def _settle_version(db):
    """Stamp a new file, migrate an older one; under BEGIN IMMEDIATE so two processes opening
    the same file at once neither stamp it twice nor migrate it twice."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            raise StoreError("database schema %d is newer than this code (%d)"
                             % (row[0], SCHEMA_VERSION))
        elif row[0] < SCHEMA_VERSION:
            if row[0] < 2:
                _migrate_to_2(db)
            _migrate_to_3(db)
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate_to_2(db):
    """Index the STK requests already credited; the earliest transaction of each stands."""
    db.execute("INSERT OR IGNORE INTO checkouts (checkout_request_id, transaction_id) "
               "SELECT checkout_request_id, transaction_id FROM (SELECT checkout_request_id, "
               "transaction_id, ROW_NUMBER() OVER (PARTITION BY checkout_request_id "
               "ORDER BY timestamp, transaction_id) AS n FROM transactions "
               "WHERE checkout_request_id IS NOT NULL) WHERE n = 1")
    doubled = db.execute("SELECT COUNT(*) - COUNT(DISTINCT checkout_request_id) FROM "
                         "transactions WHERE checkout_request_id IS NOT NULL").fetchone()[0]
    if doubled:
        # history is kept as it is; the extra credits need a person (reverse or accept)
        log.warning("STK requests credited more than once before schema 2",
                    extra={"extra_transactions": doubled})


def _migrate_to_3(db):
    """Token columns on an older file's tables (CREATE TABLE IF NOT EXISTS left them as they
    were); old transactions keep no token."""
    for table, column in _TOKEN_COLUMNS:
        have = {r[1] for r in db.execute("PRAGMA table_info(%s)" % table)}
        if column.split()[0] not in have:
            db.execute("ALTER TABLE %s ADD COLUMN %s" % (table, column))


def select(fields, table):
    return "SELECT %s FROM %s " % (", ".join(fields), table)


def insert_row(db, table, record, fields):
    db.execute("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(fields),
                                                    ", ".join("?" * len(fields))),
               [record.get(f) for f in fields])


def meter_record(row):
    meter = dict(row)
    meter["status"] = json.loads(meter["status"])
    meter["alerts"] = json.loads(meter["alerts"])
    return meter
