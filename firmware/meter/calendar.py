# Civil (proleptic Gregorian) dates from Unix seconds with integer arithmetic only.
# time.gmtime/mktime differ between CPython and MicroPython (epoch, range, tuple shape), so the
# meter does its own date sums: the same answers on a laptop, in the simulator and on the ESP32.
from micropython import const

_SECONDS_PER_DAY = const(86400)
_DAYS_PER_ERA = const(146097)  # 400 Gregorian years, after which the calendar repeats exactly
_ERA_DAY_OF_EPOCH = const(719468)  # days from 0000-03-01 to 1970-01-01
_MAX_OFFSET_S = const(50400)  # UTC+14, the furthest zone there is


class CalendarError(ValueError):
    pass


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_month(y, m):
    if m == 2:
        return 29 if is_leap(y) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of the date y-m-d (negative before it)."""
    if not (1 <= m <= 12) or not (1 <= d <= days_in_month(y, m)):
        raise CalendarError("no such date %d-%d-%d" % (y, m, d))
    # Count years from March so the leap day is the last day of the year: then the day of the
    # year does not depend on whether the year is leap.
    if m <= 2:
        y -= 1
    era = y // 400
    year_of_era = y - era * 400
    month_from_march = (m + 9) % 12
    day_of_year = (153 * month_from_march + 2) // 5 + d - 1
    day_of_era = (year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year)
    return era * _DAYS_PER_ERA + day_of_era - _ERA_DAY_OF_EPOCH


def civil_from_days(n):
    """(y, m, d) of the day n days after 1970-01-01."""
    n += _ERA_DAY_OF_EPOCH
    era = n // _DAYS_PER_ERA
    day_of_era = n - era * _DAYS_PER_ERA
    # Undo the leap days of the era so far (one per 4 years, none per 100, one per 400).
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524
                   - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_from_march = (5 * day_of_year + 2) // 153
    d = day_of_year - (153 * month_from_march + 2) // 5 + 1
    m = month_from_march + 3 if month_from_march < 10 else month_from_march - 9
    y = year_of_era + era * 400
    if m <= 2:
        y += 1
    return (y, m, d)


def _check_offset(utc_offset_s):
    if type(utc_offset_s) is not int or not (-_MAX_OFFSET_S <= utc_offset_s <= _MAX_OFFSET_S):
        raise CalendarError("bad UTC offset %r" % (utc_offset_s,))


def local_parts(t, utc_offset_s):
    """(y, m, d, hh, mm, ss, weekday) of instant t in a zone; weekday 0 is Monday."""
    _check_offset(utc_offset_s)
    local = t + utc_offset_s
    days = local // _SECONDS_PER_DAY
    secs = local - days * _SECONDS_PER_DAY
    y, m, d = civil_from_days(days)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    return (y, m, d, secs // 3600, secs // 60 % 60, secs % 60, weekday)


def epoch(y, m, d, hh=0, mm=0, ss=0, utc_offset_s=0):
    """Unix seconds of the local wall time y-m-d hh:mm:ss in a zone."""
    _check_offset(utc_offset_s)
    if not (0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss < 60):
        raise CalendarError("no such time %d:%d:%d" % (hh, mm, ss))
    return (days_from_civil(y, m, d) * _SECONDS_PER_DAY + hh * 3600 + mm * 60 + ss
            - utc_offset_s)


def month_key(t, utc_offset_s):
    """y * 100 + m of the local month of t: keys of later months compare greater."""
    parts = local_parts(t, utc_offset_s)
    return parts[0] * 100 + parts[1]


def month_start(t, utc_offset_s):
    """Unix seconds of local midnight on the first day of t's month."""
    parts = local_parts(t, utc_offset_s)
    return epoch(parts[0], parts[1], 1, 0, 0, 0, utc_offset_s)


def next_month_start(t, utc_offset_s):
    """Unix seconds of local midnight on the first day of the month after t's."""
    parts = local_parts(t, utc_offset_s)
    y = parts[0]
    m = parts[1] + 1
    if m > 12:
        y += 1
        m = 1
    return epoch(y, m, 1, 0, 0, 0, utc_offset_s)


def minute_of_day(t, utc_offset_s):
    """Local minutes since midnight, 0..1439; no date sums needed, so it is cheap."""
    _check_offset(utc_offset_s)
    return (t + utc_offset_s) % _SECONDS_PER_DAY // 60


def date_str(t, utc_offset_s):
    parts = local_parts(t, utc_offset_s)
    return "%04d-%02d-%02d" % (parts[0], parts[1], parts[2])
