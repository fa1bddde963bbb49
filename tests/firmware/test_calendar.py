# Civil date sums of meter.calendar against dates known by heart (and checked with a calendar).
from meter.calendar import (CalendarError, civil_from_days, date_str, days_from_civil,
                            days_in_month, epoch, is_leap, local_parts, minute_of_day,
                            month_key, month_start, next_month_start)
from support import raises

EAT = 3 * 3600  # Kenya, UTC+3


def test_epoch_zero_is_thursday_first_of_january_1970():
    assert days_from_civil(1970, 1, 1) == 0
    assert civil_from_days(0) == (1970, 1, 1)
    assert local_parts(0, 0) == (1970, 1, 1, 0, 0, 0, 3)
    assert epoch(1970, 1, 1) == 0
    assert date_str(0, 0) == "1970-01-01"


def test_known_days_since_epoch():
    known = [
        ((1970, 12, 31), 364), ((1972, 2, 29), 789), ((2000, 1, 1), 10957),
        ((2000, 2, 29), 11016), ((2000, 3, 1), 11017), ((2024, 2, 29), 19782),
        ((2026, 1, 1), 20454), ((2038, 1, 19), 24855), ((2100, 2, 28), 47540),
        ((2100, 3, 1), 47541),
    ]
    for ymd, days in known:
        assert days_from_civil(ymd[0], ymd[1], ymd[2]) == days, ymd
        assert civil_from_days(days) == ymd, days


def test_leap_years_follow_the_gregorian_rule():
    assert is_leap(2000) and is_leap(2024) and is_leap(1972)
    assert not is_leap(2100) and not is_leap(1900) and not is_leap(2026)
    assert days_in_month(2000, 2) == 29 and days_in_month(2100, 2) == 28
    # 2100-02-28 is followed directly by 2100-03-01.
    assert days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28) == 1
    assert raises(CalendarError, days_from_civil, 2100, 2, 29)
    assert raises(CalendarError, days_from_civil, 2026, 13, 1)
    assert raises(CalendarError, days_from_civil, 2026, 4, 31)


def _leap(y):  # the rule written out again, independently of the module under test
    return (y % 4 == 0 and y % 100 != 0) or y % 400 == 0


def test_every_day_follows_the_previous_one_for_two_centuries():
    # Walk day by day from 1970 to 2170: each date is the successor of the one before, so a
    # wrong month length or leap rule anywhere shows up at its own date.
    lengths = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    y, m, d = 1970, 1, 1
    for n in range(1, 73049):
        last = lengths[m - 1] + (1 if m == 2 and _leap(y) else 0)
        d += 1
        if d > last:
            d = 1
            m += 1
            if m > 12:
                m = 1
                y += 1
        got = civil_from_days(n)
        assert got == (y, m, d), (n, got)
        assert days_from_civil(y, m, d) == n
    assert (y, m, d) == (2169, 12, 31)


def test_local_parts_in_kenya_time():
    t = 1767225600  # 2026-01-01 00:00:00 UTC, a Thursday
    assert local_parts(t, 0) == (2026, 1, 1, 0, 0, 0, 3)
    assert local_parts(t, EAT) == (2026, 1, 1, 3, 0, 0, 3)
    assert local_parts(t - 1, EAT) == (2026, 1, 1, 2, 59, 59, 3)
    assert local_parts(t - 3 * 3600 - 1, EAT) == (2025, 12, 31, 23, 59, 59, 2)
    assert local_parts(epoch(2026, 11, 30, 12, 34, 56, EAT), EAT) == (2026, 11, 30, 12, 34, 56, 0)
    assert date_str(t - 3 * 3600 - 1, EAT) == "2025-12-31"


def test_epoch_is_the_inverse_of_local_parts():
    for t in (0, 951782400, 1767225599, 1767225600, 4107542399, 4107542400):
        for offset in (0, EAT, -5 * 3600, 14 * 3600):
            p = local_parts(t, offset)
            assert epoch(p[0], p[1], p[2], p[3], p[4], p[5], offset) == t


def test_local_month_starts_at_local_midnight():
    # 21:00 UTC on 31 January is already 1 February in Kenya.
    before = epoch(2026, 1, 31, 20, 59, 59)
    after = epoch(2026, 1, 31, 21, 0, 0)
    assert month_key(before, EAT) == 202601
    assert month_key(after, EAT) == 202602
    assert month_key(after, 0) == 202601
    assert next_month_start(before, EAT) == after
    assert month_start(after, EAT) == after
    assert next_month_start(after, EAT) == epoch(2026, 3, 1, 0, 0, 0, EAT)
    assert next_month_start(epoch(2026, 12, 15), EAT) == epoch(2027, 1, 1, 0, 0, 0, EAT)
    assert month_key(epoch(2024, 2, 29, 23, 0, 0, EAT), EAT) == 202402


def test_minute_of_day_is_local():
    assert minute_of_day(epoch(2026, 3, 4, 19, 0, 0), EAT) == 22 * 60
    assert minute_of_day(epoch(2026, 3, 4, 20, 59, 59), EAT) == 23 * 60 + 59
    assert minute_of_day(epoch(2026, 3, 4, 21, 0, 0), EAT) == 0


def test_bad_offsets_and_times_are_refused():
    assert raises(CalendarError, local_parts, 0, 15 * 3600)
    assert raises(CalendarError, local_parts, 0, True)
    assert raises(CalendarError, epoch, 2026, 1, 1, 24, 0, 0)
    assert raises(CalendarError, epoch, 2026, 1, 1, 0, 60, 0)
