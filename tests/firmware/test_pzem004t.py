import struct

from meter.drivers.modbus import with_crc
from meter.drivers.pzem004t import Pzem004t, SensorError
from meter.drivers.reading import CRC, FRAME, REPLY, TIMEOUT
from meter.log import Logger, DEBUG
from support import FakeUART, raises

READ_1 = bytes((0x01, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x70, 0x0D))


def reply(address=0x01, voltage=2301, current=4567, power=10503, energy=123456, freq=500,
          pf=95, alarm=0):
    # Registers big-endian; 32-bit values low word first, as the module sends them.
    regs = (voltage, current & 0xFFFF, current >> 16, power & 0xFFFF, power >> 16,
            energy & 0xFFFF, energy >> 16, freq, pf, alarm)
    return with_crc(bytes((address, 0x04, 20)) + struct.pack(">10H", *regs))


def test_read_request_bytes_for_address_1():
    uart = FakeUART([reply()])
    Pzem004t(uart, address=1).read()
    assert uart.written == [READ_1]


def test_default_address_is_the_general_one():
    uart = FakeUART([reply(address=0x07)])
    sensor = Pzem004t(uart)
    assert sensor.read().energy == 123456
    assert uart.written == [with_crc(b"\xf8\x04\x00\x00\x00\x0a")]


def test_good_reply_decodes_every_register():
    sensor = Pzem004t(FakeUART([reply(alarm=0xFFFF)]), address=1)
    r = sensor.read()
    assert r.voltage_dv == 2301
    assert r.current_ma == 4567
    assert r.power_dw == 10503
    assert r.energy == 123456
    assert r.frequency_dhz == 500
    assert r.pf_pct == 95
    assert r.alarm is True
    assert sensor.reads_ok == 1
    assert Pzem004t.counts_per_kwh == 1000


def test_32_bit_values_take_the_low_word_first():
    r = Pzem004t(FakeUART([reply(current=0x00012345, power=0x00020001, energy=0x0003FFFF)]),
                 address=1).read()
    assert r.current_ma == 0x00012345
    assert r.power_dw == 0x00020001
    assert r.energy == 0x0003FFFF
    assert r.alarm is False


def test_reply_from_another_address_is_not_ours():
    uart = FakeUART([reply(address=2)] * 3)
    sensor = Pzem004t(uart, address=1)
    raises(SensorError, sensor.read)
    assert sensor.reads_ok == 0
    assert len(uart.written) == 3


def test_exception_reply_raises_at_once_without_retrying():
    uart = FakeUART([with_crc(b"\x01\x84\x02"), reply()])
    sensor = Pzem004t(uart, address=1, retries=5)
    exc = raises(SensorError, sensor.read)
    assert exc.reason == REPLY
    assert exc.code == 2
    assert exc.function == 0x04
    assert isinstance(exc, SensorError)
    assert len(uart.written) == 1
    assert sensor.reply_errors == 1


def test_crc_error_then_success_is_retried():
    bad = bytearray(reply())
    bad[10] ^= 0xFF
    uart = FakeUART([bytes(bad), reply()])
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().voltage_dv == 2301
    assert uart.written == [READ_1, READ_1]
    assert sensor.crc_errors == 1
    assert sensor.reads_ok == 1


def test_silent_module_raises_timeout_after_one_plus_retries_writes():
    for retries in (0, 1, 2, 4):
        uart = FakeUART([None] * 10)
        sensor = Pzem004t(uart, address=1, retries=retries)
        assert raises(SensorError, sensor.read).reason == TIMEOUT
        assert len(uart.written) == 1 + retries
        assert sensor.timeouts == 1 + retries
        assert sensor.reads_ok == 0


def test_empty_bytes_count_as_silence():
    sensor = Pzem004t(FakeUART([b""] * 3), address=1)
    assert raises(SensorError, sensor.read).reason == TIMEOUT
def test_short_frame_is_retried_and_then_reported():
    uart = FakeUART([reply()[:20]] * 3)
    sensor = Pzem004t(uart, address=1)
    exc = raises(SensorError, sensor.read)
    assert exc.reason == FRAME
    assert "short" in str(exc)
    assert sensor.short_frames == 3
    assert len(uart.written) == 3


def test_short_frame_then_good_frame():
    uart = FakeUART([reply()[:3], reply()])
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().energy == 123456
    assert sensor.short_frames == 1


def test_last_error_is_the_one_raised():
    bad = bytearray(reply())
    bad[-1] ^= 0x55
    uart = FakeUART([None, None, bytes(bad)])
    assert raises(SensorError, Pzem004t(uart, address=1).read).reason == CRC
def test_garbage_before_a_frame_is_skipped():
    uart = FakeUART([b"\x00\xff\x13" + reply()])
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().power_dw == 10503
    assert len(uart.written) == 1


def test_garbage_that_looks_like_a_header_is_skipped_too():
    uart = FakeUART([b"\x01\x04\x99" + reply()])
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().voltage_dv == 2301
    assert len(uart.written) == 1


def test_pure_garbage_is_an_error_not_a_reading():
    uart = FakeUART([bytes(range(100, 125))] * 3)
    sensor = Pzem004t(uart, address=1)
    raises(SensorError, sensor.read)
    assert sensor.reads_ok == 0


def test_wrong_byte_count_with_a_good_crc_is_rejected():
    frame = with_crc(b"\x01\x04\x12" + bytes(20))
    sensor = Pzem004t(FakeUART([frame] * 3), address=1)
    assert raises(SensorError, sensor.read).reason == FRAME
def test_stale_bytes_are_flushed_before_asking():
    uart = FakeUART([reply(voltage=2400)])
    uart._rx = reply(voltage=1111)  # a late answer to an earlier request
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().voltage_dv == 2400
    assert sensor.stale_bytes == 25


def test_late_reply_from_a_timed_out_attempt_does_not_poison_the_next():
    # The first answer arrives just after the read gave up; the retry flushes it first.
    uart = FakeUART([None, reply(voltage=2222)])
    sensor = Pzem004t(uart, address=1)
    original_read = uart.read

    def read_then_late(n=-1):
        data = original_read(n)
        if data is None and len(uart.written) == 1:
            uart._rx += reply(voltage=1111)[:7]
        return data
    uart.read = read_then_late
    assert sensor.read().voltage_dv == 2222
    assert len(uart.written) == 2
    assert sensor.timeouts == 1
    assert sensor.stale_bytes == 7


def test_reset_energy_sends_0x42_and_checks_the_echo():
    request = with_crc(b"\x01\x42")
    uart = FakeUART([request])
    Pzem004t(uart, address=1).reset_energy()
    assert uart.written == [b"\x01\x42\x80\x11"]
    assert request == b"\x01\x42\x80\x11"


def test_reset_energy_refused():
    uart = FakeUART([with_crc(b"\x01\xc2\x04")])
    exc = raises(SensorError, Pzem004t(uart, address=1).reset_energy)
    assert exc.reason == REPLY
    assert exc.code == 4
    assert len(uart.written) == 1


def test_reset_energy_without_echo_fails():
    uart = FakeUART([None, None, None])
    assert raises(SensorError, Pzem004t(uart, address=1).reset_energy).reason == TIMEOUT
def test_alarm_threshold_read_through_holding_register():
    uart = FakeUART([with_crc(b"\x01\x03\x02\x08\xfc")])
    assert Pzem004t(uart, address=1).read_alarm_threshold() == 2300
    assert uart.written == [with_crc(b"\x01\x03\x00\x01\x00\x01")]


def test_set_address_writes_register_2_and_uses_the_new_address():
    uart = FakeUART([with_crc(b"\x01\x06\x00\x02\x00\x05"), reply(address=5)])
    sensor = Pzem004t(uart, address=1)
    sensor.set_address(5)
    assert uart.written[0] == with_crc(b"\x01\x06\x00\x02\x00\x05")
    assert sensor.read().voltage_dv == 2301
    assert uart.written[1] == with_crc(b"\x05\x04\x00\x00\x00\x0a")


def test_set_address_rejects_bad_values():
    sensor = Pzem004t(FakeUART(), address=1)
    raises(ValueError, sensor.set_address, 0)
    raises(ValueError, sensor.set_address, 0xF8)
    raises(ValueError, sensor.set_address, True)


def test_constructor_rejects_bad_arguments():
    raises(ValueError, Pzem004t, FakeUART(), address=0)
    raises(ValueError, Pzem004t, FakeUART(), address=0x100)
    raises(ValueError, Pzem004t, FakeUART(), address=True)
    raises(ValueError, Pzem004t, FakeUART(), retries=-1)


def test_failures_are_logged():
    lines = []
    sensor = Pzem004t(FakeUART([None] * 2), address=1, retries=1,
                      log=Logger("m", DEBUG, lines.append))
    assert raises(SensorError, sensor.read).reason == TIMEOUT
    assert len(lines) == 3
    assert lines[-1].startswith("WARN m: no reading after 2 attempts")


def test_errors_are_the_one_class_of_reading_with_a_reason():
    from meter.drivers import reading
    assert SensorError is reading.SensorError
    exc = SensorError(TIMEOUT, "no reply")
    assert (exc.reason, str(exc)) == (TIMEOUT, "timeout: no reply")
    refused = SensorError(REPLY, function=4, code=2)
    assert str(refused) == "reply: function 0x04 refused, exception code 2"


def test_exception_reply_with_a_bad_crc_is_a_glitch_and_retried():
    bad = bytearray(with_crc(b"\x01\x84\x01"))
    bad[2] = 0x03
    uart = FakeUART([bytes(bad), reply()])
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().energy == 123456
    assert sensor.crc_errors == 1 and sensor.reply_errors == 0


def test_trailing_bytes_after_a_good_frame_are_dropped_before_the_next_request():
    uart = FakeUART([reply(voltage=2300) + b"\x55\xaa", reply(voltage=2310)])
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().voltage_dv == 2300
    assert sensor.read().voltage_dv == 2310
    assert sensor.stale_bytes == 2


def test_a_doubled_reply_is_read_once_and_the_copy_flushed():
    uart = FakeUART([reply(energy=10) + reply(energy=10), reply(energy=11)])
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().energy == 10
    assert sensor.read().energy == 11


class TimeoutCountingUART(FakeUART):
    """A UART that, like MicroPython's, waits out its whole timeout on read() without a size;
    it counts those waits."""

    def __init__(self, replies=None):
        FakeUART.__init__(self, replies)
        self.waits = 0

    def read(self, n=-1):
        if n is None or n < 0:
            self.waits += 1
        return FakeUART.read(self, n)


def test_flushing_stale_bytes_never_waits_for_the_uart_timeout():
    uart = TimeoutCountingUART([reply(voltage=2400)])
    uart._rx = reply(voltage=1111)[:9]
    sensor = Pzem004t(uart, address=1)
    assert sensor.read().voltage_dv == 2400
    assert sensor.stale_bytes == 9
    assert uart.waits == 0


def test_a_module_that_stays_silent_is_asked_once_a_read_until_it_answers():
    # No mains on the module: 1 + retries timeouts on every read would stall each tick for
    # three UART timeouts for as long as the outage lasts.
    lines = []
    uart = FakeUART([None] * 3 + [None] * 5 + [reply(voltage=2300)] + [None] * 3)
    sensor = Pzem004t(uart, address=1, retries=2, log=Logger("m", sink=lines.append))
    assert raises(SensorError, sensor.read).reason == TIMEOUT
    assert len(uart.written) == 3 and sensor.silent
    for n in range(5):
        assert raises(SensorError, sensor.read).reason == TIMEOUT
        assert len(uart.written) == 4 + n
    assert len(lines) == 1  # the outage is logged once
    assert sensor.read().voltage_dv == 2300 and not sensor.silent
    assert raises(SensorError, sensor.read).reason == TIMEOUT  # the full retries again
    assert len(uart.written) == 9 + 3


def bad_crc():
    frame = bytearray(reply())
    frame[-1] ^= 0xFF
    return bytes(frame)


def test_crc_errors_are_always_retried_in_full():
    uart = FakeUART([None] * 3 + [bad_crc()] * 3 + [bad_crc()] * 3)
    sensor = Pzem004t(uart, address=1, retries=2)
    assert raises(SensorError, sensor.read).reason == TIMEOUT
    assert raises(SensorError, sensor.read).reason == CRC  # answered, if garbled: no outage
    assert len(uart.written) == 1 + 3 and not sensor.silent
    assert raises(SensorError, sensor.read).reason == CRC
    assert len(uart.written) == 4 + 3
