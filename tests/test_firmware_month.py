"""A slice of bench/firmware_month.py in the suite: the whole meter, frozen into the 32-bit bench
image, with its cloud link against mosquitto and the real cloud (`python -m cloud serve`), for a
few simulated hours under a heap cap (84 KB). Payments made by C2B confirmation while it runs
arrive as signed recharges and are applied once each; telemetry and history flow; and the cap
binds (a small one ends the run with a MemoryError), so the figures the bench prints mean
something.
The month itself, and the smallest cap, are the benchmark's (docs/benchmarks.md)."""
import asyncio
import os
import shutil
import sys
import tempfile

import aiohttp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import firmware_month as fm  # noqa: E402
from link_latency import MOSQUITTO, Rig, prepare_store  # noqa: E402

EXE = fm.BUILDS["frozen"][0]
# The slice's cap: the 2-day smallest is 72-74 KB since the link's JSON buffer (before it, 92 KB;
# docs/benchmarks.md), so 84 KB holds 7 hours with room for where fragmentation falls.
CAP = 84 * 1024

pytestmark = [
    pytest.mark.skipif(not os.path.exists(EXE),
                       reason="%s not built: python3 tools/build_micropython.py --bench" % EXE),
    pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed"),
]


@pytest.fixture
async def cloud():
    work = tempfile.mkdtemp(prefix="mita-test-month-")
    accounts = await prepare_store(os.path.join(work, "mita.sqlite3"), 4)
    rig = Rig(work)
    rig.start()
    try:
        async with aiohttp.ClientSession() as session:
            await rig.wait_ready(session, accounts)
            yield rig, session, accounts[1:], work
    finally:
        rig.stop()
        shutil.rmtree(work, ignore_errors=True)


def month(rig, session, account, work, cap, hours, pay_every_h=2):
    return fm.Month(rig, session, EXE, ".frozen", cap, hours * 3600, account,
                    os.path.join(work, "flash-%d" % cap), pay_every_h)


async def test_the_frozen_meter_with_its_link_takes_every_payment_once_under_a_cap(cloud):
    rig, session, accounts, work = cloud
    ok, figures = await month(rig, session, accounts[0], work, CAP, 7).run()
    assert ok, figures
    assert int(figures["paid"]) == 3  # at hours 2, 4 and 6; the last has an hour to arrive
    assert int(figures["recharges"]) == 3  # each signed recharge applied once
    assert (figures["refused"], figures["malformed"], figures["stalls"]) == ("0", "0", "0")
    assert int(figures["telemetry"]) >= 7 * 360  # every 10 s, and on changes
    assert figures["connects"] == "1" and figures["dropped"] == "0"
    assert figures["json_overflows"] == "0"  # every message fitted the client's JSON buffer
    assert int(figures["sim"]) < int(figures["live"]) < CAP


async def test_a_cap_too_small_for_the_meter_ends_the_run_with_a_memory_error(cloud):
    rig, session, accounts, work = cloud
    ok, figures = await month(rig, session, accounts[1], work, 40 * 1024, 1).run()
    assert not ok
    assert "MemoryError" in figures["why"]
