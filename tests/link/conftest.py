"""Broker fixtures for the meter-cloud link tests (reusable by the cloud bridge's tests).

`mosquitto_broker` and `amqtt_broker` each yield a started broker handle with .host, .port,
.kind, `await .add_user(user, password, superuser=False)` and `await .restart()`; `any_broker`
runs a test once per broker. mosquitto tests skip only when the binary is absent.
"""
import os
import shutil
import sys

import pytest

import simulator
from brokers import MOSQUITTO, AmqttBroker, MosquittoBroker
from simulator.seam import ROOT

# The firmware's own client runs here under CPython, as in tests/firmware.
simulator.install()


@pytest.fixture(scope="session")
def firmware_lib(tmp_path_factory):
    """The firmware built as for the device (.mpy under lib/), for MicroPython peers."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build_firmware
    out = str(tmp_path_factory.mktemp("fw"))
    errors = build_firmware.build(out)
    assert errors == [], errors
    return os.path.join(out, "lib")


@pytest.fixture
async def amqtt_broker():
    broker = AmqttBroker()
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@pytest.fixture
async def mosquitto_broker():
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (%s); CI installs it" % MOSQUITTO)
    broker = MosquittoBroker()
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
        broker.cleanup()


@pytest.fixture
async def mosquitto_tls_broker():
    """mosquitto with a second, TLS listener on .tls_port; .cafile is the certificate to trust."""
    if not os.path.exists(MOSQUITTO) or not shutil.which("openssl"):
        pytest.skip("mosquitto or openssl is not installed; CI installs both")
    broker = MosquittoBroker(tls=True)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
        broker.cleanup()


@pytest.fixture(params=["mosquitto", "amqtt"])
def any_broker(request):
    name = request.param + "_broker"
    return request.getfixturevalue(name)
