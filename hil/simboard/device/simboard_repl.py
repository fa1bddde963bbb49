# MicroPython's REPL protocols on the board process's stdin/stdout: the raw REPL (with
# raw-paste) that mpremote and the HIL driver speak, a small friendly REPL, and boot.py/main.py.
# Ctrl-C reaches running code as SIGINT from the harness; this loop only sees it while idle.
import select
import sys

from sim_board import BoardReset

_CTRL_A = 1
_CTRL_B = 2
_CTRL_C = 3
_CTRL_D = 4
_CTRL_E = 5
_POLL_MS = 20  # how often the running firmware looks at the serial line for Ctrl-C
_PASTE_WINDOW = 128  # bytes per flow-control credit, as a board with a 256-byte stdin buffer

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = (b"MicroPython v1.29.0 on mita-simboard; ESP32 module (simulated)\r\n"
                   b"Type \"help()\" for more information.\r\n")

# Process exit codes the harness acts on.
EXIT_SOFT_RAW = 10  # soft reset asked in the raw REPL: restart, skip main.py
EXIT_SOFT_FRIENDLY = 11  # soft reset from the friendly REPL: restart and run main.py
EXIT_RESET = 20  # + reset cause: machine.reset(), deepsleep: a hardware reset


class SerialGone(Exception):
    """stdin closed: the harness went away, so the board has no reason to live."""


class Repl:
    def __init__(self, channel, globals_=None):
        self.channel = channel
        self.globals = globals_ if globals_ is not None else {"__name__": "__main__"}
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._typed_ahead = bytearray()  # bytes read while main.py ran, for the REPL

    # --- the wire -------------------------------------------------------------------------
    def write(self, data):
        self._out.write(data)

    def read_byte(self):
        if self._typed_ahead:
            c = self._typed_ahead[0]
            self._typed_ahead = self._typed_ahead[1:]
            return c
        while True:
            try:
                b = self._in.read(1)
            except KeyboardInterrupt:
                return _CTRL_C  # a SIGINT that raced the end of a command: it is just Ctrl-C
            if not b:
                raise SerialGone()
            return b[0]

    # --- running code ---------------------------------------------------------------------
    def execute(self, source, filename="<stdin>", mode="exec", cooperative=False):
        """Run source in the REPL's globals; returns the exception it raised or None.
        A BoardReset or SystemExit passes through: they end this interpreter."""
        try:
            # Inside the try: the harness's SIGINT may land the moment it hears "busy".
            # "busy": Ctrl-C becomes SIGINT; "busy-coop": it stays a byte for _until_ctrl_c.
            self.channel.send("busy-coop" if cooperative else "busy")
            code = compile(source, filename, mode)
            exec(code, self.globals)
        except (BoardReset, SystemExit):
            raise
        except BaseException as exc:  # noqa: B036 - KeyboardInterrupt is reported too
            return exc
        finally:
            self.channel.send("idle")
        return None

    async def _until_ctrl_c(self, coro):
        """Run the firmware's main coroutine, polling the serial line between its awaits as a
        board's UART interrupt would: Ctrl-C stops it at a clean point (an asynchronous
        SIGINT can land inside the runtime's own locks, and a wedged board is no test)."""
        import asyncio
        task = asyncio.create_task(coro)
        poller = select.poll()
        poller.register(self._in, select.POLLIN)
        while not task.done():
            if poller.poll(0):
                b = self._in.read(1)
                if not b:
                    raise SerialGone()
                if b[0] == _CTRL_C:
                    task.cancel()
                    raise KeyboardInterrupt()
                self._typed_ahead.extend(b)
            await asyncio.sleep_ms(_POLL_MS)
        return await task

    def run_main(self):
        """/main.py with asyncio.run() watched for Ctrl-C (see _until_ctrl_c)."""
        import asyncio
        original = asyncio.run
        asyncio.run = lambda coro: original(self._until_ctrl_c(coro))
        try:
            self.run_file("/main.py", cooperative=True)
        finally:
            asyncio.run = original

    def run_file(self, path, cooperative=False):
        try:
            with open(path) as f:
                source = f.read()
        except OSError:
            return
        exc = self.execute(source, path.lstrip("/"), cooperative=cooperative)
        if exc is not None:
            sys.print_exception(exc, sys.stdout)

    # --- the raw REPL ---------------------------------------------------------------------
    def raw(self):
        """Returns "friendly" on Ctrl-B or EXIT_SOFT_RAW on Ctrl-D with nothing typed."""
        self.write(RAW_BANNER)
        while True:
            self.write(b">")
            line = bytearray()
            while True:
                c = self.read_byte()
                if c == _CTRL_A:
                    if len(line) == 2 and line[0] == _CTRL_E and line[1] == ord("A"):
                        self._raw_paste()
                        break
                    self.write(RAW_BANNER)
                    line = bytearray()
                    self.write(b">")
                elif c == _CTRL_B:
                    self.write(b"\r\n")
                    return "friendly"
                elif c == _CTRL_C:
                    line = bytearray()
                elif c == _CTRL_D:
                    self.write(b"OK")
                    if not line:
                        self.write(b"\r\n")
                        return EXIT_SOFT_RAW
                    self._raw_exec(bytes(line))
                    break
                else:
                    line.append(c)

    def _raw_exec(self, source):
        exc = self.execute(source)
        self.write(b"\x04")
        if exc is not None:
            sys.print_exception(exc, sys.stdout)
        self.write(b"\x04")

    def _raw_paste(self):
        # Flow control as the real boards do: the window size, one credit up front, then a
        # credit (0x01) every time a window's worth has been consumed.
        w = _PASTE_WINDOW
        self.write(b"R\x01" + bytes((w & 0xFF, w >> 8)) + b"\x01")
        source = bytearray()
        remain = w
        while True:
            c = self.read_byte()
            if c == _CTRL_D or c == _CTRL_C:
                self.write(b"\x04")
                if c == _CTRL_C:
                    self.write(b"\x04KeyboardInterrupt:\r\n\x04")
                    return
                break
            source.append(c)
            remain -= 1
            if remain == 0:
                self.write(b"\x01")
                remain = w
        self._raw_exec(bytes(source))

    # --- the friendly REPL ----------------------------------------------------------------
    def friendly(self):
        """One line at a time (no compound statements); returns "raw" or EXIT_SOFT_FRIENDLY."""
        self.write(FRIENDLY_BANNER + b">>> ")
        line = bytearray()
        while True:
            c = self.read_byte()
            if c == _CTRL_A:
                self.write(b"\r\n")
                return "raw"
            if c == _CTRL_B:
                self.write(b"\r\n" + FRIENDLY_BANNER + b">>> ")
                line = bytearray()
            elif c == _CTRL_C:
                self.write(b"\r\nKeyboardInterrupt\r\n>>> ")
                line = bytearray()
            elif c == _CTRL_D:
                if not line:
                    self.write(b"\r\n")
                    return EXIT_SOFT_FRIENDLY
            elif c == 13 or c == 10:
                self.write(b"\r\n")
                if line.strip():
                    exc = self.execute(bytes(line), mode="single")
                    if exc is not None:
                        sys.print_exception(exc, sys.stdout)
                line = bytearray()
                self.write(b">>> ")
            elif c == 8 or c == 127:
                if line:
                    line = line[:-1]
                    self.write(b"\x08 \x08")
            elif c >= 32:
                line.append(c)
                self.write(bytes((c,)))

    # --- a whole life between two resets --------------------------------------------------
    def life(self, run_main, raw):
        """boot.py, main.py unless the soft reset came from the raw REPL, then the REPLs.
        Returns the process exit code."""
        try:
            try:
                self.run_file("/boot.py")
                if run_main:
                    self.run_main()
            except KeyboardInterrupt:
                pass  # the Ctrl-C for main.py landed just after it: it has done its job
            mode = "raw" if raw else "friendly"
            while True:
                try:
                    mode = self.raw() if mode == "raw" else self.friendly()
                except KeyboardInterrupt:
                    continue  # SIGINT raced an idle prompt: already handled as Ctrl-C
                if not isinstance(mode, str):
                    return mode
        except BoardReset as exc:
            if exc.cause == "power_off":
                return 0
            return EXIT_RESET + exc.cause
        except SystemExit:
            self.write(b"\r\n")
            return EXIT_SOFT_FRIENDLY if not raw else EXIT_SOFT_RAW
        except SerialGone:
            return 0
