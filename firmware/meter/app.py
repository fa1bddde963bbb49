# The meter application: once a second it reads the sensor, bills the energy by the tariff,
# runs the relay policy, updates the display and persists; recharges and tariff updates come
# in through apply_recharge() / set_tariff(). Hardware arrives ready-made (see board.py).
from meter import calendar
from meter.energy import EnergyAccount
from meter.ledger import Ledger
from meter.policy import RelayPolicy
from meter.recharge import Recharger
from meter.tariff import Biller, Tariff, TariffError
from meter.drivers.reading import SensorError

_STATE_VERSION = 1


class MeterApp:
    """The meter's whole behaviour, on hardware it is given.

    Construction restores the persisted state (no hardware needed), so the board can be built
    with the relay already at the level the state asks for: relay_at_boot() tells it.
    """

    def __init__(self, config, store, clock, log=None):
        self.config = config
        self.store = store
        self.clock = clock
        self.log = log
        self.board = None
        self.alerts = {}
        self.snapshot = {}
        self.events = []  # the last few notable events, for the display and the cloud link
        self.persist_errors = 0
        self.tick_errors = 0
        self.config_problems = []
        self.state_root = ""
        self.reset_cause = 0
        self.running = False
        self.online = False  # the cloud link's set_online(); shown in the snapshot
        self.panel = None  # the keypad's token panel (meter.token_entry), set by boot
        self._relay_next = None  # the relay as a recharge is about to set it (one write)
        self._uptime_ms = 0
        self._saved_uptime_ms = 0
        self._unsaved_wh = 0
        self._power_w = None
        self._reading = None
        self._restore(store.load(accept=self._usable))

    # --- state --------------------------------------------------------------------------
    def _usable(self, state):
        """The store's accept check: every part of the state rebuilds, or the slot is not used."""
        if state.get("v") != _STATE_VERSION:
            return False
        cfg = self.config
        ledger = Ledger.from_dict(state["ledger"])
        Recharger(ledger, max_cents=cfg["max_recharge_cents"], state=state.get("recharge"))
        tariff = self._tariff_from(state.get("tariff") or cfg["tariff"])
        Biller(tariff, state.get("biller"))
        if state.get("tokens") is not None:
            from meter.keypad_tokens import KeypadTokens
            KeypadTokens.check_state(state["tokens"])
        return True

    def _restore(self, state):
        cfg = self.config
        status = self.store.status
        self.boot_status = status
        if state is not None and state.get("v") != _STATE_VERSION:
            state = None
            status = "corrupt"
        thresholds = cfg["thresholds"]
        if state is None:
            # Fresh: the configured opening balance. Corrupt: zero credit and an alert, so a
            # damaged flash can never turn into free electricity.
            opening = cfg["initial_balance_cents"] if status == "fresh" else 0
            self.ledger = Ledger(opening, thresholds["low_cents"], thresholds["critical_cents"])
            state = {}
        else:
            self.ledger = Ledger.from_dict(state["ledger"], low_cents=thresholds["low_cents"],
                                           critical_cents=thresholds["critical_cents"])
        self.alerts["state_corrupt"] = status == "corrupt"
        self.alerts["state_fallback"] = status == "fallback"
        self.recharger = Recharger(self.ledger, max_cents=cfg["max_recharge_cents"],
                                   state=state.get("recharge"))
        tariff = self._tariff_from(state.get("tariff") or cfg["tariff"])
        self.biller = Biller(tariff, state.get("biller"))
        self.energy = EnergyAccount(state=state.get("energy"))
        self.policy = RelayPolicy.from_config(cfg["policy"], state=state.get("policy"), log=self.log)
        self.persisted_relay = state.get("relay", False)
        self.last_time = state.get("time", 0)
        self.tokens = None  # keypad tokens (meter.keypad_tokens), on a meter with a token key
        if cfg["token"]["key"]:
            # imported only then: most of the RAM it takes is what a token meter needs
            from meter.keypad_tokens import KeypadTokens
            self.tokens = KeypadTokens(self, cfg["token"], state.get("tokens"))

    def _tariff_from(self, d):
        from meter.config import DEFAULT_TARIFF
        try:
            return Tariff.from_dict(d or DEFAULT_TARIFF)
        except TariffError as exc:
            self._log("warn", "tariff rejected (%s), using the default", exc)
            return Tariff.from_dict(DEFAULT_TARIFF)

    def state(self):
        state = {
            "v": _STATE_VERSION,
            "ledger": self.ledger.to_dict(),
            "recharge": self.recharger.state(),
            "tariff": self.biller.tariff.to_dict(),
            "biller": self.biller.state(),
            "energy": self.energy.state(),
            "policy": self.policy.state(),
            "relay": self._relay_state(),
            "time": self.clock.now(),
        }
        tokens = self.tokens.state() if self.tokens is not None else None
        if tokens is not None:
            state["tokens"] = tokens
        return state

    def _relay_state(self):
        if self._relay_next is not None:
            return self._relay_next
        return self.board.relay.is_closed() if self.board else self.persisted_relay

    def persist(self):
        """Write the whole state in one atomic slot write; raises OSError if the flash fails."""
        self.store.save(self.state())
        self._saved_uptime_ms = self._uptime_ms
        self._unsaved_wh = 0

    def _try_persist(self):
        try:
            self.persist()
            return True
        except OSError as exc:
            self.persist_errors += 1
            self._log("error", "persist failed: %s", exc)
            return False

    # --- boot ---------------------------------------------------------------------------
    def relay_at_boot(self):
        """What the relay must be the moment its pin is created: the persisted state, but
        never closed without credit or while locked out."""
        return self.policy.boot_state(self.persisted_relay, self.ledger.balance,
                                      self._minute_of_day(self.clock.now()))

    def _minute_of_day(self, t):
        # Friendly hours are never granted on a clock that has not been set since power-up.
        if not self.clock.valid():
            return None
        return calendar.minute_of_day(t, self.config["utc_offset_min"] * 60)

    def attach(self, board):
        self.board = board
        self.energy.counts_per_kwh = board.sensor.counts_per_kwh
        self.clock.not_before(self.last_time)
        self._last_tick_ms = self.clock.ticks_ms()
        self._last_read_uptime = self._uptime_ms
        self._update_snapshot(self.clock.now())

    # --- the one-second step ------------------------------------------------------------
    def tick(self):
        clock = self.clock
        now_ms = clock.ticks_ms()
        self._uptime_ms += max(0, clock.ticks_diff(now_ms, self._last_tick_ms))
        self._last_tick_ms = now_ms
        t = clock.now()
        self._read_and_bill(now_ms, t)
        self._run_policy(t)
        self._update_snapshot(t)
        # the token panel, when there is one, shows the display's pages while it is idle
        display = self.panel or self.board.display  # type: ignore
        if display is not None:
            display.show(self.snapshot, now_ms)
        interval_ms = self.config["persist_interval_s"] * 1000
        if self._unsaved_wh and self._uptime_ms - self._saved_uptime_ms >= interval_ms:
            self._try_persist()

    def _read_and_bill(self, now_ms, t):
        try:
            reading = self.board.sensor.read()  # type: ignore
        except SensorError as exc:
            self.energy.fail()
            self._power_w = None
            self._reading = None
            if self.energy.consecutive_failures == 1:
                self._log("warn", "sensor: %s", exc)
            return
        # From the uptime sum, not ticks_diff: a gap longer than the ticks half-period (6.2 days)
        # would wrap and the energy of a long sensor outage be dropped as a jump.
        elapsed = self._uptime_ms - self._last_read_uptime
        self._last_read_uptime = self._uptime_ms
        self._reading = reading
        self._power_w = reading.power_dw // 10
        wh = self.energy.update(reading.energy, elapsed)
        if wh:
            self.ledger.debit(self.biller.bill(wh, t, self.clock.valid()))
            self._unsaved_wh += wh

    def _relay_change(self, t):
        """What the relay policy wants now, if that differs from the relay: True/False, or
        None for no change."""
        board = self.board
        assert board is not None
        closed = board.relay.is_closed()
        want = self.policy.update(self._uptime_ms // 1000, self._minute_of_day(t),
                                  self.ledger.balance, self._power_w,
                                  board.cover_open(), closed)
        return None if want == closed else want

    def _switch_relay(self, want):
        board = self.board
        assert board is not None
        board.relay.set(want)
        self._event("relay " + ("closed" if want else "opened") + ": " + self.policy.reason)

    def _run_policy(self, t):
        want = self._relay_change(t)
        if want is not None:
            self._switch_relay(want)
            # The relay state is persisted at once: a reboot restores it without a flicker.
            self._try_persist()

    def _update_snapshot(self, t):
        alerts = self.alerts
        ledger_alerts = self.ledger.alerts()
        for name in ledger_alerts:
            alerts[name] = ledger_alerts[name]
        policy_alerts = self.policy.alerts()
        for name in policy_alerts:
            alerts[name] = policy_alerts[name]
        alerts["sensor_fault"] = self.energy.sensor_fault(self.config["sensor_fault_after"])
        r = self._reading
        s = self.snapshot
        s["meter_id"] = self.config["meter_id"]
        s["time"] = t
        s["balance_cents"] = self.ledger.balance
        s["power_w"] = self._power_w
        s["voltage_dv"] = r.voltage_dv if r else None
        s["energy_wh"] = self.energy.total_wh
        s["month_wh"] = self.biller.month_wh
        s["relay_closed"] = self.board.relay.is_closed() if self.board else self.persisted_relay
        s["reason"] = self.policy.reason
        s["alerts"] = alerts
        s["tariff_version"] = self.biller.tariff.version
        s["online"] = self.online

    # --- the cloud link's surface (meter.link calls only these and reads the snapshot) -----
    def set_online(self, online):
        self.online = bool(online)

    def balance_cents(self):
        return self.ledger.balance

    def totals(self):
        """(energy_wh, debited_cents) so far: what the consumption history samples."""
        return self.energy.total_wh, self.ledger.total_debited

    def advance_floor(self, source, floor):
        """The issuer's resync (docs/protocol.md "sync"): raise the source's recharge floor and
        persist it; True if it moved. RechargeError for a floor that is not a valid seq."""
        if not self.recharger.advance_floor(source, floor):
            return False
        self._try_persist()  # not on flash: the cloud syncs again after the next online
        return True

    def apply_recharge(self, msg, source=None):
        """Apply a recharge once and persist it before answering; returns (status, reason).
        `source`: the only source this channel may carry (MQTT: "cloud"), checked with the
        rest of the message, once.

        The credit and the relay it closes go to flash in one write; the relay moves only
        after that write. The caller acknowledges only after this returns: an "applied"
        credit is on flash."""
        now = self.clock.now()
        status, reason = self.credit(lambda: self.recharger.apply(msg, now, source), now)
        if status == "applied":
            self._event("recharge %s: %d cents" % (msg.get("id"), msg.get("amount_cents")))
        return status, reason

    def credit(self, apply, now):
        """The one credit path: apply() changes the ledger and the recharge windows in RAM
        and says (status, reason); an "applied" change is persisted with the relay it decides
        in one write, or undone whole."""
        tokens = self.tokens
        before = (self.ledger.to_dict(), self.recharger.state(),
                  tokens.state() if tokens is not None else None)
        status, reason = apply()
        if status != "applied":
            return status, reason
        self._relay_next = self._relay_change(now) if self.board is not None else None
        try:
            saved = self._try_persist()
        finally:
            want, self._relay_next = self._relay_next, None
        if not saved:
            # Not on flash means not applied: undo, so the re-sent credit applies later, and
            # the relay stays as it is.
            if want is not None:
                self.policy.cancel_switch()
            thresholds = self.config["thresholds"]
            self.ledger = Ledger.from_dict(before[0], low_cents=thresholds["low_cents"],
                                           critical_cents=thresholds["critical_cents"])
            self.recharger = Recharger(self.ledger, max_cents=self.config["max_recharge_cents"],
                                       state=before[1])
            if tokens is not None:
                tokens.restore(before[2])
            return "rejected", "storage_error"
        if want is not None:
            self._switch_relay(want)
        if self.board is not None:
            self._update_snapshot(now)
        return status, reason

    def enter_token(self, digits):
        """A token typed on the keypad: see KeypadTokens.enter."""
        if self.tokens is None:
            return "NO_TOKENS", 0
        return self.tokens.enter(digits)

    def attach_panel(self, panel):
        """The keypad's token panel (meter.token_entry.TokenEntry), which boot builds."""
        self.panel = panel

    def note(self, text):
        """An event for the display and the link, from the app's own parts."""
        self._event(text)

    def uptime_s(self):
        """Seconds this boot has run, from the tick's ticks sum: the token lock-out's clock."""
        return self._uptime_ms // 1000

    def set_tariff(self, d):
        """A tariff pushed from the cloud; only a newer version replaces the current one."""
        try:
            tariff = Tariff.from_dict(d)
        except TariffError as exc:
            return False, str(exc)
        before_tariff, before_pending = self.biller.tariff, self.biller.pending
        if not self.biller.set_tariff(tariff):
            return False, "not_newer"
        if not self._try_persist():
            self.biller.tariff, self.biller.pending = before_tariff, before_pending
            return False, "storage_error"
        return True, "ok"

    def reset_lockout(self):
        self.policy.reset_lockout()
        self._try_persist()

    # --- asyncio ------------------------------------------------------------------------
    async def run(self, watchdog=None):
        """Tick every tick_ms on a drift-free schedule, feeding the watchdog after each good
        tick. A tick that keeps failing stops feeding it, so the hardware resets the board."""
        import asyncio
        clock = self.clock
        period = self.config["tick_ms"]
        due = clock.ticks_ms()
        self.running = True
        while self.running:
            try:
                self.tick()
                self.tick_errors = 0
            except Exception as exc:  # a bug must not stop billing; the watchdog is the backstop
                self.tick_errors += 1
                self._log("error", "tick failed: %r", exc)
            if watchdog is not None and self.tick_errors < 10:
                watchdog.feed()
            due = clock.ticks_add(due, period)
            delay = clock.ticks_diff(due, clock.ticks_ms())
            if delay < 0:
                due = clock.ticks_ms()
                delay = 0
            await asyncio.sleep(delay / 1000)

    # --- helpers ------------------------------------------------------------------------
    def _event(self, text):
        self.events.append(text)
        if len(self.events) > 8:
            self.events.pop(0)
        self._log("info", "%s", text)

    def _log(self, level, msg, *args):
        if self.log is not None:
            getattr(self.log, level)(msg, *args)
