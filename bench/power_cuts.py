"""Power-cut torture: a simulated month of the meter with the power cut at 10,000 random
instants, half of them in the middle of a flash write, each followed by an outage and a reboot
from what the flash holds; then the books against an independent ledger.

    .venv/bin/python bench/power_cuts.py                       # 30 days, 10,000 cuts (minutes)
    .venv/bin/python bench/power_cuts.py --days 2 --cuts 300 --seed 3

The meter is the firmware under CPython (MeterApp, its StateStore, the PZEM-004T driver) on the
test suite's byte-accurate PZEM line (tests/firmware/reviewfakes.py: a cumulative Wh counter that
only moves while the relay is closed), its flash the simulator's FlashFolder (simulator/devices/
flash.py), whose armed cut fails a write after N more bytes and leaves the file the way a
FAT-like ("truncate"), a mixed ("mixed") or a copy-on-write ("keep_old", LittleFS-like)
filesystem would; each cut draws its mode. The cloud is a list of recharges (one every 4 h, ids
and seqs of its own) re-sent after every boot until the meter answers applied or duplicate, and
re-sent once more now and then after that (a lost ack).

The independent ledger is the line's counter (the true Wh), the credits sent, and the meter's
opening balance. Printed: cuts (mid-write, between writes, by mode), credit lost, credit
doubled, Wh billed twice, Wh never billed (this meter reads a cumulative counter, so the bound
is 0; an S0 meter counts pulses in RAM and may lose up to one persist interval's), and whether
balance = opening + credited - debited held at every boot. Figures only: it never fails on time.
"""
import argparse
import os
import random
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
import simulator  # noqa: E402

simulator.install()
sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))
from reviewfakes import WrappingClock, boot, make_config  # noqa: E402

from simulator.devices.flash import MODES, FlashFolder, PowerLost  # noqa: E402

DAY_S = 86400
RECHARGE_EVERY_S = 4 * 3600


class Torture:
    def __init__(self, folder, seed=1, opening_cents=20000):
        self.rng = random.Random(seed)
        self.folder = folder
        self.flash = FlashFolder(folder)
        self.cfg = make_config(initial_balance_cents=opening_cents)
        self.opening = opening_cents
        self.clock = WrappingClock()
        self.counter_start = 0
        self.app, self.board, self.line = boot(folder, self.cfg, self.clock)
        self.sent = []        # every recharge the cloud made
        self.unacked = []     # ... not yet answered applied/duplicate
        self.figures = {"cuts": 0, "mid_write": 0, "between_writes": 0, "boots": 1,
                        "duplicates_sent": 0, "identity_broken": 0}
        self.figures.update({"mode_" + m: 0 for m in MODES})
        self._set_load()

    def _set_load(self):
        self.line.power_w = self.rng.choice((60, 250, 900, 2200))  # a meter with load saves every minute

    def _deliver(self):
        for recharge in list(self.unacked):
            status, _ = self.app.apply_recharge(dict(recharge), "cloud")
            if status in ("applied", "duplicate"):
                self.unacked.remove(recharge)

    def _second(self, t):
        self.clock.advance(1000)
        self.app.tick()
        if t % RECHARGE_EVERY_S == 0:
            n = len(self.sent) + 1
            recharge = {"id": "QPC%06d" % n, "seq": n, "source": "cloud",
                        "amount_cents": self.rng.randrange(5000, 30000)}
            self.sent.append(recharge)
            self.unacked.append(recharge)
        if self.unacked or t % 3600 == 0:
            self._deliver()
        if t % 900 == 0:
            self._set_load()

    def _reboot(self):
        """Power is off for a while (no ticks, no energy), then the meter boots from flash."""
        self.flash.disarm()
        self.clock.advance(1000 * self.rng.randrange(1, 900))
        counter = self.line.counter
        self.app, self.board, self.line = boot(self.folder, self.cfg, self.clock, counter)
        self.figures["boots"] += 1
        self._set_load()
        if self.sent and self.rng.random() < 0.3:
            # the power went while the meter's ack was on its way: the cloud sends it again
            self.figures["duplicates_sent"] += 1
            self.app.apply_recharge(dict(self.rng.choice(self.sent)), "cloud")
        ledger = self.app.ledger
        if ledger.balance != self.opening + ledger.total_credited - ledger.total_debited:
            self.figures["identity_broken"] += 1

    def run(self, days, cuts):
        total = days * DAY_S
        def gap(t):  # the next cut within twice the even spacing of the cuts still to come
            left = max(1, cuts - self.figures["mid_write"] - self.figures["between_writes"])
            return max(2, 2 * (total - t) // left)

        # Cuts come one after another, about `cuts` of them over the run. Every other one
        # arms the flash to fail inside the next state write, at a random byte of it; the others cut the power at a second, between writes.
        next_at = self.rng.randrange(1, gap(0))
        torn_next = True
        armed = False
        for t in range(1, total + 1):
            between = False
            if t == next_at and not armed:
                if torn_next:
                    mode = self.rng.choice(MODES)
                    self.figures["mode_" + mode] += 1
                    # within the next image: its size is the last one's, give or take a digit
                    size = max(os.path.getsize(p) for p in self.app.store.slot_paths()
                               if os.path.exists(p))
                    self.flash.arm_power_cut(self.rng.randrange(0, size), mode=mode)
                    armed = t
                else:
                    between = True
                torn_next = not torn_next
            try:
                self._second(t)
            except PowerLost:
                self.figures["mid_write"] += 1
                armed = False
                self._reboot()
                next_at = t + self.rng.randrange(1, gap(t))
                continue
            if armed and t - armed >= 300:
                between = True  # no write came (an idle meter saves only new Wh): cut anyway
                armed = False
            if between:
                self.figures["between_writes"] += 1
                self._reboot()
                next_at = t + self.rng.randrange(1, gap(t))
        self.figures["cuts"] = self.figures["mid_write"] + self.figures["between_writes"]
        self.flash.disarm()
        while self.unacked:  # the last recharges, with the power on
            self._deliver()
        # A cut in the last seconds leaves Wh the meter has not read yet: it bills them at its
        # next reading, so the books close after one (the line only counts what is asked for).
        self.line.power_w = 0
        for _ in range(2):
            self.clock.advance(1000)
            self.app.tick()
        return self.books()

    def books(self):
        app = self.app
        true_wh = self.line.counter - self.counter_start
        billed_wh = app.energy.total_wh
        credited = app.ledger.total_credited
        sent = sum(r["amount_cents"] for r in self.sent)
        f = dict(self.figures)
        f.update({"recharges": len(self.sent), "credit_sent_cents": sent,
                  "credit_lost_cents": max(0, sent - credited),
                  "credit_doubled_cents": max(0, credited - sent),
                  "true_wh": true_wh, "billed_wh": billed_wh,
                  "wh_billed_twice": max(0, billed_wh - true_wh),
                  "wh_never_billed": max(0, true_wh - billed_wh),
                  "debited_cents": app.ledger.total_debited,
                  "biller_cents": app.biller.total_cents,
                  "balance_cents": app.ledger.balance})
        return f


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--cuts", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="mita-cuts-")
    try:
        f = Torture(folder, args.seed).run(args.days, args.cuts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("command: .venv/bin/python bench/power_cuts.py --days %d --cuts %d --seed %d"
          % (args.days, args.cuts, args.seed))
    print("%d days, %d cuts: %d in the middle of a write, %d between writes (torn modes: %s); %d boots"
          % (args.days, f["cuts"], f["mid_write"], f["between_writes"],
             ", ".join("%s %d" % (m, f["mode_" + m]) for m in MODES), f["boots"]))
    print("recharges %d (KES %.2f), re-sent after a lost ack %d"
          % (f["recharges"], f["credit_sent_cents"] / 100, f["duplicates_sent"]))
    print("credit lost %d cents, credit doubled %d cents" % (f["credit_lost_cents"],
                                                             f["credit_doubled_cents"]))
    print("true %d Wh, billed %d Wh: billed twice %d Wh, never billed %d Wh (bound 0: a "
          "cumulative counter)" % (f["true_wh"], f["billed_wh"], f["wh_billed_twice"],
                                   f["wh_never_billed"]))
    print("debited %d cents, biller %d cents; balance = opening + credited - debited broken at "
          "%d boots" % (f["debited_cents"], f["biller_cents"], f["identity_broken"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
