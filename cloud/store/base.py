"""The store interface every backend implements, and the record shapes it speaks.

Field names follow the reference Firebase schema (`users`, `meters`, `transactions`,
`consumption_history`). Money is integer cents everywhere: fields that hold money carry a
`_cents` suffix (the reference schema's KES floats `current_balance`, `amount`, `cost` become
`current_balance_cents`, `amount_cents`, `cost_cents`); energy is integer Wh (`_wh`).
Timestamps are integer milliseconds since the Unix epoch (the reference's ServerValue.TIMESTAMP).

Records (dicts):
  user:        {user_id, name, email, phone_number, meter_no, role ("customer"|"operator"),
                created_at, latest_transaction_id, last_payment_amount_cents,
                last_payment_timestamp}
  meter:       {meter_no, user_id, current_balance_cents, last_update, created_at,
                status: {load_connected, wifi_status, mqtt_status, last_seen},
                alerts: {low_balance, critical_balance, connection_lost, ...},
                recharge_seq (last per-meter recharge sequence number issued),
                token_count (last OpenPAYGo token count issued; 1 for a new meter)}
  stk_request: {checkout_request_id, merchant_request_id, meter_no, user_id, phone_number,
                amount_cents, status ("pending"|"success"|"failed"), result_code, result_desc,
                created_at, settled_at, transaction_id}
  transaction: {transaction_id, user_id, meter_no, amount_cents, mpesa_receipt, phone_number,
                transaction_date, status ("SUCCESS"), source ("stk"|"c2b"|"stk_query"),
                checkout_request_id, timestamp, recharge_seq, token_count, token (the
                OpenPAYGo token's digits, or None when no token can carry the amount)}
                source "operator_token": credit an operator issued by hand (goodwill, refund)
  recharge:    {meter_no, seq, id (the receipt), amount_cents, source ("cloud"),
                transaction_id, status ("pending"|"delivered"|"duplicate"|"rejected"),
                reason, created_at, sent_at, acked_at, token_count}
  audit:       {transaction_id, meter_no, actor (user id), action ("operator_token"),
                reason, amount_cents, ts}: who credited a meter by hand, when and why
  history day: {date "YYYY-MM-DD", total_consumption_wh, cost_cents,
                readings: {"HH": wh}, costs: {"HH": cents}}
  unmatched:   {receipt, source ("c2b"|"stk"), amount_cents, phone_number, bill_ref,
                checkout_request_id, transaction_date, reason, ts}: money M-Pesa took that
                names no meter we can credit (a mistyped paybill account, a callback for an
                STK request we never stored); kept for a person to credit or refund

Exactly once: `record_payment` is the single credit path. In one atomic step it records the
transaction under its receipt (M-Pesa receipt / C2B TransID / CheckoutRequestID when only an
STK query confirmed it), gives the meter's next recharge sequence number to a new pending
recharge, settles the STK request, and updates the user's latest payment. A receipt already
recorded returns the existing records and changes nothing; so does a checkout_request_id
already credited, whatever receipt it came with this time (an STK request settled by query
under its CheckoutRequestID, then its late callback with the MpesaReceiptNumber, is one
credit).
"""


class StoreError(Exception):
    """A backend failure (I/O, conflict that did not resolve)."""


class NotFound(StoreError):
    """The meter, user or request named does not exist."""


class Conflict(StoreError):
    """The write would break a uniqueness or ordering rule (duplicate meter, older tariff)."""


class InvalidRecord(StoreError, ValueError):
    """The record given breaks the shape (money not integer cents, bad date, unknown status)."""


# Helpers both backends share, so they name and validate things identically.

_KEY_ESCAPES = {c: "!%02X" % ord(c) for c in "!%.$#[]/?"}


def safe_key(text):
    """text as a Firebase key: . $ # [ ] / (and % ? that URLs would eat) escaped as !XX.
    Injective, and the identity on ordinary receipts and ids."""
    if not isinstance(text, str) or not text:
        raise InvalidRecord("a key must be a non-empty string, not %r" % (text,))
    out = []
    for ch in text:
        if ch in _KEY_ESCAPES:
            out.append(_KEY_ESCAPES[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append("!%02X" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def check_field_names(fields):
    """Merged field names become database keys: refuse those Firebase could not store."""
    for key in fields:
        if not isinstance(key, str) or not key or safe_key(key) != key:
            raise InvalidRecord("field name %r cannot be a database key" % (key,))
    return fields


def check_date(date):
    if not (isinstance(date, str) and len(date) == 10 and date[4] == date[7] == "-"
            and (date[:4] + date[5:7] + date[8:]).isdigit()):
        raise InvalidRecord("date must be YYYY-MM-DD, not %r" % (date,))
    return date


def check_hour(hour):
    if type(hour) is not int or not 0 <= hour <= 23:
        raise InvalidRecord("hour must be an integer 0..23, not %r" % (hour,))
    return hour


def prefix_bounds(prefix):
    """(low, high) with low <= s < high exactly for the strings s that start with prefix: a
    range both stores answer from their index."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def transaction_id_for(receipt, ts):
    """The reference's TXN_<ms>_<receipt>, the time zero-padded so ids sort by time."""
    return "TXN_%013d_%s" % (ts, safe_key(receipt))


# The fields of each record, as every store returns them (the reference schema's names).
USER_FIELDS = ("user_id", "name", "email", "phone_number", "meter_no", "role", "created_at",
               "latest_transaction_id", "last_payment_amount_cents",
               "last_payment_timestamp")
METER_FIELDS = ("meter_no", "user_id", "current_balance_cents", "last_update", "created_at",
                "status", "alerts", "recharge_seq", "token_count")
STK_FIELDS = ("checkout_request_id", "merchant_request_id", "meter_no", "user_id",
              "phone_number", "amount_cents", "status", "result_code", "result_desc",
              "created_at", "settled_at", "transaction_id")
TX_FIELDS = ("transaction_id", "user_id", "meter_no", "amount_cents", "mpesa_receipt",
             "phone_number", "transaction_date", "status", "source", "checkout_request_id",
             "timestamp", "recharge_seq", "token_count", "token")
RECHARGE_FIELDS = ("meter_no", "seq", "id", "amount_cents", "source", "transaction_id",
                   "status", "reason", "created_at", "sent_at", "acked_at", "token_count")
AUDIT_FIELDS = ("transaction_id", "meter_no", "actor", "action", "reason", "amount_cents", "ts")
UNMATCHED_FIELDS = ("receipt", "source", "amount_cents", "phone_number", "bill_ref",
                    "checkout_request_id", "transaction_date", "reason", "ts")


def unmatched_record(record):
    """The unmatched-payment shape, checked: a receipt, integer cents, a time."""
    out = {f: record.get(f) for f in UNMATCHED_FIELDS}
    safe_key(out["receipt"])
    cents(out["amount_cents"])
    if type(out["ts"]) is not int:
        raise InvalidRecord("ts must be integer milliseconds")
    return out


def audit_record(payment, tx_id):
    """The audit record a payment asks for (None if it asks for none), checked: an actor and
    a reason, as an operator's hand-made credit must have."""
    audit = payment.get("audit")
    if audit is None:
        return None
    for name in ("actor", "action", "reason"):
        if not isinstance(audit.get(name), str) or not audit[name]:
            raise InvalidRecord("an audit record needs %s" % name)
    return {"transaction_id": tx_id, "meter_no": payment["meter_no"], "actor": audit["actor"],
            "action": audit["action"], "reason": audit["reason"],
            "amount_cents": payment["amount_cents"], "ts": payment["ts"]}


def cents(value, name="amount_cents"):
    """Money is integer cents: refuse floats, bools and strings instead of rounding them."""
    if type(value) is not int:
        raise InvalidRecord("%s must be integer cents, not %r" % (name, value))
    return value


MAX_WINDOW_MS = 24 * 3600 * 1000  # the longest window a limit may have: a day


def check_limits(limits):
    """take_rate_slot's limits: a non-empty list of (key, limit >= 1, 1 <= window_ms <= a day)."""
    limits = [tuple(item) for item in limits]
    if not limits:
        raise InvalidRecord("at least one limit is needed")
    for key, limit, window in limits:
        safe_key(key)
        if type(limit) is not int or type(window) is not int or limit < 1 or window < 1:
            raise InvalidRecord("a limit and its window are positive integers")
        if window > MAX_WINDOW_MS:
            raise InvalidRecord("a limit's window is at most a day")
    return limits


ACK_OUTCOMES = {"applied": "delivered", "duplicate": "delivered", "rejected": "rejected"}


def next_recharge_status(current, ack_status):
    """Where an ack moves a recharge. Delivered is final: a late "rejected" or a repeated
    ack must not undo credit the meter already holds."""
    if ack_status not in ACK_OUTCOMES:
        raise InvalidRecord("unknown ack status %r" % (ack_status,))
    if current == "delivered":
        return "delivered"
    return ACK_OUTCOMES[ack_status]


class Store:
    """Async interface; backends run blocking I/O off the event loop."""

    async def close(self):
        raise NotImplementedError

    # users and meters -------------------------------------------------------------------
    async def create_user(self, user):
        """Insert a user record (user_id given or generated); returns the stored record."""
        raise NotImplementedError

    async def get_user(self, user_id):
        raise NotImplementedError

    async def find_user_by_api_key_hash(self, key_hash):
        """Embedded-mode auth: the user whose API key hashes to key_hash, or None."""
        raise NotImplementedError

    async def set_user_api_key_hash(self, user_id, key_hash):
        raise NotImplementedError

    async def create_meter(self, meter_no, user_id, device_key):
        """Register a meter for a user; Conflict if meter_no exists. Returns the meter."""
        raise NotImplementedError

    async def get_meter(self, meter_no):
        raise NotImplementedError

    async def list_meters(self, user_id=None):
        raise NotImplementedError

    async def list_meters_page(self, after=None, limit=100, prefix=None):
        """At most `limit` meters in meter_no order, those after `after` (exclusive) and, with
        `prefix`, only those whose number starts with it: the fleet table's pages. A cursor,
        not an offset: a meter added meanwhile moves no row."""
        raise NotImplementedError

    async def get_device_key(self, meter_no):
        """The meter's shared secret (HMAC key, broker password), or None."""
        raise NotImplementedError

    async def set_device_key(self, meter_no, device_key):
        """Replace a registered meter's device key (rotation); NotFound for no such meter.
        Recharges, seqs and history stay as they are."""
        raise NotImplementedError

    async def update_meter_balance(self, meter_no, balance_cents, ts):
        raise NotImplementedError

    async def update_meter_status(self, meter_no, status, ts, state_at=None):
        """Merge status fields (load_connected, wifi_status, mqtt_status, ...); sets last_seen.
        With state_at (when the message carrying them arrived; stored as status.state_at):
        nothing is written if the stored status came from a later message, since several
        cloud instances handle one meter's messages side by side. Returns the meter as stored."""
        raise NotImplementedError

    async def update_meter_alerts(self, meter_no, alerts):
        """Merge alert flags (name -> bool)."""
        raise NotImplementedError

    async def claim_nonce(self, meter_no, nonce, ts, window_s, now, limit=4096):
        """A signed request's nonce, claimed once for every cloud process sharing this store:
        "ok" the first time; "replayed" if (meter_no, nonce) was claimed before inside the
        replay window; "full" if the meter already has `limit` nonces in it. ts is the
        request's signed Unix timestamp (already checked to be within window_s of now); claims
        older than the window are forgotten."""
        raise NotImplementedError

    async def acquire_lease(self, name, holder, ttl_ms, now_ms):
        """Take or renew the lease `name` for `holder` until now_ms + ttl_ms: True if `holder`
        holds it now, False while another holder's lease has not run out. For jobs that one
        cloud process at a time should run (the settle pass), whichever process that is."""
        raise NotImplementedError

    async def write_telemetry(self, readings):
        """Many meters' newest telemetry in one write (one transaction; one multi-path update):
        readings = {meter_no: (balance_cents or None, alert flags to merge or None, ts)}.
        Returns the meter numbers not written because no such meter exists; the rest are all
        written, or none is (StoreError)."""
        raise NotImplementedError

    # STK requests -----------------------------------------------------------------------
    async def create_stk_request(self, request):
        raise NotImplementedError

    async def get_stk_request(self, checkout_request_id):
        raise NotImplementedError

    async def list_pending_stk_requests(self, created_before):
        """Pending requests created before the given ms timestamp, oldest first."""
        raise NotImplementedError

    async def list_stk_requests(self, status, limit=50):
        """The newest `limit` STK requests in `status` (pending, failed, success), newest
        first: the operator's desk."""
        raise NotImplementedError

    async def fail_stk_request(self, checkout_request_id, result_code, result_desc, ts):
        """Record a failed payment (no credit). False if the request was already settled."""
        raise NotImplementedError

    # the credit path --------------------------------------------------------------------
    async def record_payment(self, payment, mint=None):
        """Record a successful payment exactly once and create its recharge.

        payment: {receipt, meter_no, user_id, amount_cents, phone_number, transaction_date,
                  source, checkout_request_id (optional), ts, audit (optional: {actor,
                  action, reason}, kept as the payment's audit record in the same write)}
        mint(meter_no, device_key, last_token_count) -> (count, token digits) or None: called
        only for a new credit, inside its write; the count becomes the meter's token_count
        and the transaction's and recharge's token_count, the digits the transaction's token.
        Returns (created: bool, transaction, recharge). A payment whose receipt, or whose
        checkout_request_id, already has a transaction is a duplicate, decided atomically
        (concurrent calls and several processes included): created is False and the existing
        transaction and recharge come back unchanged; the duplicate's own receipt is not
        recorded (get_transaction_by_receipt of it stays None). At most one of any set of
        duplicates returns created=True.
        """
        raise NotImplementedError

    async def get_transaction_by_receipt(self, receipt):
        raise NotImplementedError

    async def list_audit(self, meter_no, limit=50):
        """A meter's audit records (credit issued by hand), newest first."""
        raise NotImplementedError

    async def list_transactions_for_user(self, user_id, limit=50):
        """Newest first."""
        raise NotImplementedError

    async def list_transactions_for_meter(self, meter_no, limit=50):
        """Newest first."""
        raise NotImplementedError

    async def record_unmatched_payment(self, record):
        """Keep a payment no meter could be found for, once per receipt. Returns (created,
        the stored record); a repeat changes nothing."""
        raise NotImplementedError

    async def get_unmatched_payment(self, receipt):
        raise NotImplementedError

    async def list_unmatched_payments(self, limit=500):
        """Unmatched payments, oldest first."""
        raise NotImplementedError

    # recharges --------------------------------------------------------------------------
    async def list_recharges(self, meter_no, status=None):
        """A meter's recharges in sequence order, optionally only those with a status."""
        raise NotImplementedError

    async def mark_recharge_sent(self, meter_no, seq, ts):
        raise NotImplementedError

    async def ack_recharge(self, meter_no, seq, status, reason, ts):
        """The meter answered: status "applied"/"duplicate" -> delivered, "rejected" -> rejected.
        Idempotent; returns the updated recharge or None if unknown."""
        raise NotImplementedError

    # consumption history ----------------------------------------------------------------
    async def put_consumption_hour(self, meter_no, date, hour, wh, cost_cents):
        """Set (not add: the meter may re-send) one hour's energy and cost; keeps the day's
        totals equal to the sum of its hours."""
        raise NotImplementedError

    async def get_consumption(self, meter_no, date_from, date_to):
        """Days from date_from to date_to inclusive ("YYYY-MM-DD"), oldest first."""
        raise NotImplementedError

    # abuse limits -----------------------------------------------------------------------
    async def take_rate_slot(self, limits, now_ms, count=True):
        """Count one event under every key of limits [(key, limit, window_ms)], all or none,
        decided atomically across processes: when any key already holds `limit` events newer
        than now_ms - window_ms nothing is counted and the answer is (ms until that key frees
        a slot, that key); otherwise the event is counted and the answer is (0, None). Kept in
        the store so that restarts and several instances share the counts. count=False only
        asks: the same answer, nothing counted (a lockout checked before the attempt)."""
        raise NotImplementedError

    # tariff -----------------------------------------------------------------------------
    async def get_tariff(self):
        raise NotImplementedError

    async def set_tariff(self, tariff):
        """Store a tariff dict; Conflict unless its version is newer than the stored one."""
        raise NotImplementedError
