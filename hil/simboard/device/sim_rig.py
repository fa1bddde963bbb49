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
