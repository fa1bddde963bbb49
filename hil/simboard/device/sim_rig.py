# What the simulated rig's test host can change, reachable from the board's REPL (the reference
# rig does the same from the host, through the PZEM emulator on its USB-UART).
import board_context

_channel = [None]


def _board():
    return board_context.current()


def attach(channel):
    _channel[0] = channel


def _report(*words):
    if _channel[0] is not None:
        _channel[0].send("rig", *words)


def set_load(watts):
    """The household draws `watts` whenever the relay is closed."""
    _board().world.set_extra_load(int(watts))
    _report("load", int(watts))


def sensor_fault(kind=None):
    """Every PZEM request suffers `kind` ("timeout", "crc", "garbage", ...); None heals it."""
    pzem = _board().pzem
    pzem.fault_rates = {}
    if kind:
        pzem.set_fault_rate(kind, 1000000)
    _report("fault", kind or "-")


def restore(load_w, fault):
    _board().world.set_extra_load(int(load_w))
    if fault and fault != "-":
        _board().pzem.set_fault_rate(fault, 1000000)


def relay_closed():
    """Whether the simulated load sees its relay closed (what the rig's host measures)."""
    return _board().world.relay_closed


def energy_mwh():
    """The true energy that went through the meter since this board process started."""
    return _board().world.energy_mwh()


def lcd_lines():
    """The two lines the LCD shows (the HD44780 on the simulated I2C bus), as a person reads it."""
    return [line.rstrip() for line in _board().lcd.lines()]


def _echo(digits):
    return " ".join(digits[i:i + 3] for i in range(0, len(digits), 3))


def _took(key, typed):
    """Whether the LCD shows `key` taken after `typed`: a digit echoed, any other key no
    longer showing the digits typed before it."""
    lines = lcd_lines()
    if key in "0123456789":
        return lines == ["TOKEN", _echo(typed + key)]
    return lines != ["TOKEN", _echo(typed)]


async def type_keys(keys, hold_ms=150, gap_ms=60, tries=5):
    """A finger on the keypad matrix, run beside the firmware's own keypad task
    (meter.token_entry.TokenEntry.run): each key held for hold_ms, then a look at the LCD.
    A key the LCD does not show was never reported (once released, no poll can see it), so
    it is pressed again, as a person would, up to `tries` times; then this raises."""
    import asyncio
    board = _board()
    typed = ""
    again = 0
    for k in keys:
        for _ in range(tries):
            board.keypad.press(k, board.clock.now_ms(), hold_ms)
            await asyncio.sleep_ms(hold_ms + gap_ms)
            if _took(k, typed):
                break
            again += 1
        else:
            raise RuntimeError("key %s not taken: LCD %r" % (k, lcd_lines()))
        typed = typed + k if k in "0123456789" else ""
    _report("keys", len(keys), "pressed again", again)
