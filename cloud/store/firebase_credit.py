"""Exactly-once credit on Firebase RTDB, which has no transaction spanning several nodes.

A payment first claims `receipts/<receipt>` with an ETag transaction (the claim carries the
whole payment and its transaction id), then takes the meter's next `recharge_seq` with another,
then commits by writing that seq into the claim (only the claim's current owner can, and only
once), and finally writes transaction, recharge, STK settlement, user and
`receipts/<receipt>/state = "recorded"` in one atomic multi-path update built from the claim
alone, so it may safely be repeated. A duplicate that finds the claim unfinished waits for its
writer; a writer silent for `claim_wait_s` (crashed) is taken over, or, if it had committed,
its final write is repeated for it. The payment's token (cloud/tokens.py) is minted at the
commit, its count taken from `meters/<m>/token_count` like the seq, and kept in the claim, so a
repeated final write repeats the same token. The only trace a crash can leave is an unused
sequence number or token count. `ref_at(*parts)` gives a db.Reference; everything here blocks.

One STK request is one credit, though it may arrive under two receipts (the CheckoutRequestID
when an STK query settled it, the MpesaReceiptNumber in a late callback). So a payment with a
checkout id first claims `checkouts/<id>` (first claim wins, forever; it holds the winner's
whole claim) and then runs the receipt protocol above for the winner's claim, never for its
own if it lost. Checkouts credited before this index existed are found through their
transaction and claimed for it.
"""

import functools
import time
import uuid

from .base import safe_key


class Abort(Exception):
    """Raised inside an ETag transaction to leave the node untouched; carries the answer."""

    def __init__(self, value=None):
        super().__init__()
        self.value = value


def run_transaction(ref, fn):
    """ref.transaction(fn) where fn may raise Abort(answer) to write nothing."""
    try:
        return ref.transaction(fn)
    except Abort as abort:
        return abort.value


def record_payment_once(ref_at, claim, claim_wait_s, mint=None):
    """The credit path: once per checkout id (if any), once per receipt; returns
    (created, transaction_id, meter_no, seq), created meaning this call wrote the credit."""
    cid = claim.get("checkout_request_id")
    if not cid or ref_at("receipts", safe_key(claim["receipt"])).get():
        # no checkout, or a receipt already claimed: the receipt's claim decides (as in SQLite)
        return record_claimed_payment(ref_at, claim, claim_wait_s, mint=mint)
    winner = claim_checkout(ref_at, cid, claim)
    if winner.get("state") == "recorded":  # credited before checkouts were claimed
        return False, winner["transaction_id"], winner["meter_no"], winner["seq"]
    if winner["receipt"] == claim["receipt"]:
        return record_claimed_payment(ref_at, winner, claim_wait_s, mint=mint)
    # Another receipt holds this request: its own writer should be finishing it, so only
    # claim its receipt on its behalf if that writer stays silent.
    return record_claimed_payment(ref_at, winner, claim_wait_s, on_behalf=True, mint=mint)


def claim_checkout(ref_at, cid, claim):
    """The claim that credits this checkout: the first one stored under it, else ours."""
    ref = ref_at("checkouts", safe_key(cid))
    held = ref.get()
    if held:
        return held
    first = _claim_from_transaction(ref_at, cid) or claim

    def take(cur):
        if cur:
            raise Abort(cur)
        return first
    return run_transaction(ref, take)


def _claim_from_transaction(ref_at, cid):
    """The earliest transaction already recorded for cid, as a finished claim, or None."""
    found = ref_at("transactions").order_by_child("checkout_request_id").equal_to(cid).get()
    txs = [t for t in (found or {}).values() if isinstance(t, dict)]
    if not txs:
        return None
    tx = min(txs, key=lambda t: (t.get("timestamp", 0), t.get("transaction_id", "")))
    claim = {"receipt": tx["mpesa_receipt"], "ts": tx["timestamp"], "state": "recorded",
             "transaction_id": tx["transaction_id"], "seq": tx["recharge_seq"]}
    for field in ("token_count", "token"):
        if tx.get(field) is not None:
            claim[field] = tx[field]
    for field in ("meter_no", "user_id", "amount_cents", "phone_number", "transaction_date",
                  "source", "checkout_request_id"):
        if tx.get(field) is not None:
            claim[field] = tx[field]
    return claim


def record_claimed_payment(ref_at, claim, claim_wait_s, on_behalf=False, mint=None):
    """Claim, take a seq, commit, write; returns (created, transaction_id, meter_no, seq).
    on_behalf: the claim is another call's, so give that call claim_wait_s to claim it."""
    token = uuid.uuid4().hex
    ref = ref_at("receipts", safe_key(claim["receipt"]))

    def take(cur):
        if cur:
            raise Abort(cur)
        return dict(claim, owner=token, state="claimed")
    held = _wait_for_claim(ref, claim_wait_s) if on_behalf else None
    held = held or run_transaction(ref, take)
    watching, deadline = None, 0.0
    while True:
        worker = (held.get("owner"), held.get("committed_by"))
        if worker != watching:  # someone new is working on it: give them time to finish
            watching, deadline = worker, time.monotonic() + claim_wait_s
        expired = time.monotonic() >= deadline
        committed = held.get("seq") is not None
        if held.get("state") == "recorded" or (committed and (
                held.get("committed_by") == token or expired)):
            if held.get("state") != "recorded":
                write_payment(ref_at, held)  # ours, or repairing a dead writer's
            created = held.get("committed_by") == token
            return created, held["transaction_id"], held["meter_no"], held["seq"]
        if not committed and held.get("owner") == token:
            held = commit(ref_at, ref, held, token, mint)
        elif not expired:
            time.sleep(0.01)  # another call holds the claim and is finishing it
            held = ref.get() or held
        elif not committed:
            held = run_transaction(ref, functools.partial(take_over, token))


def _wait_for_claim(ref, claim_wait_s):
    deadline = time.monotonic() + claim_wait_s
    while True:
        held = ref.get()
        if held or time.monotonic() >= deadline:
            return held
        time.sleep(0.01)


def commit(ref_at, ref, held, token, mint=None):
    """Give the claim the meter's next seq (and token), unless it is no longer this token's to
    give."""
    meter_seq = ref_at("meters", safe_key(held["meter_no"]), "recharge_seq")
    seq = meter_seq.transaction(lambda cur: (cur or 0) + 1)
    minted = _mint(ref_at, held, mint) if mint is not None else None
    more = {"token_count": minted[0], "token": minted[1]} if minted else {}

    def set_seq(cur):
        if cur.get("owner") != token or cur.get("seq") is not None:
            raise Abort(cur)  # taken over meanwhile: this seq stays unused
        return dict(cur, seq=seq, state="committing", committed_by=token, **more)
    return run_transaction(ref, set_seq)


def _mint(ref_at, held, mint):
    """(count, digits) of the payment's token with the meter's next count, or None."""
    meter_no = held["meter_no"]
    device_key = ref_at("device_keys", safe_key(meter_no)).get()
    minted = []

    def take(cur):
        # may run again on a conflict: only the last run's token is the one stored
        minted[:] = [mint(meter_no, device_key, cur or 1)]
        if minted[0] is None:
            raise Abort(None)
        return minted[0][0]
    run_transaction(ref_at("meters", safe_key(meter_no), "token_count"), take)
    return minted[0] if minted else None


def write_payment(ref_at, held):
    """One atomic multi-path update, derived from the claim alone, so repeatable."""
    tx_id, meter_no, seq, ts = (held["transaction_id"], held["meter_no"], held["seq"],
                                held["ts"])
    tx = {"transaction_id": tx_id, "user_id": held.get("user_id"), "meter_no": meter_no,
          "amount_cents": held["amount_cents"], "mpesa_receipt": held["receipt"],
          "phone_number": held.get("phone_number"),
          "transaction_date": held.get("transaction_date"), "status": "SUCCESS",
          "source": held.get("source"),
          "checkout_request_id": held.get("checkout_request_id"), "timestamp": ts,
          "recharge_seq": seq, "token_count": held.get("token_count"),
          "token": held.get("token")}
    recharge = {"meter_no": meter_no, "seq": seq, "id": held["receipt"],
                "amount_cents": held["amount_cents"], "source": "cloud",
                "transaction_id": tx_id, "status": "pending", "created_at": ts}
    if held.get("token_count") is not None:
        recharge["token_count"] = held["token_count"]
    update = {"transactions/" + tx_id: {k: v for k, v in tx.items() if v is not None},
              "recharges/%s/%d" % (safe_key(meter_no), seq): recharge,
              "receipts/%s/state" % safe_key(held["receipt"]): "recorded"}
    if held.get("audit"):
        update["audit/%s/%s" % (safe_key(meter_no), tx_id)] = held["audit"]
    cid = held.get("checkout_request_id")
    if cid and ref_at("stk_requests", safe_key(cid), "checkout_request_id").get():
        stk = "stk_requests/%s/" % safe_key(cid)
        # money has moved: a success settles the request even after an earlier failure
        update.update({stk + "status": "success", stk + "result_code": 0,
                       stk + "settled_at": ts, stk + "transaction_id": tx_id})
    uid = held.get("user_id")
    if uid and ref_at("users", safe_key(uid), "user_id").get():
        user = "users/%s/" % safe_key(uid)
        update.update({user + "latest_transaction_id": tx_id,
                       user + "last_payment_amount_cents": held["amount_cents"],
                       user + "last_payment_timestamp": ts})
    ref_at().update(update)


def take_over(token, cur):
    """The claim's writer seems gone: become its owner unless it committed meanwhile."""
    if cur.get("seq") is not None:
        raise Abort(cur)
    return dict(cur, owner=token)
