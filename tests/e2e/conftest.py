"""The end-to-end stack per test module and broker (the cloud's in-process amqtt, and
mosquitto): the cloud, the Daraja stand-in, the broker and simulated meters as real processes
on localhost (tools/mita_procs.py). Every process is stopped in a finaliser, also when a test
fails, and none outlives its module."""
import os

import pytest

from tests.e2e.e2e_rig import mita_procs, running_stack


def _brokers():
    kinds = [pytest.param("amqtt")]
    mark = () if os.path.exists(mita_procs.MOSQUITTO) else pytest.mark.skip(
        reason="mosquitto is not installed (%s)" % mita_procs.MOSQUITTO)
    kinds.append(pytest.param("mosquitto", marks=mark))
    return kinds


@pytest.fixture(scope="module", params=_brokers())
def stack(request):
    with running_stack(request.param, "mita-e2e-%s-" % request.param) as built:
        yield built


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
