"""Benchmark: what minting a payment's OpenPAYGo token costs the cloud, by the meter's last
token count. The encoder hashes from count 0 up to the new count, so the cost grows with the
meter's payment history; it runs inside the payment's store write (cloud/tokens.py `mint`,
called by the SQLite writer thread in `record_payment`), where every other write waits.

    .venv/bin/python bench/token_mint.py [--counts 0,40,400,2000,4000] [--repeats 10]

Prints figures and the command; never passes or fails on time.
"""

import argparse
import os
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cloud.tokens import mint  # noqa: E402


def cost_ms(last_count, repeats):
    """The median time of `repeats` mints after last_count, in ms (CPU time of this thread)."""
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        mint("MITA0001", "dk_bench-device-key", last_count, 1000)
        times.append(time.thread_time() - started)
    times.sort()
    return 1000 * times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="0,40,400,2000,4000",
                        help="the meter's last token count before the payment")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    for count in (int(c) for c in args.counts.split(",")):
        # A count rises by 2 a payment (cloud/tokens.py): count 2000 is a meter's 1,000th.
        print(f"last count {count:6d} (~{count // 2:5d} payments): "
              f"{cost_ms(count, args.repeats):8.2f} ms a token")


if __name__ == "__main__":
    main()
