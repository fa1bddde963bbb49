# The tariff engine: exact cents however consumption is split, bands, time of use, months,
# VAT and levies against hand sums, validation of configurations, versions, persistence.
import json

from meter.calendar import epoch
from meter.tariff import FINE_PER_CENT, Biller, BillingError, Tariff
from support import raises
from tariff_samples import kenya_dict

EAT = 3 * 3600


def small_bands_dict():
    # Bands small enough that a month of a few tens of Wh an hour crosses both edges, two
    # time-of-use windows (one across midnight) and odd rates so remainders never vanish.
    d = kenya_dict()
    d["bands"] = [{"upto_kwh": 5, "rate": 1223}, {"upto_kwh": 15, "rate": 1651},
                  {"rate": 1957}]
    d["tou"] = [{"from": "22:00", "to": "06:00", "factor_bp": 7013},
                {"from": "18:00", "to": "21:00", "factor_bp": 13333}]
    d["levies"].append({"name": "odd", "rate": 7, "vat": True})
    return d


def local(y, m, d, hh=0, mm=0):
    return epoch(y, m, d, hh, mm, 0, EAT)


class Lcg:
    """A tiny seeded generator, the same on CPython and MicroPython."""

    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (1103515245 * self.x + 12345) % 2147483648
        return (self.x >> 8) % n


def test_hand_computed_kwh_at_noon_and_at_night():
    tariff = Tariff.from_dict(kenya_dict())
    day = Biller(tariff)
    # 12.23 energy + 5 % REP (0.6115) + 5.45 pass-through + 0.13 levies
    # + 16 % VAT on (12.23 + 5.45) = 2.8288 -> KES 21.2503
    assert day.bill(1000, local(2026, 1, 5, 12)) == 2125
    assert day.remainder_fine * 100 == 3 * FINE_PER_CENT
    parts = day.last_breakdown()
    assert parts is not None
    assert parts["energy"] == 1223 * FINE_PER_CENT
    assert parts["percent_levies"] * 100 == 6115 * FINE_PER_CENT
    assert parts["passthrough"] == 545 * FINE_PER_CENT
    assert parts["levies"] == 13 * FINE_PER_CENT
    assert parts["vat"] * 100 == 28288 * FINE_PER_CENT
    assert parts["total"] * 100 == 212503 * FINE_PER_CENT
    night = Biller(tariff)
    # energy at 70 %: 8.561 + REP 0.42805 + 5.45 + 0.13 + VAT 16 % of 14.011 = 2.24176
    assert night.bill(1000, local(2026, 1, 5, 23)) == 1681
    assert night.remainder_fine * 1000 == 81 * FINE_PER_CENT


def test_fine_cost_of_one_wh_and_percent_levy_under_vat():
    tariff = Tariff.from_dict(kenya_dict())
    noon = local(2026, 1, 5, 12)
    assert tariff.fine_cost_of_wh(0, noon) * 100000 == 212503 * FINE_PER_CENT
    assert tariff.fine_cost_of_wh(29999, noon) == tariff.fine_cost_of_wh(0, noon)
    # Past 30 kWh: 16.50 + 0.825 + 5.45 + 0.13 + 16 % of 21.95 = 3.512 -> 26.417 per kWh.
    assert tariff.fine_cost_of_wh(30000, noon) * 10000 == 26417 * FINE_PER_CENT
    d = kenya_dict()
    d["percent_levies"][0]["vat"] = True
    taxed = Tariff.from_dict(d)
    # VAT now also on the 0.6115 REP: + 0.09784
    assert taxed.fine_cost_of_wh(0, noon) * 1000000 == 2134814 * FINE_PER_CENT


def test_breakdown_adds_up_to_the_cost_across_bands_and_windows():
    tariff = Tariff.from_dict(small_bands_dict())
    gen = Lcg(11)
    t = local(2026, 7, 1)
    for _ in range(200):
        month_wh = gen.below(20000)
        wh = gen.below(12000)
        when = t + gen.below(86400)
        parts = tariff.breakdown(month_wh, wh, when)
        assert parts["total"] == tariff.fine_cost(month_wh, wh, when), (month_wh, wh)
        assert parts["total"] == (parts["energy"] + parts["percent_levies"] + parts["vat"]
                                  + parts["passthrough"] + parts["levies"])
    assert Biller(tariff).last_breakdown() is None


def test_band_edge_inside_one_call_equals_wh_by_wh():
    tariff = Tariff.from_dict({"version": 1, "bands": [{"upto_kwh": 1, "rate": 1000},
                                                       {"rate": 2000}]})
    t = local(2026, 2, 10, 12)
    whole = Biller(tariff)
    assert whole.bill(600, t) == 600
    assert whole.bill(900, t) == 400 + 1000  # 400 Wh left in band 1, 500 in band 2
    by_wh = Biller(tariff)
    cents = 0
    for _ in range(1500):
        cents += by_wh.bill(1, t)
    assert cents == 2000 and by_wh.state() == whole.state()


def test_costs_right_at_band_edges_equal_the_sum_of_single_wh():
    tariff = Tariff.from_dict(small_bands_dict())
    t = local(2026, 7, 1, 12)
    for edge in (5000, 15000):
        for month_wh in range(edge - 3, edge + 2):
            for wh in (0, 1, 2, 3, 4, 1001):
                single = 0
                for k in range(wh):
                    single += tariff.fine_cost_of_wh(month_wh + k, t)
                assert tariff.fine_cost(month_wh, wh, t) == single, (month_wh, wh)


def test_time_of_use_window_across_midnight():
    tariff = Tariff.from_dict(kenya_dict())
    # 22:00 local is 19:00 UTC; the window is [22:00, 06:00) local.
    assert tariff.factor_bp_at(local(2026, 3, 4, 21, 59)) == 10000
    assert tariff.factor_bp_at(local(2026, 3, 4, 22, 0)) == 7000
    assert tariff.factor_bp_at(local(2026, 3, 4, 23, 59)) == 7000
    assert tariff.factor_bp_at(local(2026, 3, 5, 0, 0)) == 7000
    assert tariff.factor_bp_at(local(2026, 3, 5, 5, 59)) == 7000
    assert tariff.factor_bp_at(local(2026, 3, 5, 6, 0)) == 10000
    assert tariff.factor_bp_at(epoch(2026, 3, 4, 19, 0, 0)) == 7000
    flat = Tariff.flat(2000)
    assert flat.factor_bp_at(local(2026, 3, 4, 23, 0)) == 10000
    b = Biller(flat)
    assert b.bill(1000, local(2026, 3, 4, 23, 0)) == 2000


def test_month_boundary_in_local_time_resets_bands():
    tariff = Tariff.from_dict({"version": 1, "bands": [{"upto_kwh": 1, "rate": 1000},
                                                       {"rate": 3000}]})
    b = Biller(tariff)
    assert b.bill(1000, epoch(2026, 1, 31, 12, 0, 0)) == 1000
    assert b.bill(1000, epoch(2026, 1, 31, 20, 59, 59)) == 3000  # still January in Kenya
    assert b.month_key == 202601 and b.month_wh == 2000
    # 21:00 UTC on the 31st is 1 February 00:00 in Kenya: the lifeline band is back.
    assert b.cents_for(1000, epoch(2026, 1, 31, 21, 0, 0)) == 1000
    assert b.month_wh == 2000  # predicting changed nothing
    assert b.bill(1000, epoch(2026, 1, 31, 21, 0, 0)) == 1000
    assert b.month_key == 202602 and b.month_wh == 1000
    assert b.total_wh == 3000 and b.total_cents == 5000
    # A clock stepping back into January does not open January's lifeline band again.
    assert b.bill(500, epoch(2026, 1, 31, 20, 0, 0)) == 1500
    assert b.month_key == 202602 and b.month_wh == 1500


def test_a_new_utc_offset_moves_the_month_boundary():
    utc = Tariff.from_dict({"version": 1, "utc_offset_min": 0,
                            "bands": [{"upto_kwh": 1, "rate": 1000}, {"rate": 3000}]})
    b = Biller(utc)
    assert b.bill(1000, epoch(2026, 1, 31, 20, 0, 0)) == 1000
    eat = Tariff.from_dict({"version": 2, "bands": [{"upto_kwh": 1, "rate": 1000},
                                                    {"rate": 3000}]})
    assert b.set_tariff(eat) and b.tariff is eat
    # 22:00 UTC is still January in UTC but already 1 February in Kenya: the band resets.
    assert b.bill(1000, epoch(2026, 1, 31, 22, 0, 0)) == 1000
    assert b.month_key == 202602


def _month_of_hours(seed):
    # Wh per hour for 31 days, a fifth of the hours idle; a bytearray keeps the 64 KB heap calm.
    gen = Lcg(seed)
    hours = bytearray(31 * 24)
    for i in range(len(hours)):
        if gen.below(5):
            hours[i] = gen.below(120)
    return hours


def test_a_month_billed_hourly_by_wh_and_in_random_splits_gives_the_same_cents():
    tariff = Tariff.from_dict(small_bands_dict())
    hours = _month_of_hours(2026)
    start = local(2026, 1, 15)  # half of January, half of February: one month reset
    hourly = Biller(tariff)
    per_wh = Biller(tariff)
    split = Biller(tariff)
    gen = Lcg(7)
    cents = [0, 0, 0]
    for i in range(len(hours)):
        t = start + i * 3600
        wh = hours[i]
        cents[0] += hourly.bill(wh, t)
        for s in range(wh):
            cents[1] += per_wh.bill(1, t + s)
        left = wh
        s = 0
        while left:
            n = 1 + gen.below(left)
            cents[2] += split.bill(n, t + s)
            left -= n
            s += 60
        assert hourly.state() == per_wh.state() == split.state(), i
    assert cents[0] == cents[1] == cents[2] == hourly.total_cents
    assert hourly.month_key == 202602
    # Every band and time-of-use window was exercised: the test is not a flat tariff in disguise.
    assert sum(hours[:17 * 24]) > 15000 and hourly.month_wh > 15000
    # Cumulative cents are the floor of the exact cost of everything, month by month.
    exact = 0
    month_wh = 0
    for i in range(len(hours)):
        t = start + i * 3600
        if t == local(2026, 2, 1):
            month_wh = 0
        exact += tariff.fine_cost(month_wh, hours[i], t)
        month_wh += hours[i]
    assert hourly.total_cents == exact // FINE_PER_CENT
    assert hourly.remainder_fine == exact % FINE_PER_CENT


def test_sub_cent_remainders_are_carried():
    b = Biller(Tariff.flat(1223))
    t = local(2026, 5, 1, 8)
    total = 0
    for n in range(1, 2001):
        total += b.bill(1, t)
        assert total == n * 1223 // 1000, n
    assert b.total_cents == total


def test_a_big_call_is_costed_per_band_not_per_wh():
    # 10**12 Wh would take hours Wh by Wh; the answer comes from three band segments.
    b = Biller(Tariff.from_dict({"version": 1, "bands": [
        {"upto_kwh": 30, "rate": 1000}, {"upto_kwh": 100, "rate": 2000}, {"rate": 3000}]}))
    wh = 1000000000000
    assert b.bill(wh, local(2026, 6, 1)) == 30 * 1000 + 70 * 2000 + (wh // 1000 - 100) * 3000
    assert b.remainder_fine == 0


def test_predictions_match_billing_and_change_nothing():
    b = Biller(Tariff.flat(2500))
    t = local(2026, 4, 2, 10)
    # KES 50 at 1 kW: 2 kWh, two hours.
    assert b.wh_for_cents(5000, t) == 2000
    assert b.cents_for(2000, t) == 5000 and b.cents_for(2001, t) == 5002
    assert b.state()["month_wh"] == 0 and b.total_cents == 0
    kenya = Biller(Tariff.from_dict(kenya_dict()))
    kenya.bill(29000, t)
    for cents in (0, 1, 2125, 5000, 500000):
        wh = kenya.wh_for_cents(cents, t)
        assert kenya.cents_for(wh, t) <= cents < kenya.cents_for(wh + 1, t), cents
    assert Biller(Tariff.flat(0)).wh_for_cents(100, t) is None


def test_state_round_trip_mid_month_continues_identically():
    tariff = Tariff.from_dict(small_bands_dict())
    hours = _month_of_hours(99)
    start = local(2026, 3, 1)
    a = Biller(tariff)
    b = None
    for i in range(len(hours)):
        t = start + i * 3600
        if i == 300:
            b = Biller(tariff, json.loads(json.dumps(a.state())))
        got = a.bill(hours[i], t)
        if b is not None:
            assert b.bill(hours[i], t) == got
    assert b is not None and b.state() == a.state()
    assert a.remainder_fine != 0


def test_garbage_state_is_refused():
    tariff = Tariff.flat(1000)
    good = Biller(tariff).state()
    assert raises(BillingError, Biller, tariff, "garbage")
    for key, bad in (("month_wh", -1), ("total_wh", True), ("remainder_fine", FINE_PER_CENT),
                     ("month_key", "202601"), ("total_cents", None)):
        state = dict(good)
        state[key] = bad
        assert raises(BillingError, Biller, tariff, state), key
    state = dict(good)
    state["pending"] = {"version": 9, "bands": []}
    assert raises(ValueError, Biller, tariff, state)


def test_bill_refuses_bools_negatives_and_non_integers():
    b = Biller(Tariff.flat(1000))
    t = local(2026, 1, 2)
    for wh in (True, -1, 1.5, "3", None):
        assert raises(BillingError, b.bill, wh, t), wh
    assert raises(BillingError, b.bill, 1, 1.0)
    assert b.bill(0, t) == 0 and b.total_wh == 0


def test_only_newer_versions_are_accepted_and_take_over_at_their_date():
    old = Tariff.flat(1003, version=3)
    b = Biller(old)
    assert b.bill(100, local(2026, 1, 10)) == 100  # 100.3 cents: 0.3 carried
    assert not b.set_tariff(Tariff.flat(9000, version=2))
    assert not b.set_tariff(Tariff.flat(9000, version=3))
    newer = Tariff.flat(2003, version=4, effective_from=local(2026, 1, 20))
    assert b.set_tariff(newer)
    assert not b.set_tariff(Tariff.flat(9000, version=4))  # not newer than the pending one
    assert b.tariff is old
    assert b.cents_for(1000, local(2026, 1, 19, 23, 59)) == 1003
    assert b.cents_for(1000, local(2026, 1, 20)) == 2003
    assert b.bill(700, local(2026, 1, 19)) == 702  # old rate: 0.3 + 702.1
    assert b.tariff is old and b.remainder_fine * 10 == 4 * FINE_PER_CENT
    # The pending tariff survives a reboot with the biller's state.
    b = Biller(old, json.loads(json.dumps(b.state())))
    assert b.pending is not None and b.pending.version == 4
    assert b.bill(300, local(2026, 1, 21)) == 601  # new rate: 0.4 + 600.9
    assert b.tariff is not old and b.tariff.version == 4 and b.pending is None
    assert b.month_wh == 1100 and b.remainder_fine * 10 == 3 * FINE_PER_CENT
    assert not b.set_tariff(Tariff.flat(9000, version=4))
    # Already effective at the last bill (or at a time given): it takes over at once.
    assert b.set_tariff(Tariff.flat(1000, version=5, effective_from=local(2026, 1, 21)))
    assert b.tariff.version == 5 and b.pending is None
    assert b.set_tariff(Tariff.flat(1000, version=6, effective_from=local(2026, 2, 1)))
    assert b.tariff.version == 5 and b.pending is not None
    assert b.set_tariff(Tariff.flat(1000, version=7, effective_from=local(2026, 2, 1)),
                        local(2026, 2, 1))
    assert b.tariff.version == 7 and b.pending is None
    assert b.month_wh == 1100 and b.remainder_fine * 10 == 3 * FINE_PER_CENT

