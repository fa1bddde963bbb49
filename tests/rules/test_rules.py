"""database.rules.json evaluated by a real rules engine (npm `targaryen`, through
tests/rules/evaluate.js): for each rule a case it allows and one it denies. A customer reads
only their own user, meters, transactions, history and recharges; no customer, anonymous
client or meter writes a balance, a transaction, a recharge, a role or another user's record.
The server writes with firebase-admin's service account, which the rules do not bind: that it
never narrows itself to a client's auth is checked at the end."""

import json
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNNER = pathlib.Path(__file__).with_name("evaluate.js")
NODE = shutil.which("node")
HAVE_TARGARYEN = (ROOT / "node_modules" / "targaryen" / "package.json").is_file()
pytestmark = pytest.mark.skipif(
    NODE is None or not HAVE_TARGARYEN,
    reason="NOT EVALUATED: database.rules.json needs node and npm's targaryen; "
           "run `make setup` (npm ci) with node installed (.ci/run installs nodejs npm)")

NOW = 1_764_120_000_000
AMINA, BARAKA = {"uid": "u1"}, {"uid": "u2"}
METER_LOGIN = {"uid": "meter:M1"}  # should a meter ever sign in to the database itself
DATA = {
    "users": {"u1": {"user_id": "u1", "name": "Amina", "role": "customer", "meter_no": "M1"},
              "u2": {"user_id": "u2", "name": "Baraka", "role": "customer", "meter_no": "M2"}},
    "meters": {"M1": {"meter_no": "M1", "user_id": "u1", "current_balance_cents": 5000,
                      "status": {"load_connected": True}},
               "M2": {"meter_no": "M2", "user_id": "u2", "current_balance_cents": 100}},
    "transactions": {"T1": {"transaction_id": "T1", "user_id": "u1", "meter_no": "M1",
                            "amount_cents": 5000},
                     "T2": {"transaction_id": "T2", "user_id": "u2", "meter_no": "M2",
                            "amount_cents": 100}},
    "consumption_history": {"M1": {"2026-11-26": {"total_consumption_wh": 850}},
                            "M2": {"2026-11-26": {"total_consumption_wh": 10}}},
    "recharges": {"M1": {"1": {"seq": 1, "amount_cents": 5000, "status": "delivered"}},
                  "M2": {"1": {"seq": 1, "amount_cents": 100, "status": "pending"}}},
    "stk_requests": {"ws_CO_1": {"meter_no": "M1", "user_id": "u1", "status": "pending"}},
    "tariff": {"version": 3, "bands": [{"rate": 2500}]},
    "receipts": {"R1": {"state": "recorded"}}, "checkouts": {"ws_CO_1": {"receipt": "R1"}},
    "device_keys": {"M1": "dk_secret"}, "api_keys": {"h1": "u1"},
    "user_api_keys": {"u1": "h1"}, "unmatched_payments": {"R9": {"amount_cents": 100}},
    "rate_limits": {"stk:phone:254712345678": {"t": NOW}},
}
OWN_METERS = {"orderByChild": "user_id", "equalTo": "u1"}
OTHERS_METERS = {"orderByChild": "user_id", "equalTo": "u2"}

# (what, who, op, path, value or query, allowed)
CASES = [
    # users: read your own record only; write only your own name and email, validated
    ("a customer reads their own user", AMINA, "read", "users/u1", None, True),
    ("a customer reads another user", AMINA, "read", "users/u2", None, False),
    ("anonymous reads a user", None, "read", "users/u1", None, False),
    ("a customer lists all users", AMINA, "read", "users", None, False),
    ("a customer renames themself", AMINA, "write", "users/u1/name", "Amina W.", True),
    ("a customer renames another user", AMINA, "write", "users/u2/name", "x", False),
    ("a name must be a short string", AMINA, "write", "users/u1/name", "x" * 101, False),
    ("a customer sets their email", AMINA, "write", "users/u1/email", "a@example.com", True),
    ("an email must be a string", AMINA, "write", "users/u1/email", 42, False),
    ("a customer makes themself operator", AMINA, "write", "users/u1/role", "operator", False),
    ("a customer writes their last payment", AMINA, "write",
     "users/u1/last_payment_amount_cents", 10**9, False),
    ("a customer replaces their whole record", AMINA, "write", "users/u1",
     {"name": "Amina", "role": "operator"}, False),
    ("a customer creates a user", AMINA, "write", "users/u3", {"name": "Mallory"}, False),
    ("anonymous creates a user", None, "write", "users/u9/name", "x", False),
    # meters: your own, by query or by key; nobody writes one
    ("a customer lists their own meters", AMINA, "read", "meters", OWN_METERS, True),
    ("a customer lists another's meters", AMINA, "read", "meters", OTHERS_METERS, False),
    ("a customer lists every meter", AMINA, "read", "meters", None, False),
    ("a customer reads their meter", AMINA, "read", "meters/M1", None, True),
    ("a customer reads another's meter", AMINA, "read", "meters/M2", None, False),
    ("anonymous reads a meter", None, "read", "meters/M1", None, False),
    ("a customer writes their balance", AMINA, "write", "meters/M1/current_balance_cents",
     10**9, False),
    ("a customer takes over a meter", AMINA, "write", "meters/M2/user_id", "u1", False),
    ("a customer closes their relay", AMINA, "write", "meters/M1/status/load_connected",
     True, False),
    ("a meter login writes its own status", METER_LOGIN, "write",
     "meters/M1/status/load_connected", True, False),
    ("a meter login writes its balance", METER_LOGIN, "write",
     "meters/M1/current_balance_cents", 10**9, False),
    # transactions: your own, by query or by key; nobody writes one
    ("a customer lists their transactions", AMINA, "read", "transactions",
     {"orderByChild": "user_id", "equalTo": "u1"}, True),
    ("a customer lists another's transactions", AMINA, "read", "transactions",
     {"orderByChild": "user_id", "equalTo": "u2"}, False),
    ("a customer reads their transaction", AMINA, "read", "transactions/T1", None, True),
    ("a customer reads another's transaction", AMINA, "read", "transactions/T2", None, False),
    ("a customer forges a transaction", AMINA, "write", "transactions/T3",
     {"user_id": "u1", "meter_no": "M1", "amount_cents": 10**9}, False),
    ("a customer edits their transaction", AMINA, "write", "transactions/T1/amount_cents",
     10**9, False),
    # consumption history and recharges: the owner's meter only; nobody writes them
    ("a customer reads their history", AMINA, "read", "consumption_history/M1", None, True),
    ("a customer reads another's history", AMINA, "read", "consumption_history/M2", None,
     False),
    ("a customer rewrites their history", AMINA, "write",
     "consumption_history/M1/2026-11-26/total_consumption_wh", 0, False),
    ("a customer reads their recharges", AMINA, "read", "recharges/M1", None, True),
    ("a customer reads another's recharges", AMINA, "read", "recharges/M2", None, False),
    ("a customer adds a recharge", AMINA, "write", "recharges/M1/2",
     {"seq": 2, "amount_cents": 10**9, "status": "pending"}, False),
    ("a customer re-opens a recharge", AMINA, "write", "recharges/M1/1/status", "pending",
     False),
    # the tariff: any signed-in reader, no writer
    ("a customer reads the tariff", AMINA, "read", "tariff", None, True),
    ("anonymous reads the tariff", None, "read", "tariff", None, False),
    ("a customer writes the tariff", AMINA, "write", "tariff/version", 99, False),
    # server-only nodes: secrets and the exactly-once indexes
    ("a customer reads STK requests", AMINA, "read", "stk_requests/ws_CO_1", None, False),
    ("a customer settles their STK request", AMINA, "write", "stk_requests/ws_CO_1/status",
     "success", False),
    ("a customer reads receipts", AMINA, "read", "receipts", None, False),
    ("a customer claims a receipt", AMINA, "write", "receipts/R2", {"state": "recorded"},
     False),
    ("a customer reads checkouts", AMINA, "read", "checkouts/ws_CO_1", None, False),
    ("a customer writes a checkout", AMINA, "write", "checkouts/ws_CO_2", {"receipt": "R"},
     False),
    ("a customer reads a device key", AMINA, "read", "device_keys/M1", None, False),
    ("a customer sets a device key", AMINA, "write", "device_keys/M1", "mine", False),
    ("a customer reads API keys", AMINA, "read", "api_keys", None, False),
    ("a customer plants an API key", AMINA, "write", "api_keys/h9", "u2", False),
    ("a customer reads their API key hash", AMINA, "read", "user_api_keys/u1", None, False),
    ("a customer writes their API key hash", AMINA, "write", "user_api_keys/u1", "h9", False),
    ("a customer reads unmatched payments", AMINA, "read", "unmatched_payments", None, False),
    ("a customer routes an unmatched payment", AMINA, "write", "unmatched_payments/R9", None,
     False),
    ("a customer reads the abuse counts", AMINA, "read", "rate_limits", None, False),
    ("a customer clears their push count", AMINA, "write",
     "rate_limits/stk:phone:254712345678", None, False),
    # the root: nothing by default
    ("a customer reads everything", AMINA, "read", "", None, False),
    ("a customer writes everything", AMINA, "write", "", {}, False),
    ("a multi-path update sneaks a balance in", AMINA, "update", "",
     {"users/u1/name": "Amina", "meters/M1/current_balance_cents": 10**9}, False),
    ("a multi-path update of own name and email", AMINA, "update", "users/u1",
     {"name": "Amina", "email": "a@example.com"}, True),
]


@pytest.fixture(scope="module")
def verdicts():
    rules = json.loads((ROOT / "database.rules.json").read_text())
    cases = [{"auth": who, "op": op, "path": path,
              **({"query": arg} if op == "read" else {"value": arg})}
             for _, who, op, path, arg, _ in CASES]
    done = subprocess.run([NODE, str(RUNNER)], input=json.dumps(
        {"rules": rules, "data": DATA, "now": NOW, "cases": cases}),
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_rule_case(verdicts, index):
    what, _, _, _, _, allowed = CASES[index]
    assert verdicts[index]["allowed"] is allowed, verdicts[index]["info"]


def test_every_node_has_an_allow_or_deny_case_for_reads_and_writes():
    rules = json.loads((ROOT / "database.rules.json").read_text())["rules"]
    for node in (k for k in rules if not k.startswith(".")):
        ops = {op for _, _, op, path, _, _ in CASES if path.split("/")[0] == node}
        assert {"read", "write"} <= ops, node
    readable = {c[3].split("/")[0] for c in CASES if c[2] == "read" and c[5]}
    assert readable == {n for n in rules if not n.startswith(".")
                        and any(".read" in str(v) for v in [rules[n]])}


def test_the_server_writes_as_the_service_account_not_as_a_client():
    # With databaseAuthVariableOverride the admin SDK would be held to these rules, and the
    # server could no longer write balances, transactions or recharges.
    source = (ROOT / "cloud" / "store" / "firebase.py").read_text()
    assert "databaseAuthVariableOverride" not in source
    assert '{"databaseURL": database_url}' in source
