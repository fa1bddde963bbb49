"""Device models: PZEM-004T bytes on the wire, HD44780 decoding, S0 pulses, torn flash writes,
keypad/cover/buzzer."""
import os

import pytest

from simulator.clock import VirtualClock
from simulator.devices import flash as flash_mod
from simulator.devices.flash import FlashError, FlashFolder, PowerLost
from simulator.devices.hd44780 import Hd44780
from simulator.devices.keypad import Buzzer, CoverSwitch, Keypad
from simulator.devices.pzem import Pzem004t, crc16_modbus, crc_ok, read_request, with_crc
from simulator.devices.s0 import S0Output
from simulator.world import SteadyLoad, World

READ_ALL = bytes.fromhex("01 04 00 00 00 0A 70 0D")


def make_world(watts=1000):
    clock = VirtualClock()
    return clock, World(clock, SteadyLoad(watts, pf_centi=90), seed=3)


def decode(reply):
    regs = [int.from_bytes(reply[3 + 2 * i:5 + 2 * i], "big") for i in range(10)]
    return {
        "voltage_dv": regs[0], "current_ma": regs[1] | regs[2] << 16,
        "power_dw": regs[3] | regs[4] << 16, "energy_wh": regs[5] | regs[6] << 16,
        "frequency_dhz": regs[7], "pf": regs[8], "alarm": regs[9],
    }


# --- PZEM-004T ------------------------------------------------------------------------------

def test_crc_matches_the_reference_request():
    assert read_request() == READ_ALL
    assert crc16_modbus(READ_ALL[:6]) == 0x0D70
    assert crc_ok(READ_ALL) and not crc_ok(READ_ALL[:-1] + b"\x0E")


def test_read_reply_is_25_bytes_and_decodes_to_the_world():
    clock, world = make_world(1000)
    pzem = Pzem004t(world)
    clock.advance(2 * 3600 * 1000 + 1800 * 1000)  # 2.5 h at 1 kW
    reply = pzem.handle(READ_ALL)
    assert len(reply) == 25
    assert reply[:3] == b"\x01\x04\x14" and crc_ok(reply)
    on, dv, ma, dw, mwh, dhz, pf = world.sensor_reading()
    fields = decode(reply)
    assert fields == {"voltage_dv": dv, "current_ma": ma, "power_dw": 10000, "energy_wh": 2500,
                      "frequency_dhz": dhz, "pf": 90, "alarm": 0}
    assert 2300 <= dv <= 2500 and 495 <= dhz <= 505
    # P = V * I * pf, to within the current register's 1 mA step
    assert abs(dv * ma * 90 / 1000000 - 1000) < 0.5


def test_energy_counter_truncates_to_whole_wh():
    clock, world = make_world(1000)
    pzem = Pzem004t(world)
    clock.advance(3599)  # 0.99972 Wh
    assert decode(pzem.handle(READ_ALL))["energy_wh"] == 0
    clock.advance(1)
    assert decode(pzem.handle(READ_ALL))["energy_wh"] == 1


def test_general_address_answers_other_addresses_are_silent():
    _, world = make_world()
    pzem = Pzem004t(world, address=0x05)
    assert pzem.handle(READ_ALL) is None
    reply = pzem.handle(read_request(0xF8))
    assert reply[0] == 0xF8 and len(reply) == 25 and crc_ok(reply)
    assert len(pzem.handle(read_request(0x05))) == 25


def test_garbage_and_bad_crc_requests_get_no_reply():
    _, world = make_world()
    pzem = Pzem004t(world)
    assert pzem.handle(READ_ALL[:-1] + b"\x00") is None
    assert pzem.handle(b"\xff\x00\x13") is None
    assert pzem.handle(b"") is None
    assert pzem.handle(READ_ALL + b"\x00") is None  # two frames glued together


def test_exception_replies():
    _, world = make_world()
    pzem = Pzem004t(world)
    assert pzem.handle(with_crc(b"\x01\x10\x00\x01\x00\x01")) == with_crc(b"\x01\x90\x01")
    assert pzem.handle(read_request(1, 5, 6)) == with_crc(b"\x01\x84\x02")
    assert pzem.handle(read_request(1, 0, 0)) == with_crc(b"\x01\x84\x02")
    assert pzem.handle(with_crc(b"\x01\x03\x00\x00\x00\x01")) == with_crc(b"\x01\x83\x02")
    assert pzem.handle(with_crc(b"\x01\x06\x00\x09\x00\x01")) == with_crc(b"\x01\x86\x02")
    assert pzem.handle(with_crc(b"\x01\x06\x00\x02\x00\xF8")) == with_crc(b"\x01\x86\x03")


def test_partial_read_of_input_registers():
    clock, world = make_world(1000)
    pzem = Pzem004t(world)
    reply = pzem.handle(read_request(1, 3, 2))  # power, low word then high word
    assert reply == with_crc(b"\x01\x04\x04\x27\x10\x00\x00")


def test_holding_registers_alarm_threshold_and_address():
    _, world = make_world(1000)
    pzem = Pzem004t(world)
    assert pzem.handle(with_crc(b"\x01\x03\x00\x01\x00\x02")) == \
        with_crc(b"\x01\x03\x04\x59\xD8\x00\x01")
    write = with_crc(b"\x01\x06\x00\x01\x01\xF4")  # alarm at 500 W
    assert pzem.handle(write) == write
    assert decode(pzem.handle(READ_ALL))["alarm"] == 0xFFFF
    move = with_crc(b"\x01\x06\x00\x02\x00\x07")
    assert pzem.handle(move) == move  # answered from the old address
    assert pzem.handle(READ_ALL) is None
    assert pzem.handle(read_request(7))[0] == 7


def test_broadcast_acts_without_replying():
    _, world = make_world()
    pzem = Pzem004t(world)
    assert pzem.handle(with_crc(b"\x00\x06\x00\x01\x00\x64")) is None
    assert pzem.alarm_threshold_w == 100


def test_reset_energy_echoes_and_zeroes_the_counter():
    clock, world = make_world(1000)
    pzem = Pzem004t(world)
    clock.advance(3600 * 1000)
    assert decode(pzem.handle(READ_ALL))["energy_wh"] == 1000
    reset = with_crc(b"\x01\x42")
    assert reset == b"\x01\x42\x80\x11"
    assert pzem.handle(reset) == reset
    assert decode(pzem.handle(READ_ALL))["energy_wh"] == 0
    clock.advance(36 * 1000)
    assert decode(pzem.handle(READ_ALL))["energy_wh"] == 10
    assert world.energy_wh() == 1010  # the world's truth is untouched


def test_silent_with_the_mains_off():
    clock, world = make_world()
    pzem = Pzem004t(world)
    world.cut_power()
    assert pzem.handle(READ_ALL) is None
    assert pzem.handle(with_crc(b"\x01\x42")) is None
    world.restore_power()
    assert len(pzem.handle(READ_ALL)) == 25


def test_injected_faults_one_by_one():
    clock, world = make_world(1000)
    pzem = Pzem004t(world, seed=9)
    clock.advance(3600 * 1000)
    for kind in ("crc", "timeout", "short", "garbage"):
        pzem.inject(kind)
    bad_crc = pzem.handle(READ_ALL)
    assert len(bad_crc) == 25 and not crc_ok(bad_crc)
    assert pzem.handle(READ_ALL) is None
    short = pzem.handle(READ_ALL)
    assert 1 <= len(short) < 25
    garbage = pzem.handle(READ_ALL)
    assert garbage is not None and not (len(garbage) == 25 and crc_ok(garbage))
    assert decode(pzem.handle(READ_ALL))["energy_wh"] == 1000  # healthy again
    pzem.inject("restart")
    assert decode(pzem.handle(READ_ALL))["energy_wh"] == 0
    assert pzem.faults_applied == {"crc": 1, "timeout": 1, "short": 1, "garbage": 1, "restart": 1}
    with pytest.raises(ValueError):
        pzem.inject("melted")


def test_fault_rates_are_seeded_and_reproducible():
    def run(seed):
        clock, world = make_world()
        pzem = Pzem004t(world, seed=seed)
        pzem.set_fault_rate("crc", 100000)
        pzem.set_fault_rate("timeout", 100000)
        return [pzem.handle(READ_ALL) for _ in range(500)]

    a, b, c = run(4), run(4), run(5)
    assert a == b and a != c
    timeouts = sum(1 for r in a if r is None)
    crc_bad = sum(1 for r in a if r is not None and not crc_ok(r))
    assert 20 < timeouts < 90 and 20 < crc_bad < 90


def test_counter_wraps_at_the_end_of_its_range():
    clock, world = make_world(23000)
    pzem = Pzem004t(world)
    hours_to_wrap = 10000000 // 23000 + 1  # 23 kW for 435 h is past 9999.99 kWh
    clock.advance(hours_to_wrap * 3600 * 1000)
    assert decode(pzem.handle(READ_ALL))["energy_wh"] == 23000 * hours_to_wrap - 10000000


# --- HD44780 behind a PCF8574 -----------------------------------------------------------------

BL, E, RS = 0x08, 0x04, 0x01


def nibble(n, rs=0):
    # One nibble as the backpack sees it: data high, E up, then E down to latch it.
    return bytes([(n << 4) | BL | rs | E, (n << 4) | BL | rs])


def byte(b, rs=0):
    return nibble(b >> 4, rs) + nibble(b & 0x0F, rs)


def text(s):
    return b"".join(byte(ord(c), RS) for c in s)


def test_init_and_two_lines_of_text():
    lcd = Hd44780()
    stream = bytes([BL])  # backlight on, E low
    stream += nibble(0x3) + nibble(0x3) + nibble(0x3) + nibble(0x2)
    stream += byte(0x28) + byte(0x0C) + byte(0x01) + byte(0x06)
    stream += text("KES 50.00") + byte(0xC0) + text("Relay ON  0.98kW")
    for i in range(0, len(stream), 7):  # arrives in several I2C transactions
        lcd.i2c_write(stream[i:i + 7])
    assert lcd.four_bit and lcd.two_lines and lcd.display_on and not lcd.cursor_on
    assert lcd.lines() == ("KES 50.00       ", "Relay ON  0.98kW")
    assert lcd.backlight
    assert lcd.commands[:4] == [0x30, 0x30, 0x30, 0x20]


def test_backlight_off_display_off_and_clear():
    lcd = Hd44780()
    lcd.i2c_write(nibble(0x3) * 3 + nibble(0x2) + byte(0x28) + byte(0x0C) + text("hello"))
    lcd.i2c_write(b"\x00")
    assert not lcd.backlight and lcd.lines()[0].startswith("hello")
    lcd.i2c_write(byte(0x08))
    assert lcd.lines() == (" " * 16, " " * 16)
    lcd.i2c_write(byte(0x0C) + byte(0x01) + text("x"))
    assert lcd.lines()[0] == "x" + " " * 15


def test_nibbles_without_an_enable_strobe_are_ignored():
    lcd = Hd44780()
    lcd.i2c_write(nibble(0x3) * 3 + nibble(0x2) + byte(0x28) + byte(0x0C) + byte(0x01))
    lcd.i2c_write(bytes([0x48 | RS, 0x18 | RS, 0xF8, 0x00, 0x08]))  # E never high
    assert lcd.lines()[0] == " " * 16


def test_cursor_address_and_custom_glyphs():
    lcd = Hd44780()
    lcd.i2c_write(nibble(0x3) * 3 + nibble(0x2) + byte(0x28) + byte(0x0C))
    lcd.i2c_write(byte(0x40) + b"".join(byte(0x1F, RS) for _ in range(8)))  # glyph 0
    lcd.i2c_write(byte(0x80 | 14) + text("ok") + byte(0x80 | 0x40) + byte(0x00, RS))
    assert lcd.lines()[0].endswith("ok")
    assert lcd.lines()[1][0] == "#"
    assert lcd.cgram[:8] == bytes([0x1F] * 8)


# --- S0 ---------------------------------------------------------------------------------------

def test_s0_pulses_match_energy():
    clock, world = make_world(1000)
    s0 = S0Output(world, impulses_per_kwh=1000)
    assert s0.next_pulse_ms() == 3600  # 1 Wh at 1 kW
    clock.advance(3600 * 1000 - 1)
    assert s0.pulses_due() == 999
    clock.advance(1)
    assert s0.pulses_due() == 1000
    for _ in range(1000):
        s0.take_pulse(clock.now_ms())
    assert s0.pulses_due() == 0 and s0.next_pulse_ms() == clock.now_ms() + 3600
    assert s0.level(clock.now_ms()) == 0 and s0.level(clock.now_ms() + 30) == 1


def test_s0_constant_3200_and_no_power():
    clock, world = make_world(2000)
    s0 = S0Output(world, impulses_per_kwh=3200)
    clock.advance(45 * 60 * 1000)  # 1.5 kWh
    assert s0.pulses_due() == 4800
    assert s0.energy_wh_from_pulses(4800) == 1500
    world.set_relay(False)
    s0.delivered = 4800
    assert s0.next_pulse_ms() is None
    with pytest.raises(ValueError):
        S0Output(world, impulses_per_kwh=0)


# --- flash with torn writes -------------------------------------------------------------------

def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("mode,expected", [
    ("truncate", b"NEW-ST"),
    ("mixed", b"NEW-STate-0001-old"),
    ("keep_old", b"old-state-0001-old"),
])
def test_power_cut_after_k_bytes_of_the_next_write(tmp_path, mode, expected):
    flash = FlashFolder(str(tmp_path / "flash"), mode=mode)
    slot = flash.path("slot0")
    write(slot, b"old-state-0001-old")
    cuts = []
    flash.arm_power_cut(6, on_cut=lambda: cuts.append(1))
    with pytest.raises(PowerLost):
        write(slot, b"NEW-STATE-0002-new")
    assert read(slot) == expected
    assert cuts == [1] and flash.cuts == 1 and flash.last_torn == ("slot0", 6)
    write(slot, b"after")  # the hook is gone after the cut
    assert read(slot) == b"after"


def test_cut_counts_bytes_across_writes_and_files(tmp_path):
    flash = FlashFolder(str(tmp_path / "f"))
    flash.arm_power_cut(10)
    write(flash.path("a"), b"12345678")  # 8 bytes fit
    with pytest.raises(PowerLost):
        with open(flash.path("b.tmp"), "wb") as f:
            f.write(b"abc")
            f.write(b"def")
    assert read(flash.path("a")) == b"12345678"
    assert read(flash.path("b.tmp")) == b"ab"


def test_new_file_cut_in_keep_old_mode_disappears(tmp_path):
    flash = FlashFolder(str(tmp_path / "f"), mode="keep_old")
    flash.arm_power_cut(3)
    with pytest.raises(PowerLost):
        write(flash.path("fresh"), b"0123456789")
    assert not os.path.exists(flash.path("fresh"))


def test_files_outside_the_root_and_reads_are_not_counted(tmp_path):
    flash = FlashFolder(str(tmp_path / "f"))
    write(flash.path("x"), b"x" * 50)
    flash.arm_power_cut(5)
    write(str(tmp_path / "elsewhere"), b"y" * 100)
    assert read(flash.path("x")) == b"x" * 50
    flash.disarm()
    write(flash.path("x"), b"z" * 50)
    assert read(flash.path("x")) == b"z" * 50
    assert flash_mod._real_open[0] is None  # open() is the builtin again


def test_tear_newest_after_the_fact(tmp_path):
    flash = FlashFolder(str(tmp_path / "f"))
    write(flash.path("state.0"), b"AAAAAAAAAA")
    write(flash.path("state.1"), b"BBBBBBBBBB")
    flash.checkpoint()
    write(flash.path("state.1"), b"CCCCCCCCCC")
    os.utime(flash.path("state.1"), (2e9, 2e9))
    assert flash.tear_newest(4, mode="mixed") == "state.1"
    assert read(flash.path("state.1")) == b"CCCCBBBBBB"
    flash.tear("state.1", 2, mode="truncate")
    assert read(flash.path("state.1")) == b"CC"
    assert flash.files()["state.0"] == b"AAAAAAAAAA"
    with pytest.raises(FlashError):
        flash.tear("missing", 1)
    with pytest.raises(FlashError):
        FlashFolder(str(tmp_path / "g"), mode="shredded")


def test_rename_pattern_survives_a_cut_in_the_temp_file(tmp_path):
    flash = FlashFolder(str(tmp_path / "f"))
    write(flash.path("state"), b"good")
    flash.arm_power_cut(2)
    with pytest.raises(PowerLost):
        write(flash.path("state.tmp"), b"better")
    assert read(flash.path("state")) == b"good"


# --- keypad, cover, buzzer --------------------------------------------------------------------

def test_keypad_matrix_levels():
    keypad = Keypad()
    keypad.press("5", now_ms=100, hold_ms=50)
    assert keypad.position("5") == (1, 1)
    assert keypad.column_level(1, [1, 0, 1, 1], 120) == 0  # row 1 driven low: key seen
    assert keypad.column_level(1, [0, 1, 1, 1], 120) == 1  # another row low: not this key
    assert keypad.column_level(0, [1, 0, 1, 1], 120) == 1
    assert keypad.column_level(1, [1, 0, 1, 1], 150) == 1  # released
    with pytest.raises(ValueError):
        keypad.press("Z", 0)


def test_cover_switch_and_buzzer():
    cover = CoverSwitch()
    seen = []
    cover.listeners.append(seen.append)
    assert cover.level() == 0
    cover.set_open(True)
    cover.set_open(True)
    cover.set_open(False)
    assert seen == [1, 0]
    buzzer = Buzzer()
    buzzer.drive(1, 10)
    buzzer.drive(1, 11)
    buzzer.drive(0, 60)
    assert buzzer.beeps == [[10, 60]] and not buzzer.on
