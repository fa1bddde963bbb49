"""The HIL suite's driver for one board over a serial port URL, through MicroPython's raw REPL.

Built on mpremote's own transport (the same bytes `mpremote` sends), plus what a test needs on
top: bounded waits everywhere, code started without waiting (a hung loop), waiting for a reboot
without interrupting the board, file transfer and hashes computed on the board.
"""
import ast
import binascii
import time

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

_ATTEMPT_S = 2.0  # one try at the raw REPL banner
_BOOT_MARK = b"rst:"  # the ESP32 ROM's first words after any reset (and the simulated board's)


class BoardError(Exception):
    """The board did not answer as the raw REPL protocol says, within the time allowed."""


class BoardExecError(BoardError):
    """Code run on the board raised; `output` is what it printed, `error` the traceback."""

    def __init__(self, output, error):
        BoardError.__init__(self, error.strip().splitlines()[-1] if error.strip() else error)
        self.output = output
        self.error = error


class ReplBoard:
    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.transport = None

    # --- connection -----------------------------------------------------------------------
    def open(self):
        try:
            self.transport = SerialTransport(self.port, baudrate=115200, timeout=0.05)
        except TransportError as exc:
            raise BoardError("cannot open %s: %s" % (self.port, exc)) from None
        self.enter_raw()
        return self

    def close(self):
        if self.transport is not None:
            try:
                self.transport.exit_raw_repl()
                self.transport.close()
            except OSError:
                pass
            self.transport = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    @property
    def serial(self):
        return self.transport.serial

    def enter_raw(self, soft_reset=False, timeout=None):
        """Interrupt whatever runs (Ctrl-C) and enter the raw REPL. A Ctrl-C that lands
        while the board is still booting is lost (on real boards too), so it is sent again."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            attempt = min(_ATTEMPT_S, max(0.1, deadline - time.monotonic()))
            try:
                self.transport.enter_raw_repl(soft_reset=soft_reset, timeout_overall=attempt)
                break
            except TransportError as exc:
                if time.monotonic() >= deadline:
                    raise BoardError("no raw REPL on %s: %s" % (self.port, exc)) from None
        self.transport.use_raw_paste = True

    # --- running code ---------------------------------------------------------------------
    def exec(self, code, timeout=None):
        """Run code; returns what it printed (str). Raises BoardExecError if it raised."""
        try:
            out, err = self.transport.exec_raw(code, timeout=timeout or self.timeout)
        except TransportError as exc:
            raise BoardError("exec failed on %s: %s" % (self.port, exc)) from None
        if err:
            raise BoardExecError(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        return out.decode("utf-8", "replace")

    def eval(self, expr, timeout=None):
        """The value of a Python expression on the board (repr -> literal)."""
        out = self.exec("print(repr(%s))" % expr, timeout)
        try:
            return ast.literal_eval(out.strip().splitlines()[-1])
        except (ValueError, SyntaxError, IndexError):
            raise BoardError("cannot parse %r as a value" % out) from None

    def start(self, code):
        """Send code and do not wait for it to end (it may never end)."""
        try:
            self.transport.exec_raw_no_follow(code)
        except TransportError as exc:
            raise BoardError("could not start code: %s" % exc) from None

    def read_until(self, mark, timeout):
        """Read the serial line without writing to it, until `mark` or the timeout."""
        data = b""
        deadline = time.monotonic() + timeout
        while mark not in data and time.monotonic() < deadline:
            chunk = self.serial.read(max(1, self.serial.in_waiting))
            data += chunk
        if mark not in data:
            raise BoardError("no %r within %.1f s; got %r" % (mark, timeout, data[-300:]))
        return data

    # --- resets ---------------------------------------------------------------------------
    def soft_reset(self):
        self.enter_raw(soft_reset=True)

    def wait_for_boot(self, timeout=None):
        """After a reset the board prints its ROM line; then take the raw REPL again."""
        data = self.read_until(_BOOT_MARK, timeout or self.timeout)
        time.sleep(0.05)  # let main.py (if any) get going before the Ctrl-C below
        self.enter_raw()
        return data

    def machine_reset(self, timeout=None):
        """machine.reset(): the chip restarts; returns what the board printed meanwhile."""
        self.start("import machine\nmachine.reset()")
        return self.wait_for_boot(timeout)

    def reset_and_leave(self, timeout=None):
        """machine.reset(), wait until the board has really restarted, and let go of it (the
        next session does not catch the old interpreter on its way out)."""
        self.start("import machine\nmachine.reset()")
        self.read_until(_BOOT_MARK, timeout or self.timeout)
        self.close()

    def pulse_en(self, timeout=None, pulse_s=0.1):
        """The EN pin through RTS, as esptool wires it on DevKit boards (RTS low = in reset)."""
        self.serial.dtr = False
        self.serial.rts = True
        time.sleep(pulse_s)
        self.serial.rts = False
        return self.wait_for_boot(timeout)

    # --- files ----------------------------------------------------------------------------
    def put_file(self, path, data, chunk=512):
        self.exec("f = open(%r, 'wb')" % path)
        try:
            for i in range(0, len(data), chunk):
                self.exec("f.write(%r)" % bytes(data[i:i + chunk]))
        finally:
            self.exec("f.close()\ndel f")

    def get_file(self, path):
        out = self.exec("import binascii\nwith open(%r, 'rb') as f:\n"
                        "    while True:\n        b = f.read(256)\n        if not b: break\n"
                        "        print(binascii.hexlify(b).decode())" % path)
        return binascii.unhexlify("".join(out.split()))

    def sha256(self, path):
        """The file's SHA-256, computed on the board (hex); None if it does not exist."""
        code = ("import hashlib, binascii\ntry:\n    f = open(%r, 'rb')\nexcept OSError:\n"
                "    print(None)\nelse:\n    h = hashlib.sha256()\n    while True:\n"
                "        b = f.read(512)\n        if not b: break\n        h.update(b)\n"
                "    f.close()\n    print(repr(binascii.hexlify(h.digest()).decode()))" % path)
        return ast.literal_eval(self.exec(code).strip())

    def exists(self, path):
        out = self.exec("import os\ntry:\n    os.stat(%r)\n    print(1)\nexcept OSError:\n"
                        "    print(0)" % path)
        return out.strip() == "1"

    def remove(self, path, missing_ok=True):
        self.exec("import os\ntry:\n    os.remove(%r)\nexcept OSError:\n    if not %r: raise"
                  % (path, missing_ok))

    def rename(self, old, new):
        self.exec("import os\nos.rename(%r, %r)" % (old, new))
