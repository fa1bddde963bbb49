# PZEM-004T v3.0 energy sensor over Modbus RTU on a UART the board has opened (9600 8N1).
from micropython import const

from meter.drivers.modbus import crc16, with_crc
# The error classes live with Reading so the app can catch them without loading this driver
# on an S0 meter; they are importable from here too.
from meter.drivers.reading import CRC, FRAME, REPLY, TIMEOUT, Reading, SensorError

_READ_INPUT = const(0x04)
_READ_HOLDING = const(0x03)
_WRITE_SINGLE = const(0x06)
_RESET_ENERGY = const(0x42)
_ERROR_FLAG = const(0x80)
_GENERAL_ADDRESS = const(0xF8)
_MEASURE_LEN = const(25)  # address, function, byte count 20, ten registers, CRC
_ERROR_LEN = const(5)  # address, function | 0x80, exception code, CRC
_REG_ALARM_THRESHOLD = const(0x0001)
_REG_ADDRESS = const(0x0002)
_FLUSH_LIMIT = const(64)  # reads of stale bytes before giving up on draining the RX buffer


class Pzem004t:
    counts_per_kwh = 1000  # the energy register counts whole Wh

    def __init__(self, uart, address=_GENERAL_ADDRESS, retries=2, log=None):
        if type(address) is not int or not 0x01 <= address <= _GENERAL_ADDRESS:
            raise ValueError("PZEM address must be 0x01-0xF8")
        if type(retries) is not int or retries < 0:
            raise ValueError("retries must be a non-negative int")
        self._uart = uart
        self.address = address
        self.retries = retries
        self._log = log
        self._read_request = with_crc(bytes((address, _READ_INPUT, 0, 0, 0, 10)))
        self.reads_ok = 0
        self.timeouts = 0
        self.crc_errors = 0
        self.short_frames = 0
        self.reply_errors = 0
        self.stale_bytes = 0
        # The last request got no answer at all, retries included: no mains on the module,
        # most likely for a while. Until it answers again each read tries once, so an outage
        # stalls the tick for one UART timeout rather than 1 + retries of them.
        self.silent = False

    def read(self):
        """One measurement, or a SensorError; never a made-up zero reading."""
        frame = self._transact(self._read_request, _READ_INPUT, _MEASURE_LEN, 20)
        reg = _register
        reading = Reading(
            energy=reg(frame, 5) | (reg(frame, 6) << 16),
            power_dw=reg(frame, 3) | (reg(frame, 4) << 16),
            voltage_dv=reg(frame, 0),
            current_ma=reg(frame, 1) | (reg(frame, 2) << 16),
            frequency_dhz=reg(frame, 7),
            pf_pct=reg(frame, 8),
            alarm=reg(frame, 9) != 0,
        )
        self.reads_ok += 1
        return reading

    def reset_energy(self):
        """Zero the module's energy counter; the module echoes the request when done."""
        request = with_crc(bytes((self.address, _RESET_ENERGY)))
        self._transact(request, _RESET_ENERGY, len(request), -1)

    def read_alarm_threshold(self):
        """The power alarm threshold in whole W."""
        return self._read_holding(_REG_ALARM_THRESHOLD)

    def set_alarm_threshold(self, watts):
        if type(watts) is not int or not 0 <= watts <= 0xFFFF:
            raise ValueError("threshold must be an int 0-65535 W")
        self._write_single(_REG_ALARM_THRESHOLD, watts)

    def set_address(self, new_address):
        """Give the module a new slave address (kept in its flash); later requests use it."""
        if type(new_address) is not int or not 0x01 <= new_address <= 0xF7:
            raise ValueError("a slave address is 0x01-0xF7")
        self._write_single(_REG_ADDRESS, new_address)
        self.address = new_address
        self._read_request = with_crc(bytes((new_address, _READ_INPUT, 0, 0, 0, 10)))

    def _read_holding(self, register):
        request = with_crc(bytes((self.address, _READ_HOLDING, register >> 8, register & 0xFF,
                                  0, 1)))
        frame = self._transact(request, _READ_HOLDING, 7, 2)
        return _register(frame, 0)

    def _write_single(self, register, value):
        request = with_crc(bytes((self.address, _WRITE_SINGLE, register >> 8, register & 0xFF,
                                  value >> 8, value & 0xFF)))
        frame = self._transact(request, _WRITE_SINGLE, len(request), -1)
        if frame[2:6] != request[2:6]:
            raise SensorError(FRAME, "write of register 0x%04x not echoed" % register)

    def _transact(self, request, function, length, byte_count):
        """Send request and return the reply frame, retrying what a retry can fix.

        byte_count is the reply's third byte for reads, or -1 for replies that echo the request.
        A Modbus exception is an answer, not a glitch: it is raised at once, not retried.
        """
        error = None
        attempts = 1 if self.silent else 1 + self.retries
        silent = True  # every attempt timed out
        for attempt in range(attempts):
            self._flush()
            self._uart.write(request)
            try:
                frame = self._receive(function, length, byte_count)
                self.silent = False
                return frame
            except SensorError as exc:
                if exc.reason == REPLY:
                    self.silent = False
                    self.reply_errors += 1
                    self._warn("%s", exc)
                    raise
                if exc.reason == TIMEOUT:
                    self.timeouts += 1
                else:
                    silent = False
                    if exc.reason == CRC:
                        self.crc_errors += 1
                    else:
                        self.short_frames += 1
                error = exc
            self._debug("attempt %d: %s", attempt + 1, error)
        if not (silent and self.silent):  # an outage is told once, not every second
            self._warn("no reading after %d attempts: %s", attempts, error)
        self.silent = silent
        raise error  # type: ignore  # the loop ran at least once, so error is set

    def _flush(self):
        # Bytes waiting before we ask are late answers to an earlier request (or line noise);
        # left in place they would be taken for the start of the next reply.
        uart = self._uart
        for _ in range(_FLUSH_LIMIT):
            n = uart.any()
            if not n:
                return
            # Exactly what is waiting: a UART read() without a size on MicroPython goes on
            # reading until its timeout, which would stall the tick for nothing.
            stale = uart.read(n)
            if stale:
                self.stale_bytes += len(stale)

    def _receive(self, function, length, byte_count):
        buf = self._uart.read(length)
        if not buf:
            raise SensorError(TIMEOUT, "no reply from the sensor at 0x%02x" % self.address)
        start = self._frame_start(buf, function, 0)
        if start < 0:
            if len(buf) < _ERROR_LEN:
                raise SensorError(FRAME, "%d stray bytes, no frame" % len(buf))
            raise SensorError(CRC, "%d bytes with no frame header" % len(buf))
        first_error = None
        while start >= 0:
            # Noise before the frame pushed its tail past the `length` bytes read so far; the
            # rest is still in the RX buffer.
            need = start + (_ERROR_LEN if buf[start + 1] & _ERROR_FLAG else length)
            if len(buf) < need:
                more = self._uart.read(need - len(buf))
                if more:
                    buf = buf + more
            try:
                return self._frame_at(buf, start, function, length, byte_count)
            except SensorError as exc:
                if exc.reason not in (CRC, FRAME):
                    raise
                # Noise can look like a header too; the real frame may start further on.
                if first_error is None:
                    first_error = exc
            start = self._frame_start(buf, function, start + 1)
        raise first_error  # type: ignore  # the loop ran at least once

    def _frame_at(self, buf, start, function, length, byte_count):
        if buf[start + 1] == function | _ERROR_FLAG:
            length = _ERROR_LEN
        if len(buf) - start < length:
            raise SensorError(FRAME, "short reply: %d of %d bytes" % (len(buf) - start, length))
        frame = buf[start:start + length]
        if crc16(frame) != 0:
            raise SensorError(CRC, "bad CRC")
        if length == _ERROR_LEN and frame[1] & _ERROR_FLAG:
            raise SensorError(REPLY, function=function, code=frame[2])
        if byte_count >= 0 and frame[2] != byte_count:
            raise SensorError(FRAME, "byte count %d, expected %d" % (frame[2], byte_count))
        return frame

    def _frame_start(self, buf, function, offset):
        # The module answering the general address 0xF8 replies with its own address, so any
        # slave address is accepted then; otherwise only ours.
        general = self.address == _GENERAL_ADDRESS
        for i in range(offset, len(buf) - 1):
            addr = buf[i]
            if (addr == self.address or (general and 0x01 <= addr <= _GENERAL_ADDRESS)) and (
                    buf[i + 1] == function or buf[i + 1] == function | _ERROR_FLAG):
                return i
        return -1

    def _debug(self, msg, *args):
        if self._log is not None:
            self._log.debug(msg, *args)

    def _warn(self, msg, *args):
        if self._log is not None:
            self._log.warn(msg, *args)


def _register(frame, index):
    # Input register `index` of a read reply: big-endian, after address, function, byte count.
    i = 3 + 2 * index
    return (frame[i] << 8) | frame[i + 1]
