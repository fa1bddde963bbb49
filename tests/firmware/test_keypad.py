from meter.drivers.keypad import Keypad
from support import FakePin, raises


class Matrix:
    """A keypad without diodes: a column reads 0 while a pressed key joins it to a low row."""

    def __init__(self, nrows=4, ncols=4):
        self.rows = [FakePin(0) for _ in range(nrows)]
        self.cols = [Column(self, c) for c in range(ncols)]
        self.pressed = set()
        self.reads = 0

    def level(self, col):
        self.reads += 1
        for r, c in self.pressed:
            if c == col and self.rows[r].value() == 0:
                return 0
        return 1


class Column:
    def __init__(self, matrix, index):
        self.matrix = matrix
        self.index = index

    def value(self, v=None):
        return self.matrix.level(self.index)


class Ticks:
    def ticks_diff(self, a, b):
        return a - b


def make(**kwargs):
    m = Matrix()
    return Keypad(m.rows, m.cols, ticks=Ticks(), **kwargs), m


def test_rows_rest_high():
    pad, m = make()
    assert [p.value() for p in m.rows] == [1, 1, 1, 1]
    pad.scan()
    assert [p.value() for p in m.rows] == [1, 1, 1, 1]


def test_rows_are_driven_low_one_at_a_time():
    pad, m = make()
    pad.scan()
    for p in m.rows:
        assert p.history[-2:] == [0, 1]


def test_scan_maps_every_key():
    pad, m = make()
    assert pad.scan() is None
    layout = "123A456B789C*0#D"
    for r in range(4):
        for c in range(4):
            m.pressed = {(r, c)}
            assert pad.scan() == layout[r * 4 + c]


def test_two_keys_at_once_are_ignored():
    pad, m = make()
    m.pressed = {(0, 0), (2, 3)}
    assert pad.scan() is None
    m.pressed = {(1, 1), (1, 2)}
    assert pad.scan() is None
    assert [p.value() for p in m.rows] == [1, 1, 1, 1]


def test_custom_layout():
    rows = [FakePin(), FakePin()]
    m = Matrix(2, 3)
    pad = Keypad(m.rows, m.cols, keys="abcdef", ticks=Ticks())
    m.pressed = {(1, 0)}
    assert pad.scan() == "d"
    raises(ValueError, Keypad, rows, m.cols, keys="abc", ticks=Ticks())


def test_poll_reports_a_key_once_after_it_is_steady():
    pad, m = make()
    m.pressed = {(3, 2)}
    assert pad.poll(0) is None
    assert pad.poll(10) is None
    assert pad.poll(29) is None
    assert pad.poll(30) == "#"
    for t in range(40, 2000, 10):  # held down: no repeat
        assert pad.poll(t) is None


def test_bounces_shorter_than_the_debounce_are_ignored():
    pad, m = make()
    seen = []
    # contact chatter: pressed / released every 5 ms for 25 ms, then held
    for t in range(0, 25, 5):
        m.pressed = {(0, 1)} if t % 10 == 0 else set()
        seen.append(pad.poll(t))
    m.pressed = {(0, 1)}
    for t in range(25, 100, 5):
        seen.append(pad.poll(t))
    assert [k for k in seen if k is not None] == ["2"]
    # chatter on release, then a long release, then the same key again: a second press
    for t in range(100, 120, 5):
        m.pressed = set() if t % 10 == 0 else {(0, 1)}
        seen.append(pad.poll(t))
    m.pressed = set()
    for t in range(120, 200, 5):
        seen.append(pad.poll(t))
    m.pressed = {(0, 1)}
    for t in range(200, 260, 5):
        seen.append(pad.poll(t))
    assert [k for k in seen if k is not None] == ["2", "2"]


def test_short_release_does_not_repeat_the_key():
    pad, m = make()
    m.pressed = {(0, 0)}
    keys = [pad.poll(t) for t in range(0, 100, 10)]
    m.pressed = set()
    keys += [pad.poll(t) for t in range(100, 120, 10)]  # 20 ms gap: a bounce
    m.pressed = {(0, 0)}
    keys += [pad.poll(t) for t in range(120, 300, 10)]
    assert [k for k in keys if k is not None] == ["1"]


def test_a_different_key_is_reported_without_a_release_in_between():
    pad, m = make()
    m.pressed = {(0, 0)}
    keys = [pad.poll(t) for t in range(0, 100, 10)]
    m.pressed = {(3, 3)}
    keys += [pad.poll(t) for t in range(100, 200, 10)]
    assert [k for k in keys if k is not None] == ["1", "D"]
