# The `machine` module for the simulator, with the ESP32 port's signatures, backed by the
# current simulated board (board_context). Runs under CPython and the MicroPython unix port.
try:
    from simulator import board_context as _ctx
    # The reset causes are the board's own, so machine.reset_cause() and the board agree.
    from simulator.sim_board import (BoardReset, DEEPSLEEP_RESET, HARD_RESET, PWRON_RESET,
                                     SOFT_RESET, WDT_RESET)
    from simulator.clock import datetime_to_epoch_ms, epoch_ms_to_datetime
except ImportError:  # MicroPython: simulator/ itself is on MICROPYPATH
    import board_context as _ctx
    from sim_board import (BoardReset, DEEPSLEEP_RESET, HARD_RESET, PWRON_RESET, SOFT_RESET,
                           WDT_RESET)
    from clock import datetime_to_epoch_ms, epoch_ms_to_datetime

WLAN_WAKE = 2
PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6
IDLE = 0
SLEEP = 2
DEEPSLEEP = 4


def _board():
    return _ctx.current()


def _pin_number(pin):
    if isinstance(pin, Pin):
        return pin.id
    return int(pin)


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    PULL_HOLD = 4
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __init__(self, id, mode=-1, pull=-1, value=None, drive=None, hold=None):
        self.id = int(id)
        self._board = _board()
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, value=None, drive=None, hold=None):
        self._board.pin_setup(self.id, None if mode == -1 else mode,
                              None if pull == -1 else pull, value, self)

    def value(self, x=None):
        if x is None:
            return self._board.pin_read(self.id)
        self._board.pin_write(self.id, x)
        return None

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self._board.pin_write(self.id, 1)

    def off(self):
        self._board.pin_write(self.id, 0)

    def irq(self, handler=None, trigger=3, priority=1, wake=None, hard=False):
        self._board.pin_irq(self.id, handler, trigger)
        return _Irq(self)

    def __repr__(self):
        return "Pin(%d)" % self.id


class _Irq:
    def __init__(self, pin):
        self._pin = pin

    def trigger(self):
        return self._pin._board.pins[self._pin.id].trigger

    def flags(self):
        return 0


class Signal:
    def __init__(self, pin, invert=False):
        self._pin = pin
        self._invert = bool(invert)

    def value(self, x=None):
        if x is None:
            return self._pin.value() ^ self._invert
        self._pin.value((1 if x else 0) ^ self._invert)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class UART:
    INV_TX = 1
    INV_RX = 2
    INV_RTS = 4
    INV_CTS = 8
    RTS = 1
    CTS = 2
    IDLE = 1
    RX_IDLE = 1

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, tx=None, rx=None,
                 timeout=0, timeout_char=0, rxbuf=256, txbuf=256, **kwargs):
        self.id = id
        self._board = _board()
        self._rx = bytearray()
        self.written = 0
        self.init(baudrate, bits, parity, stop, tx=tx, rx=rx, timeout=timeout)

    def init(self, baudrate=None, bits=None, parity=-1, stop=None, tx=None, rx=None,
             timeout=None, **kwargs):
        s = getattr(self, "_settings", {"baudrate": 115200, "bits": 8, "parity": None,
                                        "stop": 1, "tx": None, "rx": None, "timeout": 0})
        for key, val in (("baudrate", baudrate), ("bits", bits), ("stop", stop),
                         ("timeout", timeout)):
            if val is not None:
                s[key] = val
        if parity != -1:
            s["parity"] = parity
        if tx is not None:
            s["tx"] = _pin_number(tx)
        if rx is not None:
            s["rx"] = _pin_number(rx)
        self._settings = s

    def deinit(self):
        self._rx = bytearray()

    def write(self, buf):
        data = bytes(buf)
        self.written += len(data)
        # The device on the other side answers at once; a frame is one write (Modbus RTU
        # frames are delimited by the silence that follows a driver's write).
        self._rx.extend(self._board.uart_exchange(self.id, self._settings, data))
        return len(data)

    def any(self):
        return len(self._rx)

    def read(self, nbytes=None):
        # Never blocks: the emulated device has already answered, or it never will.
        if not self._rx:
            return None
        if nbytes is None or nbytes >= len(self._rx):
            out = bytes(self._rx)
            self._rx = bytearray()
            return out
        out = bytes(self._rx[:nbytes])
        self._rx = self._rx[nbytes:]
        return out

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        data = self.read(n)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

    def readline(self):
        if not self._rx:
            return None
        i = self._rx.find(b"\n")
        return self.read(len(self._rx) if i < 0 else i + 1)

    def flush(self):
        return None

    def txdone(self):
        return True

    def sendbreak(self):
        return None


class I2C:
    WRITE = 0
    READ = 1

    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self._board = _board()
        self.scl = _pin_number(scl) if scl is not None else 18
        self.sda = _pin_number(sda) if sda is not None else 19
        self.freq = freq

    def init(self, scl=None, sda=None, freq=None):
        if scl is not None:
            self.scl = _pin_number(scl)
        if sda is not None:
            self.sda = _pin_number(sda)
        if freq is not None:
            self.freq = freq

    def scan(self):
        return list(self._board.i2c_devices(self.scl, self.sda))

    def writeto(self, addr, buf, stop=True):
        self._board.i2c_write(self.scl, self.sda, addr, bytes(buf))
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        total = 0
        for buf in vector:
            total += self.writeto(addr, buf, stop)
        return total

    def readfrom(self, addr, nbytes, stop=True):
        return self._board.i2c_read(self.scl, self.sda, addr, nbytes)

    def readfrom_into(self, addr, buf, stop=True):
        data = self.readfrom(addr, len(buf))
        buf[:len(data)] = data

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self.writeto(addr, bytes([memaddr & 0xFF]) + bytes(buf))


SoftI2C = I2C


class PWM:
    def __init__(self, dest, freq=None, duty=None, duty_u16=None, duty_ns=None):
        self._pin = dest if isinstance(dest, Pin) else Pin(dest, Pin.OUT)
        self._freq = freq or 5000
        self._duty = 0
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        elif duty is not None:
            self.duty(duty)

    def freq(self, value=None):
        if value is None:
            return self._freq
        self._freq = value
        return None

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        self._duty = int(value)
        # A buzzer (or LED) on a PWM pin is "on" whenever the duty is not zero.
        self._pin.value(1 if self._duty else 0)
        return None

    def duty(self, value=None):
        if value is None:
            return self._duty >> 6
        self.duty_u16(int(value) << 6)
        return None

    def deinit(self):
        self.duty_u16(0)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 3

    def __init__(self, pin, atten=None):
        self._board = _board()
        self.pin = _pin_number(pin)

    def read_u16(self):
        return self._board.adc_u16(self.pin)

    def read(self):
        return self.read_u16() >> 4

    def read_uv(self):
        return self.read_u16() * 3300000 // 65535

    def atten(self, value):
        return None

    def width(self, value):
        return None


class WDT:
    def __init__(self, id=0, timeout=5000):
        self._board = _board()
        self._board.wdt_start(timeout)

    def feed(self):
        self._board.wdt_feed()


class RTC:
    def __init__(self, id=0):
        self._board = _board()
        self.memory_bytes = b""

    def datetime(self, datetimetuple=None):
        if datetimetuple is None:
            return epoch_ms_to_datetime(self._board.rtc_epoch_ms())
        self._board.rtc_set_epoch_ms(datetime_to_epoch_ms(datetimetuple))
        return None

    def init(self, datetimetuple):
        self.datetime(datetimetuple)

    def memory(self, data=None):
        if data is None:
            return self.memory_bytes
        self.memory_bytes = bytes(data)
        return None


def reset():
    board = _board()
    board.reset(SOFT_RESET)
    raise BoardReset(SOFT_RESET)


def soft_reset():
    board = _board()
    board.reset(SOFT_RESET)
    raise BoardReset(SOFT_RESET)


def reset_cause():
    return _board().reset_cause


def wake_reason():
    return 0


def unique_id():
    return _board().unique_id()


def freq(hz=None):
    board = _board()
    if hz is None:
        return board.freq_hz
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    board.freq_hz = hz
    return None


def idle():
    return None


def lightsleep(time_ms=None):
    if time_ms:
        _board().clock.sleep_ms(time_ms)


def deepsleep(time_ms=None):
    board = _board()
    board.reset(DEEPSLEEP_RESET)
    raise BoardReset(DEEPSLEEP_RESET)


def disable_irq():
    return 0


def enable_irq(state=0):
    return None


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    return -2
