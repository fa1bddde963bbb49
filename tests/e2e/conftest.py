"""The end-to-end stack per test module and broker (the cloud's in-process amqtt, and
mosquitto): the cloud, the Daraja stand-in, the broker and simulated meters as real processes
on localhost (tools/mita_procs.py). Every process is stopped in a finaliser, also when a test
fails, and none outlives its module."""
import os
import shutil
import tempfile

import pytest

from tests.e2e.e2e_rig import Stack, mita_procs


def _brokers():
    kinds = [pytest.param("amqtt")]
    mark = () if os.path.exists(mita_procs.MOSQUITTO) else pytest.mark.skip(
        reason="mosquitto is not installed (%s)" % mita_procs.MOSQUITTO)
    kinds.append(pytest.param("mosquitto", marks=mark))
    return kinds


@pytest.fixture(scope="module", params=_brokers())
def stack(request):
    # Not pytest's tmp_path (mode 0700 above it): mosquitto started as root reads its files
    # as its own user. MITA_E2E_KEEP=1 keeps the folder (process logs) for a look.
    folder = tempfile.mkdtemp(prefix="mita-e2e-%s-" % request.param)
    os.chmod(folder, 0o755)
    built = None
    try:
        built = Stack(request.param, folder)
        yield built
    finally:
        if built is not None:
            built.stop()
        mita_procs.stop_all()
        if not os.environ.get("MITA_E2E_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def e2e(stack):
    """The stack for one test: its meters stopped and the stand-in's rules cleared after."""
    try:
        yield stack
    finally:
        stack.stop_meters()
        stack.daraja.clear_outcomes()
        if not stack.cloud.proc or not stack.cloud.proc.alive:
            stack.cloud.start()  # a test that stopped the cloud and failed before restarting it
