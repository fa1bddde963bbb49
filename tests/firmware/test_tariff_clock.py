# The Biller when the wall clock was wrong: months counted under a clock set into the future.
# (Its own module: test_tariff.py already fills the 64 KB heap the MicroPython run compiles it in.)
from meter.calendar import epoch
from meter.tariff import Biller, Tariff

EAT = 3 * 3600


def local(y, m, d, hh=0, mm=0):
    return epoch(y, m, d, hh, mm, 0, EAT)


def test_a_month_counted_under_a_wrong_future_clock_is_left_when_the_clock_comes_back():
    # A bad time source once set the clock to 2036; corrected, the meter must not go on
    # counting into January 2036 (its bands spent) until the calendar gets there.
    tariff = Tariff.from_dict({"version": 1, "bands": [{"upto_kwh": 1, "rate": 1000},
                                                       {"rate": 3000}]})
    b = Biller(tariff)
    assert b.bill(1500, local(2036, 1, 10, 12)) == 2500
    t = local(2026, 3, 5, 12)
    assert b.cents_for(1000, t) == 1000 and b.wh_for_cents(1000, t) == 1000
    assert b.bill(1000, t) == 1000  # the lifeline band again, in the real month
    assert b.month_key == 202603 and b.month_wh == 1000
    # one boundary back stays in the counted month, across a new year too
    assert b.bill(1000, local(2026, 3, 1)) == 3000
    assert b.bill(500, local(2026, 2, 28, 23, 59)) == 1500
    assert b.month_key == 202603 and b.month_wh == 2500
    jan = Biller(tariff)
    jan.bill(1000, local(2027, 1, 1, 0, 30))
    assert jan.bill(500, local(2026, 12, 31, 23, 0)) == 1500 and jan.month_key == 202701
    assert jan.bill(500, local(2026, 11, 30, 23, 0)) == 500 and jan.month_key == 202611


def test_an_unknown_time_of_day_bills_the_plain_rate_not_a_guessed_window():
    # After a power cut the clock is carried forward to the last save: its time of day is off
    # by the outage, so a night window must not be applied to a morning (nor the reverse).
    d = {"version": 1, "bands": [{"upto_kwh": 1, "rate": 1000}, {"rate": 2000}],
         "tou": [{"from": "22:00", "to": "06:00", "factor_bp": 5000},
                 {"from": "18:00", "to": "21:00", "factor_bp": 15000}]}
    tariff = Tariff.from_dict(d)
    night = local(2026, 3, 5, 23)
    evening = local(2026, 3, 5, 19)
    assert tariff.factor_bp_at(night) == 5000 and tariff.factor_bp_at(night, False) == 10000
    assert tariff.factor_bp_at(evening, False) == 10000
    known = Biller(tariff)
    unknown = Biller(tariff)
    assert known.bill(500, night) == 250
    assert unknown.cents_for(1500, night, False) == 2000
    assert unknown.wh_for_cents(2000, night, False) == 1500
    assert unknown.bill(500, night, False) == 500 and unknown.bill(1000, evening, False) == 1500
    assert unknown.last_breakdown()["total"] == 1500 * 10 ** 15
    # the same split invariance as with a known time: one bill equals many
    whole = Biller(tariff)
    assert whole.bill(1500, evening, False) == 2000 and whole.state() == unknown.state()
