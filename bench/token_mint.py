"""Benchmark: what minting a payment's OpenPAYGo token costs the cloud, by the meter's last
token count. The encoder hashes from count 0 up to the new count, so the cost grows with the
meter's payment history; it runs inside the payment's store write (cloud/tokens.py `mint`,
called by the SQLite writer thread in `record_payment`), where every other write waits.

    .venv/bin/python bench/token_mint.py [--counts 0,40,400,2000,4000] [--repeats 10]
    .venv/bin/python bench/token_mint.py --writer 2000 [--payments 200] [--meters 200]

--writer C: the SQLite store (on disk) credits --payments payments at once to meters whose
last count is C, the way the cloud does (cloud/token_mint.py's mint into record_payment),
once with every token made in the write and once made ahead in the process pool; prints
payments a second for each.

Prints figures and the command; never passes or fails on time.
"""

import argparse
import asyncio
import os
import shlex
import sqlite3
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cloud.store import open_store  # noqa: E402
from cloud.token_mint import TokenMinter  # noqa: E402
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


async def writer_rate(folder, last_count, payments, meters, ahead):
    """Payments a second the store credits with tokens made in the write or ahead."""
    path = os.path.join(folder, "ahead.sqlite3" if ahead else "inline.sqlite3")
    store = await open_store("sqlite", path=path)
    names = ["MITA%04d" % n for n in range(meters)]
    try:
        user = await store.create_user({"name": "bench"})
        for name in names:
            await store.create_meter(name, user["user_id"], "dk_bench-" + name)
    finally:
        await store.close()
    with sqlite3.connect(path) as db:  # a long history, without crediting it first
        db.execute("UPDATE meters SET token_count = ?", (last_count,))
    store = await open_store("sqlite", path=path)
    minter = TokenMinter({}, ahead_from=0 if ahead else 10**9)
    minter._executor()  # the pool's start-up is paid once per process, not per payment
    for name in names:  # as if this process had credited them before
        minter.remember(name, last_count)

    async def credit(n):
        meter_no = names[n % meters]
        payment = {"receipt": "RKB%07d" % n, "meter_no": meter_no,
                   "user_id": user["user_id"], "amount_cents": 10000,
                   "phone_number": "254700000001", "transaction_date": "20261204120000",
                   "source": "c2b", "ts": n}
        made = await minter.mint_for(store, meter_no, 10000)
        assert (await store.record_payment(payment, mint=made))[0]
    waits = []
    done = asyncio.Event()

    async def other_writes():  # what else the writer serves: a balance report every 10 ms
        n = 0
        while not done.is_set():
            started = time.perf_counter()
            await store.update_meter_balance(names[-1], n, n)
            waits.append(1000 * (time.perf_counter() - started))
            n += 1
            await asyncio.sleep(0.01)
    try:
        others = asyncio.create_task(other_writes())
        started = time.perf_counter()
        await asyncio.gather(*(credit(n) for n in range(payments)))
        elapsed = time.perf_counter() - started
        done.set()
        await others
    finally:
        minter.close()
        await store.close()
    waits.sort()
    return payments / elapsed, minter.counters, waits


def writer_main(args):
    with tempfile.TemporaryDirectory() as folder:
        for ahead in (False, True):
            rate, counters, waits = asyncio.run(writer_rate(
                folder, args.writer, args.payments, args.meters, ahead))
            how = "made ahead (pool of %d)" % TokenMinter({}).workers if ahead else "in the write"
            print(f"last count {args.writer}, {args.payments} payments at once over "
                  f"{args.meters} meters, tokens {how}: {rate:7.1f} payments/s "
                  f"(stale {counters['tokens_ahead_stale']}); another write meanwhile: "
                  f"median {waits[len(waits) // 2]:.1f} ms, "
                  f"p99 {waits[int(len(waits) * 0.99)]:.1f} ms (n={len(waits)})")
    print("load average at the end: %.1f %.1f %.1f" % os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="0,40,400,2000,4000",
                        help="the meter's last token count before the payment")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--writer", type=int, help="the store's rate at this last count")
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--meters", type=int, default=200)
    args = parser.parse_args()
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    if args.writer is not None:
        return writer_main(args)
    for count in (int(c) for c in args.counts.split(",")):
        # A count rises by 2 a payment (cloud/tokens.py): count 2000 is a meter's 1,000th.
        print(f"last count {count:6d} (~{count // 2:5d} payments): "
              f"{cost_ms(count, args.repeats):8.2f} ms a token")


if __name__ == "__main__":
    main()
