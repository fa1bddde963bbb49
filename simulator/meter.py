# One simulated meter as a runner sees it: its board (world, devices, flash) and the firmware
# app running on it as an asyncio task, stopped dead by a power cut and started again on every
# reset. By default the app is the real firmware (firmware/meter/boot.py), unmodified: its
# config.json sits in the meter's flash folder and it finds the fakes through `import machine`.
import asyncio
import collections
import json

import simulator
from simulator import board_context
from simulator.sim_board import POWER_OFF, POWER_ON, RESET, BoardReset, SimBoard
from simulator.devices.flash import PowerLost



class MeterError(Exception):
    """The simulated meter cannot do what was asked (no firmware running, bad request)."""


def cloud_config(url):
    """The firmware's "mqtt" config section for a cloud URL: mqtt[s]://[user[:password]@]host[:port].
    An empty user makes the firmware use the meter id, as a provisioned meter does."""
    from urllib.parse import unquote, urlsplit
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise MeterError("--cloud %r: expected mqtt://[user:password@]host[:port]" % (url,))
    tls = parts.scheme in ("mqtts", "ssl")
    return {"host": parts.hostname, "port": parts.port or (8883 if tls else 1883),
            "user": unquote(parts.username or ""), "password": unquote(parts.password or ""),
            "tls": tls}


def _track_tasks(loop, coro, context=None):
    """The loop's task factory: every task the firmware creates (its cloud link, WiFi, NTP)
    belongs to the meter whose board is current, and dies with that boot, as on a device."""
    if context is None:
        task = asyncio.Task(coro, loop=loop)
    else:
        task = asyncio.Task(coro, loop=loop, context=context)
    meter = getattr(board_context.current_or_none(), "runner", None)
    if meter is not None:
        tasks = meter.side_tasks
        if len(tasks) >= 32:
            tasks[:] = [t for t in tasks if not t.done()]
        tasks.append(task)
    return task


async def run_firmware(meter):
    """The default app: one boot of the real firmware on this meter's board."""
    simulator.install()
    from meter import boot
    from meter.log import Logger
    app = boot.start(root=meter.board.flash.root, log=Logger(meter.meter_id, sink=meter.log_line))
    meter.app = meter.last_app = app
    meter.apps_started += 1
    # boot.run starts the firmware's own cloud link when the config names WiFi or a broker
    # (since 2f2ed97); starting it here too made two MQTT clients with one client id, which
    # the broker kept taking over from each other.
    await boot.run(app)


class SimulatedMeter:
    """app_factory(meter) -> coroutine: one boot of the firmware, run with this board current.

    config is the firmware's config.json content (see firmware/meter/config.py); it also wires
    the simulated board (pins, sensor kind, S0 constant), so both sides always agree.
    """

    def __init__(self, config, world, flash_dir, clock, app_factory=None, meter_id=None, seed=1,
                 cloud_url=None, keep_log=200, rig=None):
        self.config = dict(config)
        self.world = world
        self.clock = clock
        self.meter_id = meter_id or config.get("meter_id") or "sim-%04d" % seed
        self.config["meter_id"] = self.meter_id
        if cloud_url:
            self.config["mqtt"] = cloud_config(cloud_url)
            # the firmware joins the simulated access point the board offers
            self.config.setdefault("wifi", {"ssid": "mita-net", "password": "mita-pass"})
        # rig: board facts the firmware's config does not hold (rtc_battery, adc, ...)
        board_rig = dict(self.config, **(rig or {}))
        self.board = SimBoard(world, flash_dir, clock, rig=board_rig, meter_id=self.meter_id,
                              seed=seed)
        self.board.runner = self  # how tasks the firmware creates find their meter
        self.cloud_url = cloud_url
        self.app = None  # the firmware's MeterApp of the current boot (None while dead)
        self.side_tasks = []  # tasks the firmware created in this boot (its cloud link, ...)
        self.last_app = None  # the most recent boot's app, kept for summaries after death
        self.outbox = []  # recharges (amount_cents, ref) the "cloud" still has to deliver
        self.hangs = 0
        self.apps_started = 0
        self.log = collections.deque(maxlen=keep_log)  # the firmware's log lines, newest last
        self.log_counts = {}  # "relay opened", "relay closed", "sensor", ... -> count
        self.next_seq = 1  # the "cloud" numbering of recharges for this meter
        if app_factory is None:
            app_factory = run_firmware
            self.install_config()
        self.app_factory = app_factory
        self.task = None
        self.boots = 0
        self.crashes = []  # (virtual ms, repr of the exception) when the app died by itself
        self.board.on_event = self._on_event
        self._loop = None

    def install_config(self):
        """Write config.json into the flash, as provisioning a real meter does."""
        with open(self.board.flash.path("config.json"), "w") as f:
            json.dump(self.config, f)

    # --- life cycle --------------------------------------------------------------------------

    def start(self, loop=None):
        loop = loop or asyncio.get_event_loop()
        self._loop = loop
        if loop.get_task_factory() is None:
            loop.set_task_factory(_track_tasks)
        self.board.attach(loop)
        if self.board.powered:
            self._boot()

    def stop(self):
        self.board.detach()
        self._kill()
        # The simulation is over: a dead or armed flash must not keep open() hooked for the
        # rest of the process.
        self.board.flash.disarm()

    def _boot(self):
        self._kill()
        self.board.flash.disarm()
        self.boots += 1
        if self.app_factory is not None and self._loop is not None:
            coro = self._run_app()
            self.task = board_context.create_task(self.board, coro, loop=self._loop,
                                                  name="meter-%s" % self.meter_id)

    def _kill(self):
        self.app = None
        side, self.side_tasks = self.side_tasks, []
        for task in side:
            task.cancel()
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()

    async def _run_app(self):
        try:
            await self.app_factory(self)
        except (BoardReset, PowerLost, asyncio.CancelledError):
            pass  # the board reset or lost power under it: nothing of this boot survives
        except Exception as exc:  # noqa: BLE001 - on a device an uncaught error ends main.py
            self.crashes.append((self.clock.now_ms(), repr(exc)))

    def _on_event(self, kind, cause):
        if kind == POWER_OFF:
            self.board.flash.power_down()
            self._kill()
        elif kind in (POWER_ON, RESET):
            self._boot()

    def log_line(self, line):
        self.log.append((self.clock.now_ms(), line))
        for key in ("relay opened", "relay closed", "sensor:", "persist failed", "tick failed"):
            if key in line:
                self.log_counts[key] = self.log_counts.get(key, 0) + 1

    # --- what an operator or a scenario does to the meter ------------------------------------

    def in_context(self, fn, *args):
        """Call fn with this meter's board current (the fakes need it)."""
        return board_context.run_in(self.board, fn, *args)

    def recharge(self, amount_cents, ref=None):
        """Deliver a cloud recharge now, numbered like the cloud does; (status, reason).

        The seq advances only once the meter has the credit (applied or duplicate): a credit
        refused for a storage error is re-sent with the same seq, as the cloud would."""
        app = self.app
        if app is None:
            raise MeterError("meter %s is not running (no power?)" % self.meter_id)
        seq = self.next_seq
        msg = {"id": ref or "%s-r%d" % (self.meter_id, seq), "seq": seq,
               "amount_cents": int(amount_cents), "source": "cloud"}
        status, reason = self.in_context(app.apply_recharge, msg)
        if status in ("applied", "duplicate"):
            self.next_seq += 1
        return status, reason

    def send_recharge(self, amount_cents, ref=None, retry_s=5):
        """Queue a recharge the way the cloud holds one: delivered now if the meter runs, else
        re-sent every retry_s (virtual) until the meter has it."""
        self.outbox.append((int(amount_cents), ref))
        self._deliver(retry_s)

    def _deliver(self, retry_s):
        while self.outbox:
            amount, ref = self.outbox[0]
            try:
                status, _ = self.recharge(amount, ref) if self.app is not None else (None, None)
            except (BoardReset, PowerLost):
                status = None  # the power failed in the middle of applying it: re-send later
            if status not in ("applied", "duplicate"):
                if self._loop is not None:
                    self._loop.call_later(retry_s, self._deliver, retry_s)
                return
            self.outbox.pop(0)

    def hang(self):
        """The CPU stops making progress (a deadlock in the firmware): the app runs no more,
        but the board, its watchdog included, keeps going; only a reset brings it back."""
        self.hangs += 1
        self.board.log("firmware hung")
        self._kill()

    def set_tariff(self, tariff):
        if self.app is None:
            raise MeterError("meter %s is not running" % self.meter_id)
        return self.in_context(self.app.set_tariff, tariff)

    def press_key(self, key, hold_ms=100):
        self.board.keypad.press(key, self.clock.now_ms(), hold_ms)

    def status(self):
        """A plain dict of what a panel or a summary shows; works with the meter dead too."""
        app = self.app
        snap = dict(app.snapshot) if app is not None else {}
        lines = self.board.lcd.lines() if self.board.powered else ["", ""]
        return {
            "meter_id": self.meter_id,
            "powered": self.board.powered,
            "running": app is not None,
            "lcd": lines,
            "relay_closed": self.world.relay_closed,
            "balance_cents": snap.get("balance_cents"),
            "power_w": snap.get("power_w"),
            "energy_wh": snap.get("energy_wh"),
            "alerts": sorted(k for k, v in (snap.get("alerts") or {}).items() if v),
            "events": list(app.events) if app is not None else [],
            "true_wh": self.world.energy_wh(),
            "boots": self.boots,
        }


def meter_summary(meter):
    """One summary row for a simulated meter (a fleet's, a scenario's, the CLI's): true
    energy against billed, balances, disconnections, sensor failures, boots, crashes."""
    app = meter.last_app
    energy = app.energy if app is not None else None
    return {
        "meter_id": meter.meter_id,
        "true_wh": meter.world.energy_wh(),
        "billed_wh": energy.total_wh if energy is not None else 0,
        "billed_cents": app.biller.total_cents if app is not None else 0,
        "balance_cents": app.ledger.balance if app is not None else None,
        "credited_cents": app.ledger.total_credited if app is not None else 0,
        "disconnections": meter.log_counts.get("relay opened", 0),
        "sensor_failures": energy.failures if energy is not None else 0,
        "sensor_restarts": energy.restarts if energy is not None else 0,
        "boots": meter.boots,
        "crashes": len(meter.crashes),
    }
