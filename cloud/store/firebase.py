"""The production store: Firebase Realtime Database through firebase-admin, calls off the loop.

Nodes: the reference schema's `users`, `meters`, `transactions`, `consumption_history`, plus
`stk_requests`, `recharges/<meter>/<seq>`, `receipts/<receipt>` and `checkouts/<checkout id>`
(the exactly-once indexes), `device_keys/<meter>` and `api_keys/<hash>` (server-only secrets
kept out of readable nodes), `user_api_keys/<user>`, `tariff` and
`unmatched_payments/<receipt>` (money no meter could be found for, server-only) and
`rate_limits/<key>` (abuse-limit events, server-only; see firebase_limits). Ids used as keys
go through base.safe_key.

Exactly once: see firebase_credit.
"""

import asyncio
import base64
import json
import os
import time
import uuid

import firebase_admin
from firebase_admin import credentials, db, exceptions

from .base import (AUDIT_FIELDS, RECHARGE_FIELDS, STK_FIELDS, TX_FIELDS, UNMATCHED_FIELDS,
                   USER_FIELDS, Conflict, InvalidRecord, NotFound, Store, StoreError,
                   audit_record, cents, check_date,
                   check_field_names, check_hour, check_limits, next_recharge_status, safe_key,
                   transaction_id_for, unmatched_record)
from .firebase_credit import Abort, record_payment_once, run_transaction
from .firebase_limits import take_rate_slot

_PAYMENT_FIELDS = ("receipt", "meter_no", "user_id", "amount_cents", "phone_number",
                   "transaction_date", "source", "checkout_request_id", "ts")
# Every ordered query this backend makes (path pattern -> children): database.rules.json
# must index each one, or the real database refuses the query ("Index not defined").
QUERIED_INDEXES = {"meters": ("user_id",),
                   "transactions": ("user_id", "meter_no", "checkout_request_id"),
                   "stk_requests": ("status",), "recharges/$meter": ("status",)}
_EMULATOR_ENV = "FIREBASE_DATABASE_EMULATOR_HOST"


def _now_ms():
    return int(time.time() * 1000)


def _children(value):
    """A node's children as a dict: the database serves dense int-keyed objects as arrays."""
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value) if v is not None}
    return dict(value) if isinstance(value, dict) else {}


def _full(record, fields):
    """The database drops nulls; callers get every field of the shape."""
    if record is None:
        return None
    return {f: record.get(f) for f in fields}


def _meter(record):
    if record is None:
        return None
    meter = dict(record)
    meter.setdefault("current_balance_cents", 0)
    meter.setdefault("recharge_seq", 0)
    meter.setdefault("token_count", 1)  # no token issued yet: the meter's starting count
    meter.setdefault("last_update", None)
    meter["status"] = _children(meter.get("status"))
    meter["alerts"] = _children(meter.get("alerts"))
    return meter


def _credential_from(sa_base64="", credentials_path=""):
    """A service account from base64 JSON or a file (the reference's two ways), else None."""
    sa_base64 = sa_base64 or os.environ.get("FIREBASE_SA_BASE64", "")
    credentials_path = credentials_path or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    try:
        if sa_base64:
            return credentials.Certificate(json.loads(base64.b64decode(sa_base64)))
        if credentials_path:
            return credentials.Certificate(credentials_path)
    except (ValueError, OSError) as error:
        raise StoreError("bad Firebase service account: %s" % error) from error
    return None


def _default_app_exists():
    try:
        firebase_admin.get_app()
    except ValueError:
        return False
    return True


class FirebaseStore(Store):
    """One firebase-admin App per store, so tests (and tools) can open several at once."""

    def __init__(self, database_url=None, credential=None, claim_wait_s=10.0,
                 sa_base64="", credentials_path="", app_name=None, project_id=""):
        database_url = database_url or os.environ.get("FIREBASE_DATABASE_URL")
        if not database_url:
            raise StoreError("FIREBASE_DATABASE_URL is not set")
        emulated = bool(os.environ.get(_EMULATOR_ENV)) or database_url.startswith("http:")
        if credential is None and not emulated:
            credential = _credential_from(sa_base64, credentials_path)
            if credential is None:
                raise StoreError("no Firebase credentials: set FIREBASE_SA_BASE64 or "
                                 "GOOGLE_APPLICATION_CREDENTIALS")
        # In emulator mode the SDK authenticates as "owner" and never asks the credential.
        # The project id is what verify_id_token checks a token's audience against (a service
        # account carries its own; with none, as against the Auth emulator, it must be given).
        app_options = {"databaseURL": database_url}
        if project_id:
            app_options["projectId"] = project_id
        try:
            self._app = firebase_admin.initialize_app(
                credential, app_options,
                name=app_name or "mita-store-" + uuid.uuid4().hex)
        except ValueError as error:
            raise StoreError("firebase: %s" % error) from error
        self.claim_wait_s = claim_wait_s
        self._meters_seen = set()

    @classmethod
    async def open(cls, source=None, **options):
        """open(database_url, **options) or open(config): a Config-like object with
        firebase_database_url, firebase_sa_base64, google_application_credentials. Opened from
        a config, the store initialises firebase-admin's default app when there is none yet,
        so firebase_admin.auth.verify_id_token() works without further setup."""
        if source is not None and not isinstance(source, str):
            options.setdefault("sa_base64", getattr(source, "firebase_sa_base64", ""))
            options.setdefault("credentials_path",
                               getattr(source, "google_application_credentials", ""))
            options.setdefault("project_id", getattr(source, "firebase_project_id", ""))
            if not _default_app_exists():
                options.setdefault("app_name", "[DEFAULT]")
            source = getattr(source, "firebase_database_url", None)
        return await asyncio.to_thread(lambda: cls(source, **options))

    def _ref(self, *parts):
        return db.reference("/".join(parts), app=self._app)

    async def _call(self, fn, *args):
        try:
            return await asyncio.to_thread(fn, *args)
        except exceptions.FirebaseError as error:
            raise StoreError("firebase: %s" % error) from error

    async def close(self):
        await asyncio.to_thread(firebase_admin.delete_app, self._app)

    # users and meters -------------------------------------------------------------------
    async def create_user(self, user):
        record = {k: v for k, v in user.items() if k in USER_FIELDS and v is not None}
        record.setdefault("user_id", uuid.uuid4().hex)
        record.setdefault("role", "customer")
        record.setdefault("created_at", _now_ms())

        def create(current):
            if current is not None:
                raise Conflict("user %s exists" % record["user_id"])
            return record
        ref = self._ref("users", safe_key(record["user_id"]))
        await self._call(ref.transaction, create)
        return _full(record, USER_FIELDS)

    async def get_user(self, user_id):
        value = await self._call(self._ref("users", safe_key(user_id)).get)
        return _full(value, USER_FIELDS)

    async def find_user_by_api_key_hash(self, key_hash):
        user_id = await self._call(self._ref("api_keys", safe_key(key_hash)).get)
        return await self.get_user(user_id) if isinstance(user_id, str) else None

    async def set_user_api_key_hash(self, user_id, key_hash):
        if await self.get_user(user_id) is None:
            raise NotFound("user %s" % user_id)
        uid, new = safe_key(user_id), safe_key(key_hash)
        owner = await self._call(self._ref("api_keys", new).get)
        if owner is not None and owner != user_id:
            raise Conflict("API key hash already in use")
        old = await self._call(self._ref("user_api_keys", uid).get)
        update = {"api_keys/" + new: user_id, "user_api_keys/" + uid: new}
        if old and old != new:
            update["api_keys/" + old] = None  # rotating a key revokes the old one
        await self._call(self._ref().update, update)

    async def create_meter(self, meter_no, user_id, device_key):
        user = await self.get_user(user_id)
        if user is None:
            raise NotFound("user %s" % user_id)
        now = _now_ms()
        record = {"meter_no": meter_no, "user_id": user_id, "current_balance_cents": 0,
                  "last_update": now, "created_at": now, "recharge_seq": 0}

        def create(current):
            if current is not None:
                raise Conflict("meter %s exists" % meter_no)
            return record
        key = safe_key(meter_no)
        try:
            await self._call(self._ref("meters", key).transaction, create)
        except Conflict:
            # A registration that died between the meter node and its key left a meter nobody
            # can sign as: the same user registering it again finishes it with this key.
            record = await self.get_meter(meter_no)
            if record.get("user_id") != user_id or await self.get_device_key(meter_no):
                raise
        update = {"device_keys/" + key: device_key}
        if not user.get("meter_no"):
            update["users/%s/meter_no" % safe_key(user_id)] = meter_no
        await self._call(self._ref().update, update)
        return _meter(record)

    async def get_meter(self, meter_no):
        return _meter(await self._call(self._ref("meters", safe_key(meter_no)).get))

    async def list_meters(self, user_id=None):
        ref = self._ref("meters")
        if user_id is None:
            found = await self._call(ref.get)
        else:
            found = await self._call(ref.order_by_child("user_id").equal_to(user_id).get)
        meters = [_meter(m) for m in _children(found).values()]
        return sorted(meters, key=lambda m: m["meter_no"])

    async def list_meters_page(self, after=None, limit=100, prefix=None):
        query = self._ref("meters").order_by_key()
        start = max(safe_key(after) if after else "", safe_key(prefix) if prefix else "")
        if start:
            # startAt is inclusive: one more, for the cursor's own meter dropped below
            query = query.start_at(start)
        if prefix:
            query = query.end_at(safe_key(prefix) + "\uf8ff")  # RTDB's prefix idiom
        found = _children(await self._call(query.limit_to_first(limit + 1).get))
        meters = sorted((_meter(m) for m in found.values()), key=lambda m: m["meter_no"])
        return [m for m in meters if m["meter_no"] != after][:limit]

    async def get_device_key(self, meter_no):
        return await self._call(self._ref("device_keys", safe_key(meter_no)).get)

    async def set_device_key(self, meter_no, device_key):
        await self._existing_meter_ref(meter_no)
        await self._call(self._ref("device_keys", safe_key(meter_no)).set, device_key)

    async def _existing_meter_ref(self, meter_no):
        ref = self._ref("meters", safe_key(meter_no))
        # a write to a missing meter would create a stray partial node
        if await self._call(ref.child("meter_no").get) is None:
            raise NotFound("meter %s" % meter_no)
        return ref

    async def update_meter_balance(self, meter_no, balance_cents, ts):
        cents(balance_cents, "balance_cents")
        ref = await self._existing_meter_ref(meter_no)
        await self._call(ref.update, {"current_balance_cents": balance_cents, "last_update": ts})
        return await self.get_meter(meter_no)

    async def update_meter_status(self, meter_no, status, ts, state_at=None):
        check_field_names(status)
        ref = await self._existing_meter_ref(meter_no)
        if state_at is None:
            await self._call(ref.child("status").update, dict(status, last_seen=ts))
            return await self.get_meter(meter_no)
        fields = dict(status, last_seen=ts, state_at=state_at)

        def merge(current):
            current = current if isinstance(current, dict) else {}
            if (current.get("state_at") or 0) > state_at:
                raise Abort()  # a later message's status is stored already
            return dict(current, **fields)
        await self._call(lambda: run_transaction(ref.child("status"), merge))
        return await self.get_meter(meter_no)

    async def update_meter_alerts(self, meter_no, alerts):
        check_field_names(alerts)
        ref = await self._existing_meter_ref(meter_no)
        if alerts:
            await self._call(ref.child("alerts").update, dict(alerts))
        return await self.get_meter(meter_no)

    async def claim_nonce(self, meter_no, nonce, ts, window_s, now, limit=4096):
        # nonces/<meter>/<bucket>/<nonce>: a bucket is one window of signed timestamps, so a
        # replay (same signed ts) lands in the nonce's own bucket, and buckets older than the
        # window are dropped whole. The count is kept on the bucket, in the same transaction.
        meter_ref = self._ref("nonces", safe_key(meter_no))
        window = max(1, int(window_s))
        bucket = int(ts) // window
        oldest = (int(now) - window) // window
        buckets = await self._call(lambda: meter_ref.get(shallow=True)) or {}
        for old in [b for b in buckets if not b.isdigit() or int(b) < oldest]:
            await self._call(meter_ref.child(old).delete)
        live = [int(b) for b in buckets if b.isdigit() and int(b) >= oldest and
                int(b) != bucket]
        others = 0
        for b in live:
            others += (await self._call(meter_ref.child(str(b)).child("_count").get)) or 0

        def claim(current):
            current = current or {}
            if nonce in current:
                raise Abort("replayed")
            if others + (current.get("_count") or 0) >= limit:
                raise Abort("full")
            return dict(current, **{nonce: int(ts), "_count": (current.get("_count") or 0) + 1})
        ref = meter_ref.child(str(bucket))

        def attempt():
            answer = run_transaction(ref, claim)  # the Abort's answer, or the node written
            return answer if isinstance(answer, str) else "ok"
        return await self._call(attempt)

    async def acquire_lease(self, name, holder, ttl_ms, now_ms):
        def take(current):
            if (isinstance(current, dict) and current.get("holder") != holder
                    and (current.get("expires_at") or 0) > now_ms):
                raise Abort(False)
            return {"holder": holder, "expires_at": int(now_ms + ttl_ms)}
        ref = self._ref("leases", safe_key(name))
        return await self._call(lambda: run_transaction(ref, take) is not False)

    async def write_telemetry(self, readings):
        paths = {}
        unknown = []
        for meter_no, (balance, alerts, ts) in readings.items():
            if balance is not None:
                cents(balance, "balance_cents")
            check_field_names(alerts or {})
            if not await self._meter_exists(meter_no):
                unknown.append(meter_no)
                continue
            base = "meters/%s/" % safe_key(meter_no)
            if balance is not None:
                paths[base + "current_balance_cents"] = balance
                paths[base + "last_update"] = ts
            for name, value in (alerts or {}).items():
                paths[base + "alerts/" + name] = value
        if paths:  # one multi-path update: every meter's fields, or none of them
            await self._call(self._ref().update, paths)
        return unknown

    async def _meter_exists(self, meter_no):
        # Meters are never deleted, so a meter seen once is known for good: the batch then
        # costs one read per meter the first time and none after.
        if meter_no in self._meters_seen:
            return True
        if await self._call(self._ref("meters", safe_key(meter_no), "meter_no").get) is None:
            return False
        self._meters_seen.add(meter_no)
        return True

    # STK requests -----------------------------------------------------------------------
    async def create_stk_request(self, request):
        record = {k: v for k, v in request.items() if k in STK_FIELDS and v is not None}
        record.setdefault("status", "pending")
        record.setdefault("created_at", _now_ms())
        if "amount_cents" in record:
            cents(record["amount_cents"])
        cid = record.get("checkout_request_id")

        def create(current):
            if current is not None:
                raise Conflict("STK request %s exists" % cid)
            return record
        await self._call(self._ref("stk_requests", safe_key(cid)).transaction, create)
        return _full(record, STK_FIELDS)

    async def get_stk_request(self, checkout_request_id):
        ref = self._ref("stk_requests", safe_key(checkout_request_id))
        return _full(await self._call(ref.get), STK_FIELDS)

    async def list_pending_stk_requests(self, created_before):
        query = self._ref("stk_requests").order_by_child("status").equal_to("pending")
        found = _children(await self._call(query.get)).values()
        pending = [_full(r, STK_FIELDS) for r in found
                   if isinstance(r.get("created_at"), int) and r["created_at"] < created_before]
        return sorted(pending, key=lambda r: (r["created_at"], r["checkout_request_id"]))

    async def list_stk_requests(self, status, limit=50):
        # Within one status RTDB orders by key: Daraja's CheckoutRequestIDs carry their
        # timestamp (ws_CO_<yyyymmddhhmmss>...), so the last keys are the newest requests.
        query = self._ref("stk_requests").order_by_child("status").equal_to(status)
        found = _children(await self._call(query.limit_to_last(limit).get)).values()
        requests = [_full(r, STK_FIELDS) for r in found]
        return sorted(requests, key=lambda r: (r["created_at"] or 0, r["checkout_request_id"]),
                      reverse=True)

    async def fail_stk_request(self, checkout_request_id, result_code, result_desc, ts):
        def fail(current):
            if current is None:
                raise NotFound("STK request %s" % checkout_request_id)
            if current.get("status") != "pending":
                raise Abort(False)
            return dict(current, status="failed", result_code=result_code,
                        result_desc=result_desc, settled_at=ts)
        ref = self._ref("stk_requests", safe_key(checkout_request_id))
        return await self._call(lambda: run_transaction(ref, fail) is not False)

    # the credit path --------------------------------------------------------------------
    async def record_payment(self, payment, mint=None):
        cents(payment.get("amount_cents"))
        claim = {k: payment[k] for k in _PAYMENT_FIELDS if payment.get(k) is not None}
        claim["transaction_id"] = transaction_id_for(payment.get("receipt"), payment["ts"])
        audit = audit_record(payment, claim["transaction_id"])
        if audit is not None:
            claim["audit"] = audit  # written with the payment, from the claim alone
        if await self.get_meter(payment["meter_no"]) is None:
            raise NotFound("meter %s" % payment["meter_no"])
        created, tx_id, meter_no, seq = await self._call(
            record_payment_once, self._ref, claim, self.claim_wait_s, mint)
        tx = await self._call(self._ref("transactions", tx_id).get)
        recharge = await self._call(self._ref("recharges", safe_key(meter_no), str(seq)).get)
        return created, _full(tx, TX_FIELDS), _full(recharge, RECHARGE_FIELDS)

    async def get_transaction_by_receipt(self, receipt):
        claim = await self._call(self._ref("receipts", safe_key(receipt)).get)
        if not claim or claim.get("state") != "recorded":
            return None
        tx = await self._call(self._ref("transactions", claim["transaction_id"]).get)
        return _full(tx, TX_FIELDS)

    async def list_transactions_for_user(self, user_id, limit=50):
        return await self._list_transactions("user_id", user_id, limit)

    async def list_transactions_for_meter(self, meter_no, limit=50):
        return await self._list_transactions("meter_no", meter_no, limit)

    async def list_audit(self, meter_no, limit=50):
        if int(limit) <= 0:
            return []
        found = _children(await self._call(self._ref("audit", safe_key(meter_no)).get))
        records = sorted((_full(a, AUDIT_FIELDS) for a in found.values()),
                         key=lambda a: (a["ts"], a["transaction_id"]), reverse=True)
        return records[:int(limit)]

    async def _list_transactions(self, child, value, limit):
        if int(limit) <= 0:
            return []
        query = (self._ref("transactions").order_by_child(child).equal_to(value)
                 .limit_to_last(int(limit)))
        found = [_full(t, TX_FIELDS) for t in _children(await self._call(query.get)).values()]
        return sorted(found, key=lambda t: (t["timestamp"], t["transaction_id"]), reverse=True)

    async def record_unmatched_payment(self, record):
        record = unmatched_record(record)
        stored = {k: v for k, v in record.items() if v is not None}

        def create(current):
            if current is not None:
                raise Abort((False, current))
            return stored
        ref = self._ref("unmatched_payments", safe_key(record["receipt"]))
        answer = await self._call(run_transaction, ref, create)
        created, value = answer if isinstance(answer, tuple) else (True, stored)
        return created, _full(value, UNMATCHED_FIELDS)

    async def get_unmatched_payment(self, receipt):
        ref = self._ref("unmatched_payments", safe_key(receipt))
        return _full(await self._call(ref.get), UNMATCHED_FIELDS)

    async def list_unmatched_payments(self, limit=500):
        found = _children(await self._call(self._ref("unmatched_payments").get)).values()
        records = sorted((_full(r, UNMATCHED_FIELDS) for r in found),
                         key=lambda r: (r["ts"], r["receipt"]))
        return records[:int(limit)]

    # recharges --------------------------------------------------------------------------
    async def list_recharges(self, meter_no, status=None):
        ref = self._ref("recharges", safe_key(meter_no))
        if status is None:
            found = await self._call(ref.get)
        else:
            found = await self._call(ref.order_by_child("status").equal_to(status).get)
        recharges = [_full(r, RECHARGE_FIELDS) for r in _children(found).values()]
        return sorted(recharges, key=lambda r: r["seq"])

    async def mark_recharge_sent(self, meter_no, seq, ts):
        ref = self._ref("recharges", safe_key(meter_no), str(int(seq)))
        if await self._call(ref.child("seq").get) is None:
            return None
        await self._call(ref.update, {"sent_at": ts})
        return _full(await self._call(ref.get), RECHARGE_FIELDS)

    async def ack_recharge(self, meter_no, seq, status, reason, ts):
        next_recharge_status(None, status)  # refuse an unknown status before any I/O

        def ack(current):
            if current is None:
                raise Abort(None)
            new_status = next_recharge_status(current.get("status"), status)
            if new_status == current.get("status") and current.get("acked_at") is not None:
                raise Abort(current)  # a repeated ack changes nothing
            acked = dict(current, status=new_status, acked_at=ts)
            if reason is not None:
                acked["reason"] = reason
            else:
                acked.pop("reason", None)
            return acked
        ref = self._ref("recharges", safe_key(meter_no), str(int(seq)))
        return _full(await self._call(run_transaction, ref, ack), RECHARGE_FIELDS)

    # consumption history ----------------------------------------------------------------
    async def put_consumption_hour(self, meter_no, date, hour, wh, cost_cents):
        check_date(date)
        hh = "%02d" % check_hour(hour)
        cents(wh, "wh")
        cents(cost_cents, "cost_cents")

        def put(current):
            day = _day(current, date)
            day["readings"][hh] = wh
            day["costs"][hh] = cost_cents
            day["total_consumption_wh"] = sum(day["readings"].values())
            day["cost_cents"] = sum(day["costs"].values())
            return day
        ref = self._ref("consumption_history", safe_key(meter_no), date)
        return _day(await self._call(ref.transaction, put), date)

    async def get_consumption(self, meter_no, date_from, date_to):
        check_date(date_from)
        check_date(date_to)
        query = (self._ref("consumption_history", safe_key(meter_no)).order_by_key()
                 .start_at(date_from).end_at(date_to))
        found = _children(await self._call(query.get))
        return [_day(found[d], d) for d in sorted(found)]

    # abuse limits -----------------------------------------------------------------------
    async def take_rate_slot(self, limits, now_ms, count=True):
        return await self._call(take_rate_slot, self._ref, check_limits(limits), now_ms, count)

    # tariff -----------------------------------------------------------------------------
    async def get_tariff(self):
        return await self._call(self._ref("tariff").get)

    async def set_tariff(self, tariff):
        version = tariff.get("version")
        if type(version) is not int:
            raise InvalidRecord("tariff version must be an integer")

        def put(current):
            if current is not None and version <= current.get("version", -1):
                raise Conflict("tariff version %d is not newer than %d"
                               % (version, current["version"]))
            return dict(tariff)
        await self._call(self._ref("tariff").transaction, put)
        return dict(tariff)


def _day(value, date):
    """A history day in full shape; hour keys may come back as an array index."""
    value = value if isinstance(value, dict) else {}
    readings = {"%02d" % int(k): v for k, v in _children(value.get("readings")).items()}
    costs = {"%02d" % int(k): v for k, v in _children(value.get("costs")).items()}
    return {"date": date, "total_consumption_wh": sum(readings.values()),
            "cost_cents": sum(costs.values()), "readings": readings, "costs": costs}
