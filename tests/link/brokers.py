"""Real MQTT brokers for link tests: mosquitto (a subprocess with a password file and an ACL)
and amqtt (in-process, with a small auth/ACL plugin), behind one handle shape.

Both enforce the protocol's access rule (docs/protocol.md): a meter account may publish and
subscribe only under meters/<its user name>/; a superuser account (the cloud bridge) anywhere.
"""
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_connack(host, port, user, password, timeout=2.0, client_id=None):
    """CONNECT with a throwaway clean session; the CONNACK return code (0 = accepted), or None
    if the broker closed without one. client_id: a throwaway one unless given."""
    def utf8(text):
        data = text.encode()
        return len(data).to_bytes(2, "big") + data

    body = (utf8("MQTT") + bytes([4, 0xC2]) + (5).to_bytes(2, "big")
            + utf8(client_id or "probe-%s-%d" % (user, os.getpid())) + utf8(user)
            + utf8(password))
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        reply = b""
        while len(reply) < 4:
            chunk = s.recv(4 - len(reply))
            if not chunk:
                return None
            reply += chunk
        s.sendall(b"\xe0\x00")
    return reply[3]


def topic_allowed(topic, user, superusers):
    if user in superusers:
        return True
    prefix = "meters/%s/" % user
    return topic.startswith(prefix) and "+" not in user and "#" not in user


@dataclass
class Accounts:
    """Who may connect (user -> password) and who may go anywhere (superusers)."""
    passwords: dict = field(default_factory=dict)
    superusers: set = field(default_factory=set)


class AccountsAuthPlugin(BaseAuthPlugin):
    """amqtt authentication against an Accounts object that tests can change while running."""

    @dataclass
    class Config:
        accounts: Any = None

    async def authenticate(self, *, session):
        accounts = self.context.config.accounts
        user = session.username
        return bool(user) and accounts.passwords.get(user) == (session.password or "")


class AccountsTopicPlugin(BaseTopicPlugin):
    """amqtt ACL: a meter account only under meters/<user>/, superusers anywhere."""

    @dataclass
    class Config:
        accounts: Any = None

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        if action == Action.RECEIVE:
            return True
        accounts = self.context.config.accounts
        user = session.username if session else None
        return bool(user and topic) and topic_allowed(topic, user, accounts.superusers)


class AmqttBroker:
    host = "127.0.0.1"
    kind = "amqtt"

    def __init__(self, port=None):
        self.port = port or free_port()
        self.accounts = Accounts()
        self.broker = None

    def config(self):
        plugins = "%s.%%s" % __name__
        return {
            "listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (self.host, self.port)}},
            "plugins": {plugins % "AccountsAuthPlugin": {"accounts": self.accounts},
                        plugins % "AccountsTopicPlugin": {"accounts": self.accounts}},
        }

    async def start(self):
        self.broker = Broker(self.config())
        await self.broker.start()

    async def stop(self):
        if self.broker is not None:
            await self.broker.shutdown()
            self.broker = None

    async def restart(self):
        await self.stop()
        await self.start()

    async def add_user(self, user, password, superuser=False):
        self.accounts.passwords[user] = password
        if superuser:
            self.accounts.superusers.add(user)


class MosquittoBroker:
    """mosquitto on 127.0.0.1 with its own config, password file and ACL in a temp folder."""
    host = "127.0.0.1"
    kind = "mosquitto"

    def __init__(self, port=None, tls=False):
        self.port = port or free_port()
        self.tls_port = None
        self.cafile = None
        # Not pytest's tmp_path: mosquitto started as root drops to its own user, which must be
        # able to read these files.
        self.folder = tempfile.mkdtemp(prefix="mita-mosquitto-")
        os.chmod(self.folder, 0o755)
        self.passwords = os.path.join(self.folder, "passwords")
        self.acl = os.path.join(self.folder, "acl")
        self.conf = os.path.join(self.folder, "mosquitto.conf")
        self.superusers = set()
        self.proc = None
        self.log_path = os.path.join(self.folder, "log")
        open(self.passwords, "w").close()
        self._write_acl()
        # set_tcp_nodelay: without it mosquitto's Nagle meets the client's delayed ACK and a
        # recharge's round trip takes ~45 ms instead of ~2 ms on loopback.
        with open(self.conf, "w") as f:
            f.write("listener %d %s\nallow_anonymous false\npassword_file %s\nacl_file %s\n"
                    "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
                    "max_keepalive 600\nset_tcp_nodelay true\n"
                    % (self.port, self.host, self.passwords, self.acl))
            if tls:
                self.tls_port = free_port()
                cert, key = self._make_certificate()
                f.write("listener %d %s\ncertfile %s\nkeyfile %s\n"
                        % (self.tls_port, self.host, cert, key))
        for path in (self.passwords, self.acl, self.conf):
            os.chmod(path, 0o644)

    def _make_certificate(self):
        """A self-signed certificate for 127.0.0.1, which is also the CA clients trust."""
        cert = os.path.join(self.folder, "server.crt")
        key = os.path.join(self.folder, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        for path in (cert, key):
            os.chmod(path, 0o644)
        self.cafile = cert
        return cert, key

    def _write_acl(self):
        lines = []
        for user in sorted(self.superusers):
            lines += ["user %s" % user, "topic readwrite #", ""]
        lines += ["pattern readwrite meters/%u/#", ""]
        with open(self.acl, "w") as f:
            f.write("\n".join(lines))
        os.chmod(self.acl, 0o644)

    async def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self._log,
                                     stderr=subprocess.STDOUT)
        await self._wait(lambda: self._listening())

    def _listening(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("mosquitto exited: " + self.log_text())
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    async def _wait(self, ready, tries=500):
        for _ in range(tries):
            if ready():
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("mosquitto not ready: " + self.log_text())

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    async def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self._log.close()

    async def restart(self):
        await self.stop()
        await self.start()

    async def add_user(self, user, password, superuser=False):
        """Add an account to the running broker (SIGHUP reloads the files), and return once
        the broker accepts it."""
        subprocess.run([MOSQUITTO_PASSWD, "-b", self.passwords, user, password], check=True,
                       capture_output=True)
        os.chmod(self.passwords, 0o644)
        if superuser:
            self.superusers.add(user)
            self._write_acl()
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)
            await self._wait(lambda: self._accepts(user, password))

    def _accepts(self, user, password):
        # While mosquitto reloads after SIGHUP a probe may be reset: not ready yet, try again.
        try:
            return probe_connack(self.host, self.port, user, password) == 0
        except OSError:
            return False

    def cleanup(self):
        shutil.rmtree(self.folder, ignore_errors=True)
