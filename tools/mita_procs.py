"""The mita stack as child processes on localhost (cloud, Daraja stand-in, mosquitto, simulated
meters): started on free ports, waited for, talked to over HTTP, and always cleaned up.
Shared by `make demo` (tools/demo.py) and the end-to-end suite (tests/e2e/)."""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from cloud.config import SANDBOX_PASSKEY, SANDBOX_SHORTCODE  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
# The embedded Daraja credentials (cloud/config.py defaults); the stand-in accepts them.
DARAJA_KEY, DARAJA_SECRET = "embedded-key", "embedded-secret"
PAYBILL = SANDBOX_SHORTCODE  # the paybill the cloud registers its C2B URLs for
_LIVE = set()  # every Proc started and not yet stopped, for stop_all()


class StackError(Exception):
    """A process of the stack did not start, answer or do what was waited for."""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout_s, what, every_s=0.02):
    """Poll check() until it returns something truthy; StackError naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError("timed out after %.1f s waiting for %s" % (timeout_s, what))
        time.sleep(every_s)


def http_json(method, url, body=None, headers=None, timeout=10.0):
    """(status, decoded JSON or text) without raising on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=dict({"Content-Type": "application/json"},
                                                  **(headers or {})))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status, text = reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def _load_prctl():
    """libc's prctl, looked up once here: the child may only call it (no dlopen after fork)."""
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl() if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child before exec: SIGTERM when we die without cleaning up (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class Proc:
    """One child process in its own process group, output to a log file (or a pipe)."""

    def __init__(self, name, argv, log_path, env=None, pipe=False):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, self.env.get("PYTHONPATH"))
                                                 if p)
        self.pipe = pipe
        self.proc = None
        self._log = None

    def start(self):
        self._log = open(self.log_path, "ab")
        out = subprocess.PIPE if self.pipe else self._log
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out,
                                     stderr=self._log, stdin=subprocess.PIPE if self.pipe
                                     else subprocess.DEVNULL, preexec_fn=_die_with_parent,
                                     # its own group: a terminal's Ctrl-C reaches only us,
                                     # and we stop the children in order
                                     start_new_session=True)
        _LIVE.add(self)
        return self

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise StackError("%s exited with %s; its log (%s):\n%s" % (
                self.name, self.proc.returncode, self.log_path, self.log_tail()))

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, kill=False, timeout_s=8.0):
        """SIGTERM (or SIGKILL) to the whole group, wait, then SIGKILL whatever is left."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers the child started, if any
        if proc.poll() is None:
            proc.wait(5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        if self._log is not None:
            self._log.close()


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all():
    """Every child still running (atexit, signal handlers, fixture finalisers)."""
    for proc in list(_LIVE):
        proc.stop(kill=True)


class DarajaProcess:
    """The Daraja stand-in (`python -m standins.daraja`) and its control endpoints."""

    def __init__(self, folder, callback_delay_s=0.2):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = Proc("daraja stand-in", [sys.executable, "-m", "standins.daraja",
                                             "--port", str(self.port), "--callback-delay",
                                             str(callback_delay_s)],
                         os.path.join(folder, "daraja.log"))

    def start(self, timeout_s=30):
        self.proc.start()
        wait_until(lambda: self.proc.check_alive() or _listening(self.port), timeout_s,
                   "the Daraja stand-in on port %d" % self.port)
        return self

    def stop(self):
        self.proc.stop()

    def control(self, path, body):
        status, reply = http_json("POST", self.url + path, body)
        if status != 200:
            raise StackError("stand-in %s %s: %s %s" % (path, body, status, reply))
        return reply

    def outcome(self, outcome, **options):
        """Script future STK pushes: success, cancelled, unreachable, wrong_pin, none, ..."""
        return self.control("/sandbox/outcome", dict(options, outcome=outcome))

    def clear_outcomes(self):
        http_json("DELETE", self.url + "/sandbox/outcome")

    def replay(self, checkout_id, times=1):
        return self.control("/sandbox/replay", {"CheckoutRequestID": checkout_id,
                                                "times": times})

    def settle(self, checkout_id):
        return self.control("/sandbox/settle", {"CheckoutRequestID": checkout_id})


def gateway_token(daraja_url):
    import base64
    basic = base64.b64encode(("%s:%s" % (DARAJA_KEY, DARAJA_SECRET)).encode()).decode()
    status, reply = http_json("GET", daraja_url + "/oauth/v1/generate?grant_type="
                              "client_credentials", headers={"Authorization": "Basic " + basic})
    if status != 200:
        raise StackError("stand-in OAuth: %s %s" % (status, reply))
    return {"Authorization": "Bearer " + reply["access_token"]}


def register_c2b(daraja_url, cloud_url, secret):
    """Point the stand-in's paybill at a cloud (the cloud does this itself in embedded mode)."""
    status, reply = http_json("POST", daraja_url + "/mpesa/c2b/v1/registerurl", {
        "ShortCode": PAYBILL, "ResponseType": "Completed",
        "ConfirmationURL": "%s/daraja/c2b/confirmation/%s" % (cloud_url, secret),
        "ValidationURL": "%s/daraja/c2b/validation/%s" % (cloud_url, secret)},
        headers=gateway_token(daraja_url))
    if status != 200:
        raise StackError("C2B register: %s %s" % (status, reply))


def paybill(daraja_url, account, amount_kes, phone="254708374149"):
    """A customer pays the paybill with `account` typed as the account number (C2B simulate)."""
    status, reply = http_json("POST", daraja_url + "/mpesa/c2b/v1/simulate", {
        "ShortCode": PAYBILL, "CommandID": "CustomerPayBillOnline", "Amount": amount_kes,
        "Msisdn": phone, "BillRefNumber": account}, headers=gateway_token(daraja_url))
    if status != 200:
        raise StackError("C2B simulate: %s %s" % (status, reply))
    return reply


class MosquittoProcess:
    """mosquitto from the files cloud.link.mosquitto writes; the cloud keeps its password file.
    `instances` > 1: a bridge login for each cloud instance (`cloud_env(n)` is instance n's)."""

    def __init__(self, folder, instances=1):
        from cloud.link import mosquitto
        from cloud.link.accounts import bridge_logins
        self.folder = os.path.join(folder, "mosquitto")
        os.makedirs(self.folder, exist_ok=True)
        os.chmod(self.folder, 0o755)  # started as root it drops to its own user
        self.port = free_port()
        self.logins = bridge_logins(instances)
        self.paths = mosquitto.write_config(self.folder, self.port, persistence=False,
                                            bridge_username=self.logins)
        self.pid_file = os.path.join(self.folder, "pid")
        self.bridge_passwords = [secrets.token_urlsafe(18) for _ in self.logins]
        self.proc = Proc("mosquitto", [MOSQUITTO, "-c", self.paths["mosquitto.conf"]],
                         os.path.join(self.folder, "log"))

    def start(self, timeout_s=10):
        self.proc.start()
        with open(self.pid_file, "w") as f:
            f.write(str(self.proc.proc.pid))
        wait_until(lambda: self.proc.check_alive() or _listening(self.port), timeout_s,
                   "mosquitto on port %d" % self.port)
        return self

    def stop(self):
        self.proc.stop()

    def cloud_env(self, instance=0):
        env = {"MITA_MQTT_URL": "mqtt://%s:%s@127.0.0.1:%d" % (
                   self.logins[instance], self.bridge_passwords[instance], self.port),
               "MITA_MOSQUITTO_PASSWORD_FILE": self.paths["passwords"],
               "MITA_MOSQUITTO_PID_FILE": self.pid_file}
        if len(self.logins) > 1:
            env["MITA_MQTT_SHARE_GROUP"] = "mita"
        return env


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class CloudApi:
    """The cloud's HTTP API as an operator (customers' calls take their own `key`)."""

    def __init__(self, url, operator_key):
        self.url = url
        self.operator_key = operator_key

    def api(self, method, path, body=None, key=None, expect=None):
        status, reply = http_json(method, self.url + path, body,
                                  {"Authorization": "Bearer " + (key or self.operator_key)})
        if expect is not None and status != expect:
            raise StackError("%s %s -> %s %s" % (method, path, status, reply))
        return status, reply

    def customer_with_meter(self, meter_no, name="Wanjiru Kamau", phone="0712345678"):
        """A customer and their meter, registered through the API: the meter's registration
        reply (meter_no canonical, device_key, mqtt_username, mqtt_password) plus api_key."""
        _, user = self.api("POST", "/api/users", {"name": name, "phone_number": phone},
                           expect=201)
        _, meter = self.api("POST", "/api/meters", {"meter_no": meter_no,
                                                    "user_id": user["user_id"]}, expect=201)
        return dict(meter, api_key=user["api_key"], user_id=user["user_id"])

    def stk_push(self, meter_no, amount_kes, phone="0712345678", key=None):
        _, reply = self.api("POST", "/api/payments/stkpush", {"meter_no": meter_no,
                                                             "phone": phone,
                                                             "amount": amount_kes},
                            key=key, expect=201)
        return reply

    def stk_status(self, checkout_id):
        return self.api("GET", "/api/payments/stk/%s" % checkout_id, expect=200)[1]

    def meter(self, meter_no):
        return self.api("GET", "/api/meters/%s" % meter_no, expect=200)[1]

    def transactions(self, meter_no):
        return self.api("GET", "/api/transactions/meter/%s" % meter_no, expect=200)[1]


_STAND_IN = re.compile(r"embedded daraja stand-in base_url='([^']+)'")


class CloudProcess(CloudApi):
    """`python -m cloud serve` with a SQLite file in `folder`; the in-process broker unless
    `env` names another (MosquittoProcess.cloud_env()); the embedded stand-in unless
    `daraja` (a DarajaProcess) is given. Restartable on the same ports and file."""

    def __init__(self, folder, env=None, daraja=None):
        self.folder = folder
        self.port = free_port()
        super().__init__("http://127.0.0.1:%d" % self.port, "op_" + secrets.token_urlsafe(24))
        self.secret = secrets.token_urlsafe(24)
        self.env = {"MITA_SQLITE_PATH": os.path.join(folder, "mita.sqlite3"),
                    "MITA_OPERATOR_KEY": self.operator_key, "MITA_CALLBACK_SECRET": self.secret,
                    "PORT": str(self.port)}
        self.daraja = daraja
        if daraja is not None:
            self.env.update({"DARAJA_BASE_URL": daraja.url, "DARAJA_CONSUMER_KEY": DARAJA_KEY,
                             "DARAJA_CONSUMER_SECRET": DARAJA_SECRET,
                             "DARAJA_SHORTCODE": SANDBOX_SHORTCODE,
                             "DARAJA_PASSKEY": SANDBOX_PASSKEY, "DARAJA_CALLBACK_URL":
                             "%s/daraja/callback/%s" % (self.url, self.secret)})
        self.env.update(env or {})
        if "MITA_MQTT_URL" not in self.env:
            self.env.setdefault("MITA_MQTT_PORT", str(free_port()))
        self.broker_port = int(self.env["MITA_MQTT_PORT"]) if "MITA_MQTT_PORT" in self.env \
            else int(self.env["MITA_MQTT_URL"].rsplit(":", 1)[1])
        self.daraja_url = daraja.url if daraja is not None else None
        self.proc = None
        self.starts = 0

    def start(self, timeout_s=45):
        self.starts += 1
        self.proc = Proc("cloud", [sys.executable, "-m", "cloud", "--env-file", "", "serve"],
                         os.path.join(self.folder, "cloud-%d.log" % self.starts), env=self.env)
        self.proc.start()
        wait_until(self._ready, timeout_s, "the cloud's /health and broker (log: %s)"
                   % self.proc.log_path, every_s=0.05)
        if self.daraja is None:
            found = _STAND_IN.search(self._log_text())
            self.daraja_url = found.group(1) if found else None
        else:
            register_c2b(self.daraja.url, self.url, self.secret)
        return self

    def _log_text(self):
        with open(self.proc.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _ready(self):
        self.proc.check_alive()
        try:
            status, _ = http_json("GET", self.url + "/health", timeout=2)
        except OSError:
            return False
        return status == 200 and "bridge connected" in self._log_text()

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

