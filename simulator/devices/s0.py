# An S0 pulse output (IEC 62053-31) driven by the world's true energy: one pulse per
# 1/constant kWh, each pulse at the exact instant the energy crossed its quantum.

# Energy in the world is integrated in milliwatt-milliseconds (mW*ms); 1 kWh is 3.6e12 of them.
_MWMS_PER_KWH = 3600000000000


class S0Output:
    def __init__(self, world, impulses_per_kwh=1000, pulse_ms=30):
        if impulses_per_kwh <= 0 or pulse_ms <= 0:
            raise ValueError("S0 constant and pulse length must be positive")
        self.world = world
        self.constant = impulses_per_kwh
        self.pulse_ms = pulse_ms
        self.delivered = 0  # pulses already signalled on the pin
        self._last_pulse_ms = None

    def pulses_for(self, energy_mwms):
        return energy_mwms * self.constant // _MWMS_PER_KWH

    def pulses_due(self):
        """Pulses the true energy so far calls for that the pin has not shown yet."""
        return self.pulses_for(self.world.metered_mwms()) - self.delivered

    def next_pulse_ms(self):
        """The virtual time of the next pulse at the present load, or None if no power flows."""
        target = (self.delivered + 1) * _MWMS_PER_KWH
        # Smallest energy e with e * constant >= target.
        need = (target + self.constant - 1) // self.constant - self.world.metered_mwms()
        power = self.world.metered_power_mw()
        now = self.world.now_ms()
        if need <= 0:
            return now
        if power <= 0:
            return None
        return now + (need + power - 1) // power

    def take_pulse(self, now_ms):
        """Mark one pulse as signalled at now_ms (called by the pin wiring)."""
        self.delivered += 1
        self._last_pulse_ms = now_ms

    def level(self, now_ms):
        """The open-collector pin level: 0 while a pulse is on, else 1 (pulled up)."""
        if self._last_pulse_ms is not None and 0 <= now_ms - self._last_pulse_ms < self.pulse_ms:
            return 0
        return 1

    def energy_wh_from_pulses(self, pulses):
        return pulses * 1000 // self.constant
