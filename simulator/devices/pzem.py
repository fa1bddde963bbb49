# A byte-accurate PZEM-004T v3.0 behind a UART: Modbus RTU requests in, reply frames out, its
# values taken from the world; silent with the mains off; faults injectable from a seeded PRNG.
import struct

from .prng import Prng

GENERAL_ADDRESS = 0xF8
BROADCAST = 0x00
# The counter's range is 0-9999.99 kWh at 1 Wh: past the end it starts again from zero.
ENERGY_WRAP_WH = 10000000

ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_DATA = 0x03

FAULT_KINDS = ("crc", "timeout", "short", "garbage", "restart")


def _crc_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()  # a byte at a time: a fleet computes thousands of these a second


def crc16_modbus(data):
    crc = 0xFFFF
    table = _CRC_TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def with_crc(body):
    crc = crc16_modbus(body)
    return bytes(body) + bytes((crc & 0xFF, crc >> 8))


def crc_ok(frame):
    if len(frame) < 3:
        return False
    crc = crc16_modbus(frame[:-2])
    return frame[-2] == (crc & 0xFF) and frame[-1] == (crc >> 8)


class Pzem004t:
    """One module. `world` supplies sensor_reading(); see World.sensor_reading for the tuple."""

    def __init__(self, world, address=0x01, seed=1, max_current_ma=100000):
        self.world = world
        self.address = address
        self.alarm_threshold_w = 23000
        self.max_current_ma = max_current_ma
        self.prng = Prng(seed)
        self.fault_rates = {}  # kind -> probability per million requests
        self._queued = []  # one-shot faults, oldest first
        self._zero_mwh = 0  # the world's metered energy when the counter last restarted
        self.requests = 0
        self.replies = 0
        self.faults_applied = {}
        self._last_good_frame = None
        self._last_input = None  # (address, registers, reply) of the last input-register read

    # --- test and scenario controls -------------------------------------------------------

    def inject(self, kind, count=1):
        """Make the next `count` requests suffer `kind` (one of FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError("unknown PZEM fault %r" % (kind,))
        for _ in range(count):
            self._queued.append(kind)

    def set_fault_rate(self, kind, per_million):
        if kind not in FAULT_KINDS:
            raise ValueError("unknown PZEM fault %r" % (kind,))
        self.fault_rates[kind] = per_million

    def restart_counter(self):
        """The energy counter starts again from zero (reset, swapped module)."""
        self._zero_mwh = self.world.sensor_reading()[4]

    def energy_wh(self, metered_mwh=None):
        if metered_mwh is None:
            metered_mwh = self.world.sensor_reading()[4]
        return ((metered_mwh - self._zero_mwh) // 1000) % ENERGY_WRAP_WH

    # --- the wire ---------------------------------------------------------------------------

    def handle(self, frame):
        """One request frame in; the reply bytes out, or None when the module stays silent."""
        frame = bytes(frame)
        reading = self.world.sensor_reading()
        if not reading[0]:
            return None  # the measuring side is powered by the mains
        self.requests += 1
        fault = self._next_fault()
        if fault == "timeout":
            return None
        if fault == "restart":
            self.restart_counter()
            reading = self.world.sensor_reading()
        reply = self._answer(frame, reading)
        if reply is None:
            return None
        reply = self._spoil(reply, fault)
        self.replies += 1
        return reply

    def _next_fault(self):
        if not self._queued and not self.fault_rates:
            return None  # a healthy module: no dice to roll
        fault = None
        if self._queued:
            fault = self._queued.pop(0)
        else:
            for kind in FAULT_KINDS:
                rate = self.fault_rates.get(kind, 0)
                if rate and self.prng.chance(rate):
                    fault = kind
                    break
        if fault is not None:
            self.faults_applied[fault] = self.faults_applied.get(fault, 0) + 1
        return fault

    def _spoil(self, reply, fault):
        if fault == "crc":
            return reply[:-1] + bytes(((reply[-1] ^ (1 + self.prng.below(255))) & 0xFF,))
        if fault == "short":
            return reply[: 1 + self.prng.below(len(reply) - 1)]
        if fault == "garbage":
            return bytes([self.prng.below(256) for _ in range(1 + self.prng.below(len(reply)))])
        return reply

    def _answer(self, frame, reading):
        if frame != self._last_good_frame:
            if len(frame) < 4 or not crc_ok(frame):
                return None  # a Modbus slave ignores frames it cannot trust
            # A driver polls with the same request every second: check its CRC once.
            self._last_good_frame = frame
        addr = frame[0]
        if addr not in (self.address, GENERAL_ADDRESS, BROADCAST):
            return None
        fn = frame[1]
        if fn == 0x42 and len(frame) == 4:
            self._zero_mwh = reading[4]
            reply = frame
        elif fn in (0x03, 0x04, 0x06) and len(frame) == 8:
            reg = (frame[2] << 8) | frame[3]
            val = (frame[4] << 8) | frame[5]
            if fn == 0x04:
                reply = self._read_input(addr, reg, val, reading)
            elif fn == 0x03:
                reply = self._read_holding(addr, reg, val)
            else:
                reply = self._write_holding(addr, reg, val, frame)
        elif fn in (0x03, 0x04, 0x06, 0x42):
            return None  # a known function in a frame of the wrong length: noise
        else:
            reply = with_crc(bytes((addr, fn | 0x80, ILLEGAL_FUNCTION)))
        return None if addr == BROADCAST else reply

    def input_registers(self, reading):
        on, dv, ma, dw, mwh, dhz, pf = reading
        ma = min(ma, self.max_current_ma)
        wh = self.energy_wh(mwh)
        alarm = 0xFFFF if dw >= self.alarm_threshold_w * 10 else 0
        return [dv & 0xFFFF, ma & 0xFFFF, ma >> 16, dw & 0xFFFF, dw >> 16,
                wh & 0xFFFF, wh >> 16, dhz & 0xFFFF, pf & 0xFFFF, alarm]

    def _read_input(self, addr, start, count, reading):
        if count < 1 or start + count > 10:
            return _exception(addr, 0x04, ILLEGAL_ADDRESS)
        regs = self.input_registers(reading)[start:start + count]
        last = self._last_input
        if last is not None and last[0] == addr and last[1] == regs:
            return last[2]  # the values have not moved since the last poll: same frame
        reply = with_crc(bytes((addr, 0x04, 2 * count)) + _words(regs))
        self._last_input = (addr, regs, reply)
        return reply

    def _read_holding(self, addr, start, count):
        if count < 1 or start < 1 or start + count > 3:
            return _exception(addr, 0x03, ILLEGAL_ADDRESS)
        regs = [self.alarm_threshold_w, self.address][start - 1:start - 1 + count]
        return with_crc(bytes((addr, 0x03, 2 * count)) + _words(regs))

    def _write_holding(self, addr, reg, value, frame):
        if reg == 0x0001:
            self.alarm_threshold_w = value
        elif reg == 0x0002:
            if not 0x01 <= value <= 0xF7:
                return _exception(addr, 0x06, ILLEGAL_DATA)
            self.address = value
        else:
            return _exception(addr, 0x06, ILLEGAL_ADDRESS)
        return frame  # the reply echoes the request


def _exception(addr, fn, code):
    return with_crc(bytes((addr, fn | 0x80, code)))


def _words(regs):
    return struct.pack(">%dH" % len(regs), *regs)


def read_request(address=0x01, start=0, count=10):
    """The 0x04 request a driver sends (handy for tests and the panel)."""
    return with_crc(bytes((address, 0x04, start >> 8, start & 0xFF, count >> 8, count & 0xFF)))
