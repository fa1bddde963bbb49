"""Schemathesis against the live app: every operation of /api/openapi.json, a bounded and
seeded number of examples each, sent with real credentials (the operator key, a customer's API
key, a meter's signature) to the service listening on a real port with a real SQLite file.
Each answer must be no 5xx and conform to the description (status, content type, headers,
body), and a refused request (4xx) must leave users, meters, transactions and recharges as
they were. MITA_SCHEMATHESIS_EXAMPLES sets the examples per operation (default 20),
MITA_SCHEMATHESIS_SEED the seed (default 14)."""

import collections
import itertools
import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed
from schemathesis import checks

from cloud.auth import signed_headers
from cloud.openapi import build_description
from tests.cloud.cloud_harness import OPERATOR_KEY, SECRET, c2b_body, make_config
from tests.cloud.test_api import KENYA_TARIFF
from tests.cloud.live_service import LiveService

EXAMPLES = int(os.environ.get("MITA_SCHEMATHESIS_EXAMPLES", "20"))
SEED = int(os.environ.get("MITA_SCHEMATHESIS_SEED", "14"))
METER_NO = "FUZZ0001"
_CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
           checks.content_type_conformance, checks.response_headers_conformance,
           checks.response_schema_conformance]
# and, where schemathesis itself knows the credentials, that the operation refuses a request
# without them or with made-up ones (a meter's signature is added below requests, unseen)
_BEARER_CHECKS = _CHECKS + [checks.ignored_auth]
# Answered for operators only: a customer's key would only ever be refused there.
_OPERATOR_ONLY = {"POST /api/meters", "POST /api/meters/{meterId}/key", "POST /api/users",
                  "GET /api/fleet", "GET /api/payments/stk", "GET /api/payments/unmatched",
                  "GET /api/payments/counters", "POST /api/payments/unmatched/{receipt}/credit",
                  "PUT /api/tariff"}

# Body fields set to known records on the same turns: the meter to pay, the owner to register
# a meter for, the account number a paybill payment names.
_KNOWN_FIELDS = {
    "POST /api/payments/stkpush": {"meter_no": lambda w: METER_NO},
    "POST /api/payments/unmatched/{receipt}/credit": {"meter_no": lambda w: METER_NO},
    "POST /api/meters": {"user_id": lambda w: w.user_id},
    "POST /daraja/c2b/validation/{secret}": {"BillRefNumber": lambda w: METER_NO},
    "POST /daraja/c2b/confirmation/{secret}": {"BillRefNumber": lambda w: METER_NO},
}


class World:
    """The live service and what the fuzzer may know: keys, a meter, a checkout, a receipt."""

    def __init__(self, live):
        self.live = live
        self.turn = itertools.count()
        self.answers = collections.defaultdict(collections.Counter)  # label -> status -> n
        op = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        self.operator = op
        customer = self.post("/api/users", {"name": "Fuzz"}, op).json()
        self.user_id = customer["user_id"]
        self.customer = {"Authorization": f"Bearer {customer['api_key']}"}
        meter = self.post("/api/meters", {"meter_no": METER_NO, "user_id": self.user_id}, op)
        self.device_key = meter.json()["device_key"]
        self.post("/api/tariff", KENYA_TARIFF, op, method="PUT")
        push = self.post("/api/payments/stkpush",
                         {"meter_no": METER_NO, "phone": "0712345678", "amount": 100}, op)
        self.checkout = push.json()["checkout_request_id"]
        self.receipt = "UNMATCHED1"  # a paybill payment to an account that is no meter
        self.post(f"/daraja/c2b/confirmation/{SECRET}", c2b_body(self.receipt, "NOSUCH99"))

    def post(self, path, body, headers=None, method="POST"):
        resp = requests.request(method, self.live.base_url + path, json=body,
                                headers=headers, timeout=10)
        assert resp.status_code < 300, (path, resp.status_code, resp.text)
        return resp

    def prepare(self, case):
        """Credentials and, on every other example, the known ids in the path: random ids
        are only ever 404s, and the operations behind them would go unfuzzed."""
        known = next(self.turn) % 2 == 0
        path = case.operation.path
        secret_query = path == "/daraja/callback"
        if secret_query:
            case.query = dict(case.query or {}, secret=SECRET)
        ids = {"secret": SECRET}
        if known:
            ids.update(meterId=METER_NO, userId=self.user_id,
                       checkoutRequestId=self.checkout, receipt=self.receipt)
        for name in list(case.path_parameters or {}):
            if name in ids:
                case.path_parameters[name] = ids[name]
        if known and isinstance(case.body, dict):
            case.body.update({name: value(self) for name, value in
                              _KNOWN_FIELDS.get(case.operation.label, {}).items()
                              if name in case.body})
        if path.startswith("/api/meters/{meterId}/") and path.endswith(("balance", "status")):
            return {}, (MeterSignature(METER_NO, self.device_key) if known else None)
        if case.operation.label in _OPERATOR_ONLY or not known:
            return self.operator, None
        return self.customer, None


def checks_for(case):
    signed = any("meterSignature" in need for need in case.operation.definition.raw.get(
        "security", []))
    return _CHECKS if signed or not case.operation.definition.raw.get("security") \
        else _BEARER_CHECKS


class MeterSignature(requests.auth.AuthBase):
    """Signs the request as the meter does, over the exact bytes requests is sending."""

    def __init__(self, meter_no, device_key):
        self.meter_no = meter_no
        self.device_key = device_key

    def __call__(self, request):
        body = request.body or b""
        body = body.encode("utf-8") if isinstance(body, str) else body
        request.headers.update(signed_headers(self.meter_no, self.device_key, request.method,
                                              request.path_url, body))
        return request


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    live = LiveService(make_config(tmp_path_factory.mktemp("fuzz"))).start()
    live.quiet_sandbox()
    live.allow_failed_sign_ins(10**6)
    try:
        world = World(live)
        yield world
        print_tally(world.answers)
    finally:
        live.stop()


def print_tally(answers):
    """What the run sent and got (seen with pytest -s): the figures docs/reliability.md
    quotes. Requests schemathesis makes on its own (ignored_auth's) are not in it."""
    total = collections.Counter()
    for statuses in answers.values():
        total.update(statuses)
    print(f"\nschemathesis: {len(answers)} operations, {sum(total.values())} requests, "
          f"{EXAMPLES} examples per operation, seed {SEED}")
    print("  answers: " + ", ".join(f"{status}: {n}" for status, n in sorted(total.items())))
    for label, statuses in sorted(answers.items()):
        print(f"  {label}: " + ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items())))


# The description the app serves (tests/test_openapi.py holds them equal), loaded at
# collection so that each operation is a test of its own. (schemathesis' lazy
# from_fixture loader does not run on pytest 9.)
schema = schemathesis.openapi.from_dict(build_description())


@schema.parametrize()
@hypothesis_seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
          suppress_health_check=list(HealthCheck))
def test_the_live_api_keeps_its_contract(case, world):
    headers, auth = world.prepare(case)
    before = world.live.records()
    response = case.call(base_url=world.live.base_url, headers=headers, auth=auth, timeout=10)
    world.answers[case.operation.label][response.status_code] += 1
    case.validate_response(response, checks=checks_for(case), headers=headers)
    if case.operation.path == "/api/meters/{meterId}/key" and response.status_code == 200 \
            and response.json()["meter_no"] == METER_NO:
        world.device_key = response.json()["device_key"]  # rotated: sign with the new one
    if 400 <= response.status_code < 500:
        assert world.live.records() == before, (
            f"{case.operation.label} answered {response.status_code} and changed records")
