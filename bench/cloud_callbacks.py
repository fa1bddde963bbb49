"""Benchmark: STK callbacks per second end to end into SQLite (half of them duplicates), with
p50/p99 latency, against a bare aiohttp handler on the same machine as the ceiling.

    .venv/bin/python bench/cloud_callbacks.py [--callbacks 4000] [--concurrency 32] [--repeat 1]

MITA_BENCH_DIR=/dev/shm puts the SQLite file on tmpfs (fsync becomes free) to show how much
of the cost is the disk's commit latency.

Each server runs in its own process (the client's work is not billed to it); the same client
drives both. Prints figures only: it never passes or fails on time.
"""

import argparse
import asyncio
import json
import logging
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from aiohttp import web  # noqa: E402

SECRET = "bench-callback-secret-000"
METERS = 100


def checkout_id(i):
    return f"ws_CO_BENCH{i:08d}"


def callback_body(i):
    return json.dumps({"Body": {"stkCallback": {
        "MerchantRequestID": f"{i}-1", "CheckoutRequestID": checkout_id(i), "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": 10.00}, {"Name": "MpesaReceiptNumber", "Value": f"RB{i:08d}"},
            {"Name": "Balance"}, {"Name": "TransactionDate", "Value": 20240101120000},
            {"Name": "PhoneNumber", "Value": 254712345678}]}}}}).encode()


# -- servers (child processes) ----------------------------------------------------------------

async def _bare_app(_n):
    async def handler(request):
        json.loads(await request.read())  # the same parse a real handler cannot skip
        return web.json_response({"ResultCode": 0, "ResultDesc": "Accepted"})
    app = web.Application()
    app.router.add_post("/daraja/callback/{secret}", handler)
    return app, None


async def _mita_app(n):
    from cloud.app import create_app
    from cloud.config import Config
    from cloud.store.sqlite import SqliteStore
    folder = tempfile.mkdtemp(prefix="mita-bench-", dir=os.environ.get("MITA_BENCH_DIR"))
    store = await SqliteStore.open(os.path.join(folder, "bench.sqlite3"))
    await store.create_user({"user_id": "u1", "name": "Bench"})
    for m in range(METERS):
        await store.create_meter(f"M{m:04d}", "u1", f"key{m}")
    now = int(time.time() * 1000)
    for i in range(n):
        await store.create_stk_request({
            "checkout_request_id": checkout_id(i), "meter_no": f"M{i % METERS:04d}",
            "user_id": "u1", "phone_number": "254712345678", "amount_cents": 1000,
            "status": "pending", "created_at": now})
    config = Config(sqlite_path=store.path, callback_secret=SECRET, settle_every_s=3600)
    return create_app(config, store=store, daraja=object(), settle=False), store


def serve(kind, n, port):
    logging.basicConfig(level=logging.WARNING)

    async def run():
        app, store = await (_mita_app(n) if kind == "mita" else _bare_app(n))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        print("ready", runner.addresses[0][1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        if store is not None:
            stats = {"transactions": len(await store.list_transactions_for_user("u1", 10**9))}
            print(json.dumps(stats), flush=True)
        await runner.cleanup()
        if store is not None:
            await store.close()
    asyncio.run(run())


# -- the client -------------------------------------------------------------------------------

async def drive(port, order, concurrency):
    import aiohttp
    url = f"http://127.0.0.1:{port}/daraja/callback/{SECRET}"
    bodies = {i: callback_body(i) for i in set(order)}
    latencies, statuses = [], {}
    queue = list(reversed(order))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker():
            while queue:
                i = queue.pop()
                started = time.perf_counter()
                async with session.post(url, data=bodies[i],
                                        headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                latencies.append(time.perf_counter() - started)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rate": len(order) / elapsed, "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)], "statuses": statuses,
            "elapsed_s": elapsed}


def cpu_seconds(pid):
    """The server's CPU time so far (every thread, user + system), from /proc: what a callback
    costs the server, which the machine's other load moves far less than the rate."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(kind, n, concurrency, order):
    child = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--callbacks", str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = child.stdout.readline().split()
        if not line or line[0] != "ready":
            raise SystemExit(f"{kind} server did not start")
        asyncio.run(drive(int(line[1]), order[: concurrency * 4], concurrency))  # warm-up
        cpu = cpu_seconds(child.pid)
        result = asyncio.run(drive(int(line[1]), order, concurrency))
        result["cpu_us"] = (cpu_seconds(child.pid) - cpu) * 1e6 / len(order)
        child.stdin.close()
        tail = child.stdout.read().strip()
        result["server"] = json.loads(tail) if tail else {}
        return result
    finally:
        child.wait(timeout=30)


def report(name, r):
    print(f"{name:>15}: {r['rate']:8.0f}/s  p50 {r['p50_ms']:6.2f} ms  "
          f"p99 {r['p99_ms']:6.2f} ms  server CPU {r['cpu_us']:5.0f} us/callback  "
          f"statuses {r['statuses']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=4000, help="unique callbacks")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1,
                        help="pairs of runs, bare then mita each time; the median ratio is "
                             "the figure (a loaded machine moves both by 2-3x between runs)")
    parser.add_argument("--serve", choices=("mita", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.callbacks, 0)
    n = args.callbacks
    # Every callback twice: the second copies are shuffled among the firsts, as re-sends are.
    order = list(range(n)) + list(range(n))
    random.Random(7).shuffle(order)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    if os.environ.get("MITA_BENCH_DIR"):
        command = f"MITA_BENCH_DIR={shlex.quote(os.environ['MITA_BENCH_DIR'])} {command}"
    print(f"command: {command}")
    print(f"callbacks: {len(order)} ({n} unique, {n} duplicates), concurrency {args.concurrency}")
    print(f"load average at start: {' '.join('%.1f' % v for v in os.getloadavg())}")
    ratios, cpu_ratios = [], []
    for run in range(args.repeat):
        bare = measure("bare", n, args.concurrency, order)
        mita = measure("mita", n, args.concurrency, order)
        if args.repeat > 1:
            print(f"run {run + 1} of {args.repeat}:")
        report("bare aiohttp", bare)
        report("mita -> SQLite", mita)
        ratios.append(mita["rate"] / bare["rate"])
        cpu_ratios.append(bare["cpu_us"] / mita["cpu_us"])
        print(f"ratio mita/bare: {ratios[-1]:.2f} (rate); {cpu_ratios[-1]:.2f} (bare's server "
              "CPU per callback / mita's)")
        recorded = mita["server"].get("transactions")
        print(f"transactions recorded: {recorded} (expected {n}: the warm-up re-sends are "
              "duplicates too)")
    if args.repeat > 1:
        for what, values in (("rate", ratios), ("CPU per callback", cpu_ratios)):
            ordered = sorted(values)
            print(f"ratio mita/bare ({what}) over {args.repeat} pairs: median "
                  f"{ordered[len(ordered) // 2]:.2f} (min {ordered[0]:.2f}, max {ordered[-1]:.2f})")
    print(f"load average at the end: {' '.join('%.1f' % v for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
