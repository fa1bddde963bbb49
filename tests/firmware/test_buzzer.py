from meter.drivers.buzzer import Buzzer
from support import FakePin, raises


class WrapTicks:
    PERIOD = 1 << 30

    def ticks_diff(self, a, b):
        half = self.PERIOD // 2
        return ((a - b + half) % self.PERIOD) - half


def make(**kwargs):
    pin = FakePin(0)
    return Buzzer(pin, ticks=WrapTicks(), **kwargs), pin


def test_starts_silent():
    buzzer, pin = make()
    assert pin.value() == 0
    assert buzzer.busy is False


def test_single_beep():
    buzzer, pin = make()
    buzzer.beep(1000)
    assert pin.value() == 1 and buzzer.busy
    buzzer.update(1099)
    assert pin.value() == 1 and buzzer.busy
    buzzer.update(1100)
    assert pin.value() == 0 and not buzzer.busy


def test_pattern_alternates_on_and_off():
    buzzer, pin = make()
    buzzer.beep(0, (100, 50, 200))
    seen = []
    for t in range(0, 400, 10):
        buzzer.update(t)
        seen.append(pin.value())
    assert seen[:10] == [1] * 10
    assert seen[10:15] == [0] * 5
    assert seen[15:35] == [1] * 20
    assert seen[35:] == [0] * 5
    assert not buzzer.busy


def test_late_update_skips_whole_steps():
    buzzer, pin = make()
    buzzer.beep(0, (100, 100, 100, 100))
    buzzer.update(250)  # in the third step
    assert pin.value() == 1 and buzzer.busy
    buzzer.update(300)
    assert pin.value() == 0
    buzzer.update(10000)
    assert not buzzer.busy and pin.value() == 0


def test_trailing_silence_keeps_it_busy():
    buzzer, pin = make()
    buzzer.beep(0, (100, 500))
    buzzer.update(300)
    assert buzzer.busy and pin.value() == 0
    buzzer.update(600)
    assert not buzzer.busy


def test_update_with_the_same_or_an_older_time_changes_nothing():
    buzzer, pin = make()
    buzzer.beep(500, (100,))
    buzzer.update(500)
    buzzer.update(450)
    buzzer.update(599)
    assert buzzer.busy and pin.value() == 1


def test_works_across_the_ticks_wrap():
    buzzer, pin = make()
    start = WrapTicks.PERIOD - 40
    buzzer.beep(start, (100,))
    buzzer.update(50)  # 90 ms later, after the wrap
    assert buzzer.busy
    buzzer.update(60)
    assert not buzzer.busy


def test_off_stops_at_once_and_a_new_beep_restarts():
    buzzer, pin = make()
    buzzer.beep(0, (1000,))
    buzzer.off()
    assert pin.value() == 0 and not buzzer.busy
    buzzer.update(10)
    assert pin.value() == 0
    buzzer.beep(20, (10,))
    assert pin.value() == 1


def test_active_low_buzzer():
    pin = FakePin(0)
    buzzer = Buzzer(pin, active_low=True, ticks=WrapTicks())
    assert pin.value() == 1
    buzzer.beep(0)
    assert pin.value() == 0 and buzzer.sounding()
    buzzer.update(100)
    assert pin.value() == 1 and not buzzer.sounding()


def test_bad_patterns_are_rejected():
    buzzer, pin = make()
    raises(ValueError, buzzer.beep, 0, ())
    raises(ValueError, buzzer.beep, 0, (100, 0))
    raises(ValueError, buzzer.beep, 0, (True,))
    raises(ValueError, buzzer.beep, 0, (10.5,))
    assert not buzzer.busy and pin.value() == 0
