"""What the SQLite store runs on its worker thread, shared by several of its methods:
one-record reads, the whole credit of a payment, consumption by day."""

from .base import (AUDIT_FIELDS, MAX_WINDOW_MS, METER_FIELDS, RECHARGE_FIELDS, STK_FIELDS,
                   TX_FIELDS, UNMATCHED_FIELDS, USER_FIELDS, NotFound, audit_record)
from .sqlite_schema import insert_row, meter_record, select


def fetch_one(db, fields, table, where, args):
    """The one row of table matching where, as a dict of fields, or None."""
    row = db.execute(select(fields, table) + where, args).fetchone()
    return dict(row) if row else None


def read_user(db, user_id):
    return fetch_one(db, USER_FIELDS, "users", "WHERE user_id = ?", (user_id,))


def read_meter(db, meter_no):
    row = db.execute(select(METER_FIELDS, "meters") + "WHERE meter_no = ?",
                     (meter_no,)).fetchone()
    return meter_record(row) if row else None


def read_stk(db, checkout_request_id):
    return fetch_one(db, STK_FIELDS, "stk_requests", "WHERE checkout_request_id = ?",
                     (checkout_request_id,))


def read_tx_by_receipt(db, receipt):
    return fetch_one(db, TX_FIELDS, "transactions", "WHERE mpesa_receipt = ?", (receipt,))


def read_tx_by_checkout(db, checkout_request_id):
    return fetch_one(db, TX_FIELDS, "transactions", "WHERE transaction_id = (SELECT "
                     "transaction_id FROM checkouts WHERE checkout_request_id = ?)",
                     (checkout_request_id,))


def read_recharge(db, meter_no, seq):
    return fetch_one(db, RECHARGE_FIELDS, "recharges", "WHERE meter_no = ? AND seq = ?",
                     (meter_no, seq))


def read_unmatched(db, receipt):
    return fetch_one(db, UNMATCHED_FIELDS, "unmatched_payments", "WHERE receipt = ?", (receipt,))


def credit_payment(db, payment, tx_id, mint=None):
    """The whole credit in the caller's transaction: transaction, recharge, seq, token, STK,
    user, audit."""
    receipt, checkout = payment["receipt"], payment.get("checkout_request_id")
    existing = read_tx_by_receipt(db, receipt)
    if existing is None and checkout:
        # the same STK request already credited under its other receipt (query vs callback)
        existing = read_tx_by_checkout(db, checkout)
    if existing is not None:
        return False, existing, read_recharge(db, existing["meter_no"],
                                              existing["recharge_seq"])
    meter_no, ts = payment["meter_no"], payment["ts"]
    row = db.execute("SELECT recharge_seq, token_count, device_key FROM meters "
                     "WHERE meter_no = ?", (meter_no,)).fetchone()
    if row is None:
        raise NotFound("meter %s" % meter_no)
    seq = row[0] + 1
    token = mint(meter_no, row[2], row[1]) if mint is not None else None
    count = token[0] if token else None
    db.execute("UPDATE meters SET recharge_seq = ?, token_count = ? WHERE meter_no = ?",
               (seq, count or row[1], meter_no))
    tx = {"transaction_id": tx_id, "user_id": payment.get("user_id"), "meter_no": meter_no,
          "amount_cents": payment["amount_cents"], "mpesa_receipt": receipt,
          "phone_number": payment.get("phone_number"),
          "transaction_date": payment.get("transaction_date"), "status": "SUCCESS",
          "source": payment.get("source"),
          "checkout_request_id": checkout, "timestamp": ts,
          "recharge_seq": seq, "token_count": count, "token": token[1] if token else None}
    insert_row(db, "transactions", tx, TX_FIELDS)
    if checkout:
        db.execute("INSERT INTO checkouts (checkout_request_id, transaction_id) VALUES (?, ?)",
                   (checkout, tx_id))
    recharge = {"meter_no": meter_no, "seq": seq, "id": receipt,
                "amount_cents": payment["amount_cents"], "source": "cloud",
                "transaction_id": tx_id, "status": "pending", "reason": None,
                "created_at": ts, "sent_at": None, "acked_at": None, "token_count": count}
    insert_row(db, "recharges", recharge, RECHARGE_FIELDS)
    audit = audit_record(payment, tx_id)
    if audit is not None:
        insert_row(db, "audit", audit, AUDIT_FIELDS)
    if checkout:
        # money has moved: a success settles the request even after an earlier failure
        db.execute("UPDATE stk_requests SET status = 'success', result_code = 0, "
                   "settled_at = ?, transaction_id = ? WHERE checkout_request_id = ?",
                   (ts, tx_id, checkout))
    if payment.get("user_id"):
        db.execute("UPDATE users SET latest_transaction_id = ?, last_payment_amount_cents = ?,"
                   " last_payment_timestamp = ? WHERE user_id = ?",
                   (tx_id, payment["amount_cents"], ts, payment["user_id"]))
    return True, tx, recharge


def take_rate_slot(db, limits, now_ms, count=True):
    """The whole of Store.take_rate_slot in the caller's transaction."""
    # Each key's own old events go; a key no one asks about again goes after the longest
    # window any limit may have (another caller's key may have a longer window than ours).
    db.execute("DELETE FROM rate_events WHERE ts <= ?", (now_ms - MAX_WINDOW_MS,))
    db.executemany("DELETE FROM rate_events WHERE key = ? AND ts <= ?",
                   [(key, now_ms - window) for key, _, window in limits])
    wait, refused = 0, None
    for key, limit, window in limits:
        rows = db.execute("SELECT ts FROM rate_events WHERE key = ? AND ts > ? ORDER BY ts",
                          (key, now_ms - window)).fetchall()
        if len(rows) >= limit:
            # the slot frees when the oldest event that keeps the key full leaves the window
            frees = rows[len(rows) - limit][0] + window - now_ms
            if frees > wait:
                wait, refused = frees, key
    if refused is not None or not count:
        return wait, refused
    db.executemany("INSERT INTO rate_events (key, ts) VALUES (?, ?)",
                   [(key, now_ms) for key, _, _ in limits])
    return 0, None


def consumption_days(db, meter_no, date_from, date_to):
    days = {}
    for row in db.execute("SELECT date, hour, wh, cost_cents FROM consumption WHERE "
                          "meter_no = ? AND date BETWEEN ? AND ? ORDER BY date, hour",
                          (meter_no, date_from, date_to)):
        day = days.setdefault(row["date"], {"date": row["date"], "total_consumption_wh": 0,
                                            "cost_cents": 0, "readings": {}, "costs": {}})
        hh = "%02d" % row["hour"]
        day["readings"][hh] = row["wh"]
        day["costs"][hh] = row["cost_cents"]
        day["total_consumption_wh"] += row["wh"]
        day["cost_cents"] += row["cost_cents"]
    return list(days.values())
