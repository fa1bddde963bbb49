"""Benchmark: what the abuse limits cost and what they hold off.

    .venv/bin/python bench/abuse_limits.py [--takes 2000] [--slow 150] [--header-timeout 2]

1. The store-kept push limit (Store.take_rate_slot, three keys: phone, meter, caller) on a real
   SQLite file: takes per second and p50/p99 latency, i.e. what each STK push now pays.
2. The issue's probe: `--slow` connections dribbling a request head one byte every 100 ms at
   the service's runner (cloud/serving.py) with MITA_HEADER_TIMEOUT_S = --header-timeout:
   how many the server closed and how long each stayed open (before the fix they stayed
   open for the whole probe). Prints figures only: it never passes or fails on time.
"""

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cloud.app import create_app  # noqa: E402
from cloud.config import Config  # noqa: E402
from cloud.serving import start  # noqa: E402
from cloud.store.sqlite import SqliteStore  # noqa: E402


async def bench_takes(folder, takes):
    store = await SqliteStore.open(os.path.join(folder, "limits.sqlite3"))
    lat, refused = [], 0
    now = 1_800_000_000_000
    try:
        for i in range(takes):
            # every push counted (the usual case), the table growing as it would in use
            limits = [(f"stk:phone:2547{i:08d}", 3, 600_000),
                      (f"stk:meter:M{i % 1000}", 6, 600_000),
                      (f"stk:customer:u{i % 1000}", 5, 60_000)]
            started = time.perf_counter()
            wait, _ = await store.take_rate_slot(limits, now + i * 10)
            lat.append((time.perf_counter() - started) * 1000)
            refused += wait > 0
    finally:
        await store.close()
    lat.sort()
    return {"rate": takes / (sum(lat) / 1000), "p50": lat[len(lat) // 2],
            "p99": lat[int(len(lat) * 0.99)], "refused": refused}


async def dribble(port, ticks):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        for _ in range(ticks):
            writer.write(b"y")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                    return time.monotonic() - opened
            except asyncio.TimeoutError:
                pass
    except ConnectionError:
        return time.monotonic() - opened
    finally:
        writer.close()
    return None  # still open when the probe gave up


async def bench_slow(folder, slow, header_timeout):
    config = Config(sqlite_path=os.path.join(folder, "mita.sqlite3"),
                    header_timeout_s=header_timeout, operator_key="op-bench-0123456789")
    runner = await start(create_app(config, settle=False), config, "127.0.0.1", 0)
    try:
        ticks = int(header_timeout * 10 * 5)  # the probe gives up at 5x the setting
        return await asyncio.gather(*(dribble(runner.addresses[0][1], ticks)
                                      for _ in range(slow)))
    finally:
        await runner.cleanup()


async def main(args):
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"command: {command}")
    with tempfile.TemporaryDirectory() as folder:
        takes = await bench_takes(folder, args.takes)
        print(f"push limit (3 keys, SQLite): {takes['rate']:.0f} takes/s  p50 "
              f"{takes['p50']:.2f} ms  p99 {takes['p99']:.2f} ms  ({args.takes} takes, "
              f"{takes['refused']} refused)")
        open_for = await bench_slow(folder, args.slow, args.header_timeout)
    closed = [t for t in open_for if t is not None]
    print(f"slow-header connections: {args.slow}, header timeout {args.header_timeout} s: "
          f"{len(closed)} closed by the server, {args.slow - len(closed)} still open at "
          f"{args.header_timeout * 5:.0f} s")
    if closed:
        print(f"  open for: median {statistics.median(closed):.2f} s, max {max(closed):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--takes", type=int, default=2000)
    parser.add_argument("--slow", type=int, default=150)
    parser.add_argument("--header-timeout", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
