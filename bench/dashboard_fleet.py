"""Benchmark: the operator's fleet table over 10,000 meters. How long one page of
GET /api/fleet takes (the first page, pages deep behind a cursor, a meter-number prefix) from
the real app on a real SQLite file, over HTTP on localhost.

    .venv/bin/python bench/dashboard_fleet.py [--meters 10000] [--rounds 200]

Prints figures only; never passes or fails on time.
"""

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from cloud.app import create_app  # noqa: E402
from cloud.config import Config  # noqa: E402
from cloud.link.settings import LinkSettings  # noqa: E402
from cloud.store.sqlite import SqliteStore  # noqa: E402

OPERATOR = "op-bench-key-0123456789"


async def fill(store, meters):
    await store.create_user({"user_id": "u1", "name": "Bench"})
    for i in range(meters):
        await store.create_meter("FLEET%05d" % i, "u1", "dk_%d" % i)


async def timed(session, url, rounds):
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        async with session.get(url, headers={"Authorization": "Bearer " + OPERATOR}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.9) - 1], len(body["meters"])


async def main(meters, rounds):
    folder = tempfile.mkdtemp(prefix="mita-bench-fleet-")
    config = Config(sqlite_path=os.path.join(folder, "mita.sqlite3"), operator_key=OPERATOR,
                    callback_secret="bench-callback-secret-000")
    config.link = LinkSettings(enabled=False)
    store = await SqliteStore.open(config.sqlite_path)
    started = time.perf_counter()
    await fill(store, meters)
    print("registered %d meters in %.1f s" % (meters, time.perf_counter() - started))
    runner = web.AppRunner(create_app(config, store=store, settle=False), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = "http://127.0.0.1:%d/api/fleet" % runner.addresses[0][1]
    deep = "FLEET%05d" % (meters * 9 // 10)
    print("fleet pages over %d meters, %d rounds each (.venv/bin/python bench/dashboard_fleet.py"
          " --meters %d --rounds %d):" % (meters, rounds, meters, rounds))
    async with aiohttp.ClientSession() as session:
        for name, url in (("first page (50)", base + "?limit=50"),
                          ("a page 90% deep, after a cursor", base + "?limit=50&after=" + deep),
                          ("prefix FLEET042 (the table's filter)", base + "?prefix=fleet042"),
                          ("first page (500, the largest)", base + "?limit=500")):
            median, p90, rows = await timed(session, url, rounds)
            print("  %-40s %3d rows  median %6.2f ms  p90 %6.2f ms" % (name, rows, median, p90))
    await runner.cleanup()
    await store.close()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.meters, args.rounds))
