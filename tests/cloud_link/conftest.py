"""Fixtures for the cloud link tests: `rig` runs a test once on the in-process amqtt broker
and once on mosquitto (skipped only when mosquitto is absent), `mosquitto_rig` and
`firebase_rig` pick one. These start brokers the way the cloud does in production;
tests/link/conftest.py has separate broker fixtures for the firmware client's own tests."""

import json
import os

import pytest

from link_rig import (BRIDGE_PASSWORD, BRIDGE_USERNAME, MOSQUITTO, ROOT, Harness, LinkRig,
                      LinkSettings, MosquittoProcess, create_app, free_port, make_config)

BRIDGE_OPTIONS = {"resend_every_s": 3600.0, "void_after_s": 0.0, "backoff_s": (0.05, 0.2),
                  "restart_pause_s": 0.05}


async def _rig(aiohttp_client, tmp_path, kind, store=None, **bridge_options):
    config = make_config(tmp_path)
    options = dict(BRIDGE_OPTIONS, **bridge_options)
    mosquitto = None
    if kind == "amqtt":
        settings = LinkSettings(port=free_port(), bridge_password=BRIDGE_PASSWORD)
        port = settings.port
    else:
        mosquitto = MosquittoProcess()
        await mosquitto.start()  # with an empty password file: the cloud fills it at start
        port = mosquitto.port
        settings = LinkSettings(
            url="mqtt://%s:%s@127.0.0.1:%d" % (BRIDGE_USERNAME, BRIDGE_PASSWORD, port),
            mosquitto_password_file=mosquitto.paths["passwords"],
            mosquitto_pid_file=mosquitto.pid_file)
    config.link = settings
    app = create_app(config, settle=False, store=store, bridge_options=options)
    client = await aiohttp_client(app)
    rig = LinkRig(Harness(client), kind, port, mosquitto)
    await rig.bridge.wait_connected()
    return rig


@pytest.fixture(params=["amqtt", "mosquitto"])
async def rig(request, aiohttp_client, tmp_path):
    """The same test on the in-process amqtt broker and on mosquitto."""
    if request.param == "mosquitto" and not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (%s); CI installs it" % MOSQUITTO)
    made = await _rig(aiohttp_client, tmp_path, request.param)
    try:
        yield made
    finally:
        if made.mosquitto is not None:
            await made.mosquitto.stop()


@pytest.fixture
async def mosquitto_rig(aiohttp_client, tmp_path):
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (%s); CI installs it" % MOSQUITTO)
    made = await _rig(aiohttp_client, tmp_path, "mosquitto")
    try:
        yield made
    finally:
        await made.mosquitto.stop()


@pytest.fixture(scope="session")
def rtdb_server():
    import pathlib
    from standins.rtdb import LocalRtdb
    rules = json.loads((pathlib.Path(ROOT) / "database.rules.json").read_text())
    with LocalRtdb(rules=rules) as server:
        yield server


@pytest.fixture
async def firebase_rig(aiohttp_client, tmp_path, rtdb_server, monkeypatch):
    """The bridge on the Firebase store (firebase-admin against the local RTDB), amqtt."""
    import uuid
    from cloud.store.firebase import FirebaseStore
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", rtdb_server.emulator_host)
    store = await FirebaseStore.open("https://mita-link-%s.firebaseio.com" % uuid.uuid4().hex[:12],
                                     claim_wait_s=2.0)
    try:
        yield await _rig(aiohttp_client, tmp_path, "amqtt", store=store)
    finally:
        await store.close()
