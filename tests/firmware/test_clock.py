# The clock seam: wall time through the RTC, carried forward after a power cut but not trusted
# for the time of day until it is set.
from meter.calendar import epoch
from meter.clock import Clock


class FakeRTC:
    """machine.RTC's datetime(): (y, m, d, weekday, hh, mm, ss, subseconds)."""

    def __init__(self, dt=(2000, 1, 1, 5, 0, 0, 0, 0)):  # where the ESP32 RTC restarts
        self.dt = dt

    def datetime(self, dt=None):
        if dt is None:
            return self.dt
        self.dt = tuple(dt)


T = epoch(2026, 3, 14, 21, 30, 5)  # UTC


def test_set_and_now_round_trip_through_the_rtc_tuple():
    rtc = FakeRTC()
    clock = Clock(rtc)
    clock.set(T)
    assert rtc.dt == (2026, 3, 14, 5, 21, 30, 5, 0)  # a Saturday: weekday 5, Monday 0
    assert clock.now() == T
    assert clock.minute_of_day(T) == (21 + 3 - 24) * 60 + 30  # 00:30 the next day in EAT


def test_an_rtc_still_in_2000_is_not_valid():
    clock = Clock(FakeRTC())
    assert clock.now() == epoch(2000, 1, 1)
    assert not clock.valid()


def test_an_rtc_that_kept_running_through_a_reset_is_valid():
    # A watchdog or soft reset keeps the RTC: its time is real and nothing carries it.
    clock = Clock(FakeRTC((2026, 3, 14, 5, 21, 30, 5, 0)))
    clock.not_before(T - 3600)
    assert clock.now() == T
    assert clock.valid()


def test_a_carried_forward_time_is_not_valid_until_set():
    # After a power cut the RTC is back in 2000; carried to the last persisted time it keeps
    # months and bands from running backwards, but its time of day is off by the outage.
    rtc = FakeRTC()
    clock = Clock(rtc)
    clock.not_before(T)
    assert clock.now() == T
    assert not clock.valid()
    clock.set(T + 7 * 3600)  # NTP
    assert clock.valid() and clock.now() == T + 7 * 3600


def test_not_before_never_moves_the_clock_back_and_ignores_zero():
    clock = Clock(FakeRTC())
    clock.set(T)
    clock.not_before(T - 10)
    clock.not_before(0)
    assert clock.now() == T and clock.valid()
