from meter.drivers.relay import Relay, RelayError
from support import FakePin, raises


class Sleeper:
    """Records sleeps and what the coil pins showed while sleeping."""

    def __init__(self, pins=()):
        self.calls = []
        self.pins = pins

    def __call__(self, ms):
        self.calls.append((ms, tuple(p.value() for p in self.pins)))


def test_level_for_both_polarities():
    assert Relay.level_for(True, False) == 1
    assert Relay.level_for(False, False) == 0
    assert Relay.level_for(True, True) == 0
    assert Relay.level_for(False, True) == 1
    assert Relay(FakePin()).level_for(1, 0) == 1


def test_construction_does_not_touch_the_pin():
    pin = FakePin(Relay.level_for(True, True))
    relay = Relay(pin, active_low=True)
    assert pin.history == []
    assert relay.is_closed() is True


def test_active_high_relay():
    pin = FakePin(0)
    relay = Relay(pin)
    assert relay.is_closed() is False
    relay.close()
    assert pin.value() == 1 and relay.is_closed() is True
    relay.open()
    assert pin.value() == 0 and relay.is_closed() is False
    assert relay.switch_count == 2


def test_active_low_relay():
    pin = FakePin(1)
    relay = Relay(pin, active_low=True)
    assert relay.is_closed() is False
    relay.close()
    assert pin.value() == 0 and relay.is_closed() is True
    relay.set(False)
    assert pin.value() == 1 and relay.is_closed() is False


def test_setting_the_same_state_does_not_switch():
    pin = FakePin(0)
    relay = Relay(pin)
    relay.open()
    relay.set(0)
    assert pin.history == []
    assert relay.switch_count == 0
    relay.close()
    relay.close()
    assert pin.history == [1]
    assert relay.switch_count == 1


def test_latching_pulses_the_set_coil_to_close_and_the_reset_coil_to_open():
    set_pin, reset_pin = FakePin(0), FakePin(0)
    sleep = Sleeper((set_pin, reset_pin))
    relay = Relay(set_pin, latching=True, reset_pin=reset_pin, pulse_ms=80, sleep_ms=sleep,
                  closed=False)
    assert relay.is_closed() is False
    relay.close()
    assert sleep.calls == [(80, (1, 0))]
    assert set_pin.value() == 0 and reset_pin.value() == 0
    assert relay.is_closed() is True
    relay.open()
    assert sleep.calls[-1] == (80, (0, 1))
    assert set_pin.value() == 0 and reset_pin.value() == 0
    assert relay.is_closed() is False
    assert relay.switch_count == 2


def test_latching_active_low_coils_rest_high():
    set_pin, reset_pin = FakePin(1), FakePin(1)
    sleep = Sleeper((set_pin, reset_pin))
    relay = Relay(set_pin, active_low=True, latching=True, reset_pin=reset_pin, sleep_ms=sleep,
                  closed=True)
    relay.open()
    assert sleep.calls == [(50, (1, 0))]
    assert set_pin.value() == 1 and reset_pin.value() == 1


def test_latching_remembers_state_and_does_not_pulse_again():
    set_pin, reset_pin = FakePin(0), FakePin(0)
    sleep = Sleeper()
    relay = Relay(set_pin, latching=True, reset_pin=reset_pin, sleep_ms=sleep, closed=True)
    relay.close()
    assert sleep.calls == [] and set_pin.history == []
    assert relay.switch_count == 0


def test_latching_unknown_state_always_pulses_first():
    set_pin, reset_pin = FakePin(0), FakePin(0)
    sleep = Sleeper()
    relay = Relay(set_pin, latching=True, reset_pin=reset_pin, sleep_ms=sleep)
    assert relay.commanded() is None
    relay.open()
    assert len(sleep.calls) == 1
    assert relay.is_closed() is False
    relay.open()
    assert len(sleep.calls) == 1


def test_latching_coil_is_released_if_the_wait_is_interrupted():
    set_pin, reset_pin = FakePin(0), FakePin(0)

    def interrupted(ms):
        raise KeyboardInterrupt()
    relay = Relay(set_pin, latching=True, reset_pin=reset_pin, sleep_ms=interrupted, closed=False)
    raises(KeyboardInterrupt, relay.close)
    assert set_pin.value() == 0


def test_latching_needs_a_reset_pin():
    raises(RelayError, Relay, FakePin(), latching=True, sleep_ms=Sleeper())


def test_bad_pulse_length_is_rejected():
    raises(RelayError, Relay, FakePin(), pulse_ms=0)


def test_sense_pin_is_what_is_closed_reports():
    pin, sense = FakePin(0), FakePin(0)
    relay = Relay(pin, sense_pin=sense)
    relay.close()
    assert relay.is_closed() is False  # the contact did not follow: welded open or no coil
    assert relay.mismatch() is True
    sense.value(1)
    assert relay.is_closed() is True
    assert relay.mismatch() is False


def test_sense_pin_active_low():
    pin, sense = FakePin(1), FakePin(0)
    relay = Relay(pin, sense_pin=sense, sense_active_low=True)
    assert relay.is_closed() is True
    assert relay.mismatch() is False


def test_without_sense_pin_there_is_no_mismatch():
    assert Relay(FakePin(1)).mismatch() is False


def test_latching_never_energises_both_coils():
    # The reset coil was left on (say, by a crash mid-pulse before a soft reset).
    set_pin, reset_pin = FakePin(0), FakePin(1)
    sleep = Sleeper((set_pin, reset_pin))
    relay = Relay(set_pin, latching=True, reset_pin=reset_pin, sleep_ms=sleep, closed=False)
    relay.close()
    assert sleep.calls == [(50, (1, 0))]
    assert reset_pin.value() == 0
