"""Firebase mode for the browser tests: the Firebase Auth emulator (npm firebase-tools, the
Node-only emulator: it runs offline with a demo- project), the RTDB stand-in (standins/rtdb.py:
the RTDB emulator is a Java download not reachable here) and a cloud started with
MITA_STORE=firebase and MITA_AUTH=firebase against both. Users are made in the emulator
through its REST API, as the Firebase console or a sign-up would."""
import json
import os
import re
import subprocess
import sys

from tests.dashboard.dash_rig import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import mita_procs  # noqa: E402

PROJECT = "demo-mita"  # demo-*: the emulator serves it with no account and no network
FIREBASE_CLI = os.path.join(ROOT, "node_modules", ".bin", "firebase")
_OWNER = {"Authorization": "Bearer owner"}  # the emulator's admin credential


def _node_major():
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    found = re.match(r"v(\d+)\.", out)
    return int(found.group(1)) if found else 0


def firebase_missing():
    if _node_major() < 20:  # firebase-tools 15 asks for it (Debian 12's own nodejs is 18)
        return "firebase-tools needs Node 20 or newer (node --version)"
    if not os.path.exists(FIREBASE_CLI):
        return "firebase-tools is not installed (make setup: npm ci)"
    if not os.path.isdir(os.path.join(ROOT, "node_modules", "firebase")):
        return "the Firebase JS SDK is not installed (make setup: npm ci)"
    return None


class AuthEmulator:
    """`firebase emulators:start --only auth` on free ports, in `folder`."""

    def __init__(self, folder):
        self.port = mita_procs.free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.host
        config = {"emulators": {"auth": {"host": "127.0.0.1", "port": self.port},
                                "hub": {"host": "127.0.0.1", "port": mita_procs.free_port()},
                                "logging": {"host": "127.0.0.1", "port": mita_procs.free_port()},
                                "ui": {"enabled": False}, "singleProjectMode": True}}
        config_path = os.path.join(folder, "firebase.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        self.proc = mita_procs.Proc(
            "auth emulator", [FIREBASE_CLI, "emulators:start", "--only", "auth", "--project",
                              PROJECT, "--config", config_path],
            os.path.join(folder, "auth-emulator.log"),
            # its own config folder: no login, no update check from this machine's home
            env={"XDG_CONFIG_HOME": os.path.join(folder, "xdg"), "CI": "true"})

    def start(self, timeout_s=90):
        self.proc.start()
        mita_procs.wait_until(self._ready, timeout_s, "the Auth emulator (log: %s)"
                              % self.proc.log_path, every_s=0.2)
        return self

    def _ready(self):
        self.proc.check_alive()
        try:
            status, reply = mita_procs.http_json("GET", self.url + "/", timeout=2)
        except OSError:
            return False
        return status == 200 and reply.get("authEmulator", {}).get("ready")

    def stop(self):
        self.proc.stop()

    def _admin(self, method, path, body=None):
        status, reply = mita_procs.http_json(
            method, "%s/identitytoolkit.googleapis.com/v1/projects/%s%s" % (self.url, PROJECT, path),
            body, _OWNER)
        if status != 200:
            raise mita_procs.StackError("auth emulator %s: %s %s" % (path, status, reply))
        return reply

    def create_user(self, **fields):
        """A user as an admin makes one (email/password, or phoneNumber): its uid."""
        return self._admin("POST", "/accounts", fields)["localId"]

    def set_claims(self, uid, claims):
        """Custom claims (as firebase-admin's set_custom_user_claims); creating takes none."""
        self._admin("POST", "/accounts:update", {"localId": uid,
                                                 "customAttributes": json.dumps(claims)})

    def disable(self, uid):
        self._admin("POST", "/accounts:update", {"localId": uid, "disableUser": True})

    def id_token(self, email, password):
        """Signed in over the REST API, as the JS SDK does: the user's ID token."""
        status, reply = mita_procs.http_json(
            "POST", "%s/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=k"
            % self.url, {"email": email, "password": password, "returnSecureToken": True})
        if status != 200:
            raise mita_procs.StackError("sign-in %s: %s %s" % (email, status, reply))
        return reply["idToken"]

    def sms_code(self, phone):
        """The newest code the emulator 'sent' to `phone` (it logs them instead of sending)."""
        status, reply = mita_procs.http_json(
            "GET", "%s/emulator/v1/projects/%s/verificationCodes" % (self.url, PROJECT))
        codes = [c["code"] for c in reply.get("verificationCodes", []) if c["phoneNumber"] == phone]
        return codes[-1] if status == 200 and codes else None


class RtdbStandIn:
    def __init__(self, folder):
        self.port = mita_procs.free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.proc = mita_procs.Proc("rtdb stand-in", [
            sys.executable, "-m", "standins.rtdb", "--port", str(self.port),
            "--rules", os.path.join(ROOT, "database.rules.json")],
            os.path.join(folder, "rtdb.log"))

    def start(self, timeout_s=30):
        self.proc.start()
        mita_procs.wait_until(lambda: self.proc.check_alive() or mita_procs._listening(self.port),
                              timeout_s, "the RTDB stand-in on port %d" % self.port)
        return self

    def stop(self):
        self.proc.stop()


def firebase_cloud_env(auth, rtdb):
    return {"MITA_STORE": "firebase", "MITA_AUTH": "firebase", "FIREBASE_PROJECT_ID": PROJECT,
            "FIREBASE_DATABASE_URL": "https://%s-default-rtdb.firebaseio.com" % PROJECT,
            "FIREBASE_DATABASE_EMULATOR_HOST": rtdb.host,
            "FIREBASE_AUTH_EMULATOR_HOST": auth.host}
