"""The whole cloud app listening on a real port, on an event loop of its own thread, for
clients that are not asyncio (schemathesis sends with requests). Its records are read straight
from the SQLite file, so a snapshot does not go through the app it judges."""

import asyncio
import contextlib
import sqlite3
import threading

from aiohttp import web

from cloud.app import create_app
from cloud.keys import ABUSE, DARAJA, EMBEDDED_SANDBOX
from cloud.serving import ServiceRunner, runner_settings
from standins.daraja import SANDBOX

RECORD_TABLES = ("users", "meters", "transactions", "recharges")


class LiveService:
    def __init__(self, config):
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = None
        self.app = None
        self.base_url = ""

    def run(self, coro, timeout_s=30):
        """Run a coroutine on the service's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self):
        self.thread.start()
        self.run(self._start())
        return self

    async def _start(self):
        self.app = create_app(self.config, settle=False)
        # the service's own runner: errors raised before a handler answer JSON too
        self.runner = ServiceRunner(self.app, handle_signals=False,
                                    **runner_settings(self.config))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.app[DARAJA].callback_url = f"{self.base_url}/daraja/callback/x"

    def quiet_sandbox(self):
        """The Daraja stand-in takes pushes but calls nothing back: no write can land in the
        store between two snapshots of a test."""
        self.app[EMBEDDED_SANDBOX][SANDBOX].update_settings({"default_outcome": "none",
                                                             "callback_delay_s": 0})

    def allow_failed_sign_ins(self, most):
        """A fuzzer fails to sign in on purpose, often: the lock-out (tested on its own in
        test_abuse_limits.py) would otherwise answer 429 to everything after ten."""
        self.app[ABUSE].auth_failures = (most, self.app[ABUSE].auth_failures[1])

    def records(self):
        """Every row of the tables that hold money and accounts, read from the file."""
        uri = f"file:{self.config.sqlite_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            return {table: db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                    for table in RECORD_TABLES}

    def stop(self):
        if self.runner is not None:
            self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
