# The simulator's virtual clock: real time, N times faster, or a deterministic fast-forward
# for tests. It supplies MicroPython's ticks_ms/ticks_diff/ticks_add/sleep_ms, the RTC's wall
# clock and (CPython) an asyncio event loop whose time follows it and, when fast-forwarding,
# jumps straight to the next timer instead of waiting.
import time as _time

TICKS_PERIOD = 1 << 30  # MicroPython's ticks wrap at 2**30 on every port
_TICKS_MAX = TICKS_PERIOD - 1
_TICKS_HALF = TICKS_PERIOD // 2
# 2026-01-01T00:00:00Z: a fixed default start so fast-forwarded runs are reproducible.
DEFAULT_EPOCH_MS = 1767225600000

FAST = "fast"
REAL = "real"


def ticks_diff(a, b):
    return ((a - b + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def ticks_add(a, delta):
    return (a + delta) & _TICKS_MAX


def _wall_ms():
    if hasattr(_time, "monotonic"):
        return int(_time.monotonic() * 1000)
    return _time.ticks_ms()  # MicroPython: only differences are used


# --- calendar arithmetic for the RTC (MicroPython has no datetime module) ------------------

def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def epoch_ms_to_datetime(epoch_ms):
    """Unix ms -> the RTC's (year, month, day, weekday 0=Monday, hour, minute, second, us)."""
    days = epoch_ms // 86400000
    rem = epoch_ms - days * 86400000
    y, m, d = _civil_from_days(days)
    s = rem // 1000
    return (y, m, d, (days + 3) % 7, s // 3600, (s // 60) % 60, s % 60, (rem % 1000) * 1000)


def datetime_to_epoch_ms(t):
    y, m, d = t[0], t[1], t[2]
    h = t[4] if len(t) > 4 else 0
    mi = t[5] if len(t) > 5 else 0
    s = t[6] if len(t) > 6 else 0
    sub = t[7] if len(t) > 7 else 0
    return (((_days_from_civil(y, m, d) * 24 + h) * 60 + mi) * 60 + s) * 1000 + sub // 1000


class ClockError(Exception):
    pass


class VirtualClock:
    """mode FAST: time moves only by advance() or an idle event loop; mode REAL: time follows
    the host's monotonic clock times `speed` (speed=1 is real time)."""

    def __init__(self, mode=FAST, speed=1, epoch_ms=DEFAULT_EPOCH_MS, start_ms=0,
                 sleep_advances=True):
        if mode not in (FAST, REAL):
            raise ClockError("unknown clock mode %r" % (mode,))
        if speed <= 0:
            raise ClockError("speed must be positive")
        self.mode = mode
        self.speed = speed
        self._epoch0 = epoch_ms - start_ms
        self._virtual = start_ms
        self._wall0 = _wall_ms()
        # A blocking sleep_ms in FAST mode moves virtual time (faithful for one meter). In a
        # fleet sharing one clock, each meter's short busy-waits would add up and push time
        # for all of them, so a fleet runner turns this off: the sleep then takes no time.
        self.sleep_advances = sleep_advances

    # --- virtual time -----------------------------------------------------------------------

    def now_ms(self):
        """Virtual milliseconds since the clock's origin (never wraps)."""
        if self.mode == FAST:
            return int(self._virtual + 1e-6)  # float steps from the loop may land just short
        return int(self._virtual + (_wall_ms() - self._wall0) * self.speed)

    def now_s(self):
        if self.mode == FAST:
            return self._virtual / 1000.0
        return self.now_ms() / 1000.0

    def epoch_ms(self):
        """Virtual wall-clock time, Unix milliseconds (UTC)."""
        return self._epoch0 + self.now_ms()

    def epoch_at(self, t_ms):
        """The wall-clock time (Unix ms) of virtual instant t_ms."""
        return self._epoch0 + t_ms

    def advance(self, ms):
        """Move virtual time forward (FAST mode) by ms; in REAL mode, shift it forward."""
        if ms < 0:
            raise ClockError("time does not go backwards")
        self._virtual += ms

    def advance_to(self, t_ms):
        now = self.now_ms()
        if t_ms > now:
            self.advance(t_ms - now)

    def _advance_s(self, seconds):
        if seconds > 0:
            self._virtual += seconds * 1000.0

    # --- MicroPython's time functions -------------------------------------------------------

    def ticks_ms(self):
        return self.now_ms() & _TICKS_MAX

    def ticks_us(self):
        return int(self.now_s() * 1000000) & _TICKS_MAX

    def sleep_ms(self, ms):
        """A blocking sleep: instant in FAST mode (virtual time moves), scaled in REAL mode."""
        if ms <= 0:
            return
        if self.mode == FAST:
            if self.sleep_advances:
                self.advance(ms)
        else:
            _time.sleep(ms / 1000.0 / self.speed)

    # --- asyncio (CPython) ------------------------------------------------------------------

    def new_event_loop(self):
        return _make_loop(self)

    def run(self, coro):
        """asyncio.run on this clock's event loop."""
        import asyncio
        with asyncio.Runner(loop_factory=self.new_event_loop) as runner:
            return runner.run(coro)


ticks_period = TICKS_PERIOD


def _make_loop(clock):
    import asyncio
    import selectors

    class _Selector(selectors.DefaultSelector):
        # asyncio's loop asks the selector to wait until its next timer; in FAST mode waiting
        # means moving virtual time, so the timer is due at once and no wall time passes.
        def select(self, timeout=None):
            if clock.mode == REAL:
                if timeout is not None:
                    timeout = timeout / clock.speed
                return super().select(timeout)
            events = super().select(0)
            if events or timeout == 0:
                return events
            if timeout is None:
                return super().select(None)  # nothing scheduled: only I/O can wake us
            clock._advance_s(timeout)
            return []

    class VirtualTimeLoop(asyncio.SelectorEventLoop):
        def __init__(self):
            super().__init__(_Selector())
            self.clock = clock
            # Timers within a microsecond count as due: float rounding must not spin the loop.
            self._clock_resolution = 1e-6

        def time(self):
            return clock.now_s()

    return VirtualTimeLoop()


# --- the fake `time` functions --------------------------------------------------------------

_installed = [None]
_contexts = []  # [board_context module or None], looked up once: this runs on every tick


def _board_context():
    if not _contexts:
        try:
            from simulator import board_context
        except ImportError:  # MicroPython: one board, the installed clock
            board_context = None
        _contexts.append(board_context)
    return _contexts[0]


def active_clock():
    """The clock of the meter whose context is current, else the installed one."""
    ctx = _board_context()
    if ctx is not None:
        board = ctx.current_or_none()
        if board is not None:
            return board.clock
    return _installed[0]


def _ticks_ms():
    return active_clock().ticks_ms()


def _ticks_us():
    return active_clock().ticks_us()


def _sleep_ms(ms):
    active_clock().sleep_ms(ms)


def _sleep_us(us):
    active_clock().sleep_ms(us / 1000.0)


def _ticks_cpu():
    return active_clock().ticks_us()


def install(clock):
    """Give CPython's time module MicroPython's ticks functions, following `clock` (or the
    current meter's clock), and asyncio a sleep_ms. Idempotent; the clock may be replaced."""
    _installed[0] = clock
    for name, fn in (("ticks_ms", _ticks_ms), ("ticks_us", _ticks_us), ("ticks_cpu", _ticks_cpu),
                     ("ticks_diff", ticks_diff), ("ticks_add", ticks_add),
                     ("sleep_ms", _sleep_ms), ("sleep_us", _sleep_us)):
        setattr(_time, name, fn)
    try:
        import asyncio
        if not hasattr(asyncio, "sleep_ms"):
            async def sleep_ms(ms):
                await asyncio.sleep(ms / 1000.0)
            asyncio.sleep_ms = sleep_ms
    except ImportError:
        pass
    return clock
