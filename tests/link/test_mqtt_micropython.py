"""The firmware MQTT client running under the MicroPython unix port (64 KB heap, the .mpy build)
against real brokers on 127.0.0.1; the other end is the same client under CPython."""
import asyncio
import os
import sys

import pytest

from test_mqtt_client import Meter, until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpy", "mqtt_peer.py")
LINE_TIMEOUT = 20  # generous: a TLS handshake on a loaded machine is slow


class MpyPeer:
    def __init__(self, proc):
        self.proc = proc
        self.lines = []

    async def line(self, prefix):
        """The next stdout line starting with prefix (earlier other lines are kept)."""
        while True:
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), LINE_TIMEOUT)
            except asyncio.TimeoutError:
                self.proc.kill()
                err = await self.proc.stderr.read()
                raise AssertionError("no %r line from micropython: %s\n%s"
                                     % (prefix, self.lines, err.decode()))
            if not raw:
                err = await self.proc.stderr.read()
                raise AssertionError("micropython exited: %s\n%s" % (self.lines, err.decode()))
            text = raw.decode().rstrip("\n")
            self.lines.append(text)
            if text.startswith(prefix):
                return text

    async def finish(self):
        try:
            await asyncio.wait_for(self.proc.wait(), LINE_TIMEOUT)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        rest = (await self.proc.stdout.read()).decode().splitlines()
        self.lines += rest
        assert self.proc.returncode == 0, (self.lines, (await self.proc.stderr.read()).decode())


async def start_peer(lib, broker, mode, user, password, *extra):
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(exe):
        pytest.fail("the MicroPython unix port is not installed")
    env = dict(os.environ, MICROPYPATH=lib + ":.frozen")
    proc = await asyncio.create_subprocess_exec(
        exe, "-X", "heapsize=64k", PEER, mode, broker.host, str(broker.port), user, password,
        *[str(e) for e in extra], env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    return MpyPeer(proc)


def stats(line):
    return dict(kv.split("=") for kv in line.split()[1:])


@pytest.fixture
async def accounts(any_broker):
    await any_broker.add_user("m1", "pw1")
    await any_broker.add_user("cloud", "cpw", superuser=True)
    return any_broker


async def test_micropython_meter_connects_publishes_and_receives(accounts, firmware_lib):
    cloud = await Meter(accounts, "cloud", "cpw", subs=[("meters/m1/telemetry", 1)]).start()
    peer = await start_peer(firmware_lib, accounts, "serve", "m1", "pw1")
    try:
        assert await peer.line("up") == "up 1"
        await until(lambda: cloud.messages)
        assert cloud.messages[0][1] == b'{"v":1,"from":"mpy"}'
        cloud.client.publish("meters/m1/recharge", b'{"v":1,"seq":1}', qos=1)
        assert await peer.line("msg") == "msg meters/m1/recharge b'{\"v\":1,\"seq\":1}'"
        cloud.client.publish("meters/m1/recharge", b"quit", qos=1)
        s = stats(await peer.line("stats"))
        assert s["connects"] == "1" and s["callback_errors"] == "0"
        await peer.finish()
        heap = [line for line in peer.lines if line.startswith("heap")]
        assert heap and int(heap[0].split()[1]) < 64 * 1024
    finally:
        await cloud.stop()


async def test_micropython_meter_gets_qos1_held_while_it_was_away(accounts, firmware_lib):
    cloud = await Meter(accounts, "cloud", "cpw").start()
    try:
        peer = await start_peer(firmware_lib, accounts, "serve", "m1", "pw1")
        await peer.line("up")
        cloud.client.publish("meters/m1/recharge", b"quit", qos=1)
        await peer.finish()  # clean DISCONNECT, the session stays at the broker
        cloud.client.publish("meters/m1/recharge", b'{"n":1}', qos=1)
        cloud.client.publish("meters/m1/recharge", b'{"n":2}', qos=1)
        cloud.client.publish("meters/m1/recharge", b"quit", qos=1)
        await until(lambda: cloud.client.pending() == 0)
        peer = await start_peer(firmware_lib, accounts, "serve", "m1", "pw1")
        await peer.line("stats")
        got = [line for line in peer.lines if line.startswith("msg")]
        assert got == ["msg meters/m1/recharge b'{\"n\":1}'", "msg meters/m1/recharge b'{\"n\":2}'",
                       "msg meters/m1/recharge b'quit'"]
        await peer.finish()
    finally:
        await cloud.stop()


async def test_micropython_meter_rides_through_a_broker_restart(accounts, firmware_lib):
    peer = await start_peer(firmware_lib, accounts, "serve", "m1", "pw1")
    await peer.line("up 1")
    await accounts.restart()
    if accounts.kind == "amqtt":
        await accounts.add_user("cloud", "cpw", superuser=True)
    assert await peer.line("up") == "up 2"
    cloud = await Meter(accounts, "cloud", "cpw").start()
    try:
        cloud.client.publish("meters/m1/recharge", b'{"after":"restart"}', qos=1)
        assert "restart" in await peer.line("msg")
        cloud.client.publish("meters/m1/recharge", b"quit", qos=1)
        await peer.finish()
    finally:
        await cloud.stop()


async def test_micropython_meter_with_a_wrong_password_is_refused(accounts, firmware_lib):
    peer = await start_peer(firmware_lib, accounts, "refused", "m1", "nope")
    await peer.finish()
    assert "down" in peer.lines
    s = stats([line for line in peer.lines if line.startswith("stats")][0])
    assert s["connects"] == "0" and int(s["failures"]) >= 2
    if accounts.kind == "mosquitto":
        assert s["refusal"] in ("4", "5")


async def test_micropython_meter_drops_oversized_and_survives_garbage(accounts, firmware_lib):
    cloud = await Meter(accounts, "cloud", "cpw").start()
    peer = await start_peer(firmware_lib, accounts, "serve", "m1", "pw1", 512)
    try:
        await peer.line("up")
        cloud.client.publish("meters/m1/recharge", b"y" * 20000, qos=1)
        cloud.client.publish("meters/m1/recharge", b"\xff\xfe{not json", qos=1)
        cloud.client.publish("meters/m1/recharge", b'{"ok":true}', qos=1)
        cloud.client.publish("meters/m1/recharge", b"quit", qos=1)
        s = stats(await peer.line("stats"))
        assert s["oversized"] == "1" and s["callback_errors"] == "1" and s["connects"] == "1"
        got = [line for line in peer.lines if line.startswith("msg")]
        assert len(got) == 3 and "ok" in got[1]
        await peer.finish()
    finally:
        await cloud.stop()


async def test_micropython_meter_over_tls_verifies_the_broker(mosquitto_tls_broker, firmware_lib):
    broker = mosquitto_tls_broker
    await broker.add_user("m1", "pw1")
    await broker.add_user("cloud", "cpw", superuser=True)

    class TlsPort:  # the peer is told the TLS listener's port
        host = broker.host
        port = broker.tls_port

    # MicroPython's mbedTLS takes the CA as DER, as the device keeps it.
    import ssl
    der = os.path.join(broker.folder, "ca.der")
    with open(broker.cafile) as f, open(der, "wb") as out:
        out.write(ssl.PEM_cert_to_DER_cert(f.read()))
    cloud = await Meter(broker, "cloud", "cpw", subs=[("meters/m1/telemetry", 1)]).start()
    peer = await start_peer(firmware_lib, TlsPort, "serve", "m1", "pw1", 4096, der)
    try:
        assert await peer.line("up") == "up 1"
        await until(lambda: cloud.messages)
        cloud.client.publish("meters/m1/recharge", b"quit", qos=1)
        await peer.finish()
    finally:
        await cloud.stop()


async def test_micropython_meter_refuses_a_broker_it_cannot_verify(mosquitto_tls_broker,
                                                                   firmware_lib, tmp_path):
    import subprocess
    broker = mosquitto_tls_broker
    await broker.add_user("m1", "pw1")
    other = str(tmp_path / "other.der")  # a CA that did not sign the broker's certificate
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=someone-else", "-keyout", str(tmp_path / "k"),
                    "-outform", "DER", "-out", other], check=True, capture_output=True)

    class TlsPort:
        host = broker.host
        port = broker.tls_port

    peer = await start_peer(firmware_lib, TlsPort, "refused", "m1", "pw1", 4096, other)
    await peer.finish()
    assert "down" in peer.lines
    s = stats([line for line in peer.lines if line.startswith("stats")][0])
    assert s["connects"] == "0" and int(s["failures"]) >= 2
