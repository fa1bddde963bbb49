"""Random power cuts during keypad-token and cloud credits, at the issue's scale: 10,000 cuts.

    .venv/bin/python bench/token_cuts.py                    # 10,000 cuts, seed 7 (minutes)
    .venv/bin/python bench/token_cuts.py --cuts 2000 --seed 3

Runs tests/firmware/test_openpaygo_random_cuts.random_cuts (the suite runs the same function
with 1,000 cuts under CPython and 600 under MicroPython): each payment is made both by a keypad
token and by a cloud recharge in a random order, the power is cut at a random byte of a random
one of their state writes, the meter reboots from its flash and both paths try again. Printed:
cuts made, credit wanted and credited (KES cents), and the difference, which must be 0.
"""
import argparse
import os
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
import simulator  # noqa: E402

simulator.install()
sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))
from test_openpaygo_random_cuts import random_cuts  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuts", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    credited, wanted, made = random_cuts("bench_token_cuts", args.cuts, seed=args.seed)
    print("command: %s" % " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv))
    print("cuts made: %d (seed %d)" % (made, args.seed))
    print("balance wanted (opening + payments): %d cents, held: %d cents, difference: %d"
          % (wanted, credited, credited - wanted))
    return 0 if credited == wanted else 1


if __name__ == "__main__":
    sys.exit(main())
