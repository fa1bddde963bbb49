"""A seeded slice of bench/power_cuts.py: a simulated day with the power cut about 150 times,
half of them inside a state write (torn as FAT, mixed and LittleFS-like flash would leave it),
each followed by an outage and a boot from flash. Against the independent ledger (the sensor's
own counter, the credits the cloud sent): no credit lost or doubled, no Wh billed twice or left
unbilled, and the ledger's identity holds at every boot. The month with 10,000 cuts is the
benchmark's (docs/reliability.md)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from power_cuts import Torture  # noqa: E402


@pytest.mark.parametrize("seed", [11, 12])
def test_a_day_of_power_cuts_loses_and_doubles_nothing(tmp_path, seed):
    f = Torture(str(tmp_path / "flash"), seed).run(days=1, cuts=150)
    assert f["mid_write"] >= 40 and f["between_writes"] >= 40, f
    assert min(f["mode_truncate"], f["mode_mixed"], f["mode_keep_old"]) >= 5, f
    assert f["recharges"] == 6 and f["duplicates_sent"] >= 1, f
    assert (f["credit_lost_cents"], f["credit_doubled_cents"]) == (0, 0), f
    assert (f["wh_billed_twice"], f["wh_never_billed"]) == (0, 0), f
    assert f["true_wh"] > 5000, f  # the load ran: there was energy to lose or double
    assert f["identity_broken"] == 0 and f["debited_cents"] == f["biller_cents"], f
