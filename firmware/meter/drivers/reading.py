# One measurement from an energy sensor, in the integer units every sensor driver reports, and
# the errors a sensor driver raises instead of a reading.


# Why a reading failed: SensorError.reason is one of these. One class with a reason rather than a
# class per reason: each exception class costs about 240 B of heap on a 32-bit MicroPython.
TIMEOUT = "timeout"  # no answer at all: on a PZEM this means no mains on its measuring side
CRC = "crc"  # an answer arrived, but corrupted
FRAME = "frame"  # an answer arrived, too short or not shaped like the reply asked for
REPLY = "reply"  # the sensor answered with a Modbus exception (code 1-4)


class SensorError(Exception):
    """The sensor gave no usable reading; `reason` says why (TIMEOUT, CRC, FRAME, REPLY), and a
    REPLY carries the Modbus `function` and exception `code`."""

    def __init__(self, reason, detail="", function=None, code=None):
        if reason == REPLY:
            detail = "function 0x%02x refused, exception code %d" % (function, code)
        super().__init__("%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason
        self.function = function
        self.code = code


class Reading:
    """A snapshot from the sensor. Unknown quantities are 0 (an S0 meter has no voltage).

    energy is the sensor's own cumulative counter in its counts (see the driver's
    counts_per_kwh); it can restart from zero, so consumption comes from its deltas.
    """

    def __init__(self, energy=0, power_dw=0, voltage_dv=0, current_ma=0, frequency_dhz=0,
                 pf_pct=0, alarm=False):
        self.energy = energy
        self.power_dw = power_dw
        self.voltage_dv = voltage_dv
        self.current_ma = current_ma
        self.frequency_dhz = frequency_dhz
        self.pf_pct = pf_pct
        self.alarm = alarm

    def __eq__(self, other):
        if not isinstance(other, Reading):
            return False
        return (self.energy == other.energy and self.power_dw == other.power_dw
                and self.voltage_dv == other.voltage_dv and self.current_ma == other.current_ma
                and self.frequency_dhz == other.frequency_dhz and self.pf_pct == other.pf_pct
                and self.alarm == other.alarm)

    def __repr__(self):
        return ("Reading(energy=%d, power_dw=%d, voltage_dv=%d, current_ma=%d, "
                "frequency_dhz=%d, pf_pct=%d, alarm=%s)" % (
                    self.energy, self.power_dw, self.voltage_dv, self.current_ma,
                    self.frequency_dhz, self.pf_pct, self.alarm))
