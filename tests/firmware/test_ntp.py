# NTP time sync (meter.ntp): when it queries, what it accepts, how it sets the clock.
from meter.ntp import TimeSync

NOW = 1764140000  # 2025-11-26


class FakeClock:
    def __init__(self, t):
        self.t = t
        self.sets = []

    def now(self):
        return self.t

    def set(self, t):
        self.sets.append(t)
        self.t = t


class FakeNtp:
    def __init__(self, answers):
        self.answers = list(answers)
        self.queries = 0

    def time(self):
        self.queries += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_first_step_online_sets_the_clock_then_waits_the_interval():
    clock = FakeClock(946684800)
    ntp = FakeNtp([NOW, NOW + 3600])
    s = TimeSync(clock, ntp, interval_s=20, retry_s=10, poll_s=5)
    assert s.step(True) == 5000
    assert clock.sets == [NOW] and s.syncs == 1 and s.last_step_s == NOW - 946684800
    for _ in range(4):  # 20 s of waiting in 5 s steps, no query
        s.step(True)
    assert ntp.queries == 1
    s.step(True)
    assert ntp.queries == 2 and clock.t == NOW + 3600


def test_offline_never_queries_and_queries_at_once_when_back():
    clock = FakeClock(NOW)
    ntp = FakeNtp([NOW + 5])
    s = TimeSync(clock, ntp, poll_s=5)
    for _ in range(3):
        assert s.step(False) == 5000
    assert ntp.queries == 0
    s.step(True)
    assert clock.sets == [NOW + 5]


def test_failures_and_nonsense_answers_never_touch_the_clock():
    clock = FakeClock(NOW)
    ntp = FakeNtp([OSError(110), 12, None, True, 3.5, NOW + 1])
    s = TimeSync(clock, ntp, retry_s=0, poll_s=1)
    for _ in range(5):
        s.step(True)
    assert clock.sets == [] and s.failures == 5
    s.step(True)
    assert clock.sets == [NOW + 1]


def test_an_answer_in_the_2000_epoch_is_converted():
    clock = FakeClock(0)
    s = TimeSync(clock, FakeNtp([NOW - 946684800]))
    assert s.sync() and clock.sets == [NOW]
