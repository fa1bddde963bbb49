"""The meter firmware as the HIL tests see it on a board: boot it from the REPL, recharge,
tick, read its snapshot and its relay pin; plus the rig controls (load, sensor faults)."""
import json

STATE_FILES = ("state.a", "state.b")


class RigError(Exception):
    pass


class MeterOnBoard:
    def __init__(self, board, rig, rig_control=None, sim_process=None):
        self.board = board
        self.rig = rig
        self.rig_control = rig_control
        self.sim_process = sim_process
        self.config = dict(rig["config"])
        self.state_dir = "/" + self.config["state_dir"]

    # --- setup ----------------------------------------------------------------------------
    def prepare(self):
        """Fresh state and the rig's test config on the board's flash."""
        b = self.board
        b.exec("import os\ntry:\n    os.mkdir(%r)\nexcept OSError:\n    pass" % self.state_dir)
        for name in STATE_FILES:
            b.remove(self.state_dir + "/" + name)
        self.write_config(json.dumps(self.config).encode())
        b.exec("app = None")

    def write_config(self, data):
        self.board.put_file("/config.json", data)

    # --- the firmware ---------------------------------------------------------------------
    def boot(self):
        """meter.boot.start() as main.py does it, without running the loop; returns its log."""
        return self.board.exec("from meter import boot\napp = boot.start()")

    def version(self):
        return self.board.eval("__import__('meter').VERSION")

    def balance(self):
        return self.board.eval("app.ledger.balance")

    def snapshot(self):
        return self.board.eval("app.snapshot")

    def recharge(self, rid, seq, amount_cents):
        msg = {"id": rid, "seq": seq, "amount_cents": amount_cents, "source": "cloud"}
        return tuple(self.board.eval("app.apply_recharge(%r)" % msg))

    def tick(self, n=1, gap_ms=0):
        self.board.exec("import time\nfor _ in range(%d):\n    app.tick()\n"
                        "    time.sleep_ms(%d)" % (n, gap_ms), timeout=max(10, n * gap_ms / 500))

    def enter_token(self, digits):
        """A token handed to the firmware's token path over the REPL (no keypad)."""
        return tuple(self.board.eval("app.enter_token(%r)" % digits))

    def type_on_keypad(self, keys):
        """Keys pressed on the board's keypad while the firmware's own keypad task polls the
        matrix (as boot.run starts it): the rig's finger presses them, the panel decodes and
        credits. Returns the LCD's two lines after the last key."""
        finger = self.rig_control.keypad_finger() if self.rig_control else None
        if finger is None:
            raise RigError("this rig cannot press the board's keypad")
        self.board.exec(
            "import asyncio\n"
            "async def _typing():\n"
            "    panel = asyncio.create_task(app.panel.run(app.board.keypad, app.clock))\n"
            "    try:\n"
            "        await %s(%r)\n"
            "    finally:\n"
            "        panel.cancel()\n"
            "asyncio.run(_typing())" % (finger, keys),
            timeout=10 + len(keys) * 2.5)  # a key, pressed up to 5 times
        return self.rig_control.lcd_lines()

    def relay_pin_level(self):
        return self.board.eval("__import__('machine').Pin(%d).value()" % self.relay_pin())

    def relay_pin(self):
        return self.rig.get("pins", {}).get("relay", 26)

    def relay_pin_closed(self):
        """What the pin says, whatever the firmware believes: closed means load connected."""
        active_low = self.rig.get("relay", {}).get("active_low", True)
        return self.relay_pin_level() == (0 if active_low else 1)

    def reset_cause(self):
        return self.board.eval("__import__('machine').reset_cause()")

    # --- resets ---------------------------------------------------------------------------
    def soft_reset(self):
        self.board.soft_reset()

    def hard_reset_causes(self):
        """What machine.reset_cause() may say after hard_reset() on this rig."""
        how = self.rig.get("hard_reset")
        if how == "button" and self.sim_process is not None:
            return (2,)  # HARD_RESET: the simulated EN button
        if how == "en":
            return (1, 2)  # the ESP32 reports an EN-pin reset as a power-on
        return (5,)  # machine.reset() is a SOFT_RESET to the ESP32

    def hard_reset(self):
        """The rig's reset button (EN): the simulated board's harness, or RTS on a DevKit;
        machine.reset() where the rig has neither."""
        how = self.rig.get("hard_reset")
        if how == "button" and self.sim_process is not None:
            self.board.serial.reset_input_buffer()  # the boot line to wait for is the next one
            self.sim_process.press_reset()
            return self.board.wait_for_boot()
        if how == "en":
            self.board.serial.reset_input_buffer()
            return self.board.pulse_en()
        return self.board.machine_reset()  # keeps the raw REPL prompt it has to see first


class SimRig:
    """The simulated board's rig: the PZEM emulator lives in the board process (sim_rig)."""

    def __init__(self, board):
        self.board = board

    def set_load(self, watts):
        self.board.exec("import sim_rig\nsim_rig.set_load(%d)" % watts)

    def sensor_fault(self, kind=None):
        self.board.exec("import sim_rig\nsim_rig.sensor_fault(%r)" % (kind,))

    def energy_mwh(self):
        return self.board.eval("__import__('sim_rig').energy_mwh()")

    def keypad_finger(self):
        """Board-side code of an async function that types keys on the keypad matrix."""
        self.board.exec("import sim_rig")
        return "sim_rig.type_keys"

    def lcd_lines(self):
        return self.board.eval("__import__('sim_rig').lcd_lines()")


class HostRig:
    """The reference rig: the PZEM emulator runs on the test host (hil/pzem_host.py)."""

    def __init__(self, host_pzem):
        self.host = host_pzem

    def set_load(self, watts):
        self.host.set_load(watts)

    def sensor_fault(self, kind=None):
        self.host.sensor_fault(kind)

    def energy_mwh(self):
        return self.host.energy_mwh()

    def keypad_finger(self):
        return None  # the reference rig has no switch across the keypad's keys

    def lcd_lines(self):
        return None
