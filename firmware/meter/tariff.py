# Tariff engine: a versioned tariff configuration (bands, time of use, pass-through charges,
# levies, VAT) and a Biller that turns Wh into whole cents, carrying the exact sub-cent rest.
#
# Every charge on one Wh is an exact multiple of 1 / FINE_PER_CENT cents: rates are cents per
# kWh (a factor 1000 from Wh) scaled by at most three basis-point factors (time of use, a
# percentage levy, VAT; 10000 each). Billing adds integers in that unit and only rounds down
# when handing out whole cents, so any way of splitting the same consumption bills the same.
from micropython import const
from meter.calendar import month_key, month_start, next_month_start
from meter.tariff_config import KENYA_OFFSET_MIN, TariffError, parse_tariff, tariff_to_dict

_BP = const(10000)  # basis points in 100 %
_WH_PER_KWH = const(1000)

FINE_PER_CENT = _WH_PER_KWH * _BP * _BP * _BP  # 10**15; a big int on the ESP32, as are sums
_FINE_PER_RATE_WH = _BP * _BP * _BP  # fine units in one Wh at 1 cent per kWh


class BillingError(ValueError):
    pass


class Tariff:
    """One validated tariff version. Build with Tariff.from_dict or Tariff.flat."""

    def __init__(self, version, effective_from, utc_offset_min, bands, tou, passthrough,
                 levies, percent_levies, vat_bp):
        self.version = version
        self.effective_from = effective_from
        self.utc_offset_min = utc_offset_min
        self.utc_offset_s = utc_offset_min * 60
        self.bands = bands  # [(upto_wh or None, cents per kWh)]
        self.tou = tou  # [(from_min, to_min, factor_bp)], to < from wraps midnight
        self.passthrough = passthrough  # [(name, cents per kWh, vat)]
        self.levies = levies
        self.percent_levies = percent_levies  # [(name, bp of the energy charge, vat)]
        self.vat_bp = vat_bp
        self._precompute()

    @classmethod
    def from_dict(cls, d):
        """Validate a configuration dict; raises TariffError saying what is wrong."""
        return cls(*parse_tariff(d))

    @classmethod
    def flat(cls, rate_cents_per_kwh, version=1, effective_from=0,
             utc_offset_min=KENYA_OFFSET_MIN):
        return cls.from_dict({"version": version, "effective_from": effective_from,
                              "utc_offset_min": utc_offset_min,
                              "bands": [{"rate": rate_cents_per_kwh}]})

    def to_dict(self):
        return tariff_to_dict(self)

    def _precompute(self):
        # The cost of one Wh only depends on (band, time-of-use factor), so all of them are
        # worked out once here and a bill is a few multiplications, whatever its size.
        pct = 0
        pct_vat = 0
        for _, bp, vat in self.percent_levies:
            pct += bp
            if vat:
                pct_vat += bp
        flat = 0  # cents per kWh not tied to the energy rate
        flat_vat = 0
        for _, rate, vat in self.passthrough + self.levies:
            flat += rate
            if vat:
                flat_vat += rate
        v = self.vat_bp
        # Fine units per Wh, per unit of (band rate * factor_bp), split by component.
        self._energy_unit = _BP * _BP
        self._percent_unit = pct * _BP
        self._vat_energy_unit = v * (_BP + pct_vat)
        self._passthrough = _sum_rates(self.passthrough) * _FINE_PER_RATE_WH
        self._levies = _sum_rates(self.levies) * _FINE_PER_RATE_WH
        self._vat_flat = v * flat_vat * _BP * _BP
        per_rate = self._energy_unit + self._percent_unit + self._vat_energy_unit
        fixed = flat * _FINE_PER_RATE_WH + self._vat_flat
        self._factors = [_BP]
        for _, _, factor in self.tou:
            if factor not in self._factors:
                self._factors.append(factor)
        self._edges = [upto for upto, _ in self.bands]
        self._table = [[rate * factor * per_rate + fixed for _, rate in self.bands]
                       for factor in self._factors]

    def factor_bp_at(self, t, tou=True):
        """Time-of-use multiplier on the energy rate at instant t (10000 = none).

        tou=False: the time of day is not known (a clock carried forward after a power cut,
        not yet set by NTP), so no window is guessed at and the plain rate applies."""
        if not self.tou or not tou:
            return _BP
        minute = (t + self.utc_offset_s) % 86400 // 60
        for start, end, factor in self.tou:
            if start < end:
                if start <= minute < end:
                    return factor
            elif minute >= start or minute < end:
                return factor
        return _BP

    def _segments(self, month_wh, wh):
        """(band index, Wh) pieces of wh consumed on top of month_wh, band edges split."""
        pieces = []
        left = wh
        for i in range(len(self._edges)):
            edge = self._edges[i]
            if edge is None:
                n = left
            elif month_wh >= edge:
                continue
            else:
                n = edge - month_wh
                if n > left:
                    n = left
            if n:
                pieces.append((i, n))
            month_wh += n
            left -= n
            if not left:
                break
        return pieces

    def fine_cost(self, month_wh, wh, t, tou=True):
        """Exact cost in fine units of wh Wh at instant t, after month_wh this month."""
        if not wh:
            return 0
        row = self._table[self._factors.index(self.factor_bp_at(t, tou))]
        edges = self._edges
        # The same walk as _segments, without building a list: this runs once a second.
        cost = 0
        for i in range(len(edges)):
            edge = edges[i]
            if edge is None or month_wh + wh <= edge:
                return cost + wh * row[i]
            if month_wh < edge:
                n = edge - month_wh
                cost += n * row[i]
                month_wh = edge
                wh -= n
        return cost

    def fine_cost_of_wh(self, month_wh_before, t):
        return self.fine_cost(month_wh_before, 1, t)

    def wh_within(self, month_wh, budget_fine, t, tou=True):
        """Most Wh whose cost from month_wh at t is at most budget_fine; None if free."""
        row = self._table[self._factors.index(self.factor_bp_at(t, tou))]
        wh = 0
        for i in range(len(self._edges)):
            edge = self._edges[i]
            if edge is not None and month_wh >= edge:
                continue
            per_wh = row[i]
            can = budget_fine // per_wh if per_wh else None
            if edge is None or (can is not None and can < edge - month_wh):
                return None if can is None else wh + can
            n = edge - month_wh
            wh += n
            month_wh += n
            budget_fine -= n * per_wh
        return wh

    def breakdown(self, month_wh, wh, t, tou=True):
        """Cost of wh at t split by component, in fine units (for display and history)."""
        factor = self.factor_bp_at(t, tou)
        rated = 0  # sum of band rate * factor * Wh over the pieces
        for i, n in self._segments(month_wh, wh):
            rated += self.bands[i][1] * factor * n
        parts = {
            "energy": rated * self._energy_unit,
            "percent_levies": rated * self._percent_unit,
            "passthrough": wh * self._passthrough,
            "levies": wh * self._levies,
            "vat": rated * self._vat_energy_unit + wh * self._vat_flat,
        }
        total = 0
        for key in parts:
            total += parts[key]
        parts["total"] = total
        return parts


def _sum_rates(charges):
    total = 0
    for _, rate, _ in charges:
        total += rate
    return total


_STATE_KEYS = ("month_key", "month_wh", "remainder_fine", "total_wh", "total_cents")


def _check_count(value, what):
    if type(value) is not int or value < 0:
        raise BillingError("%s must be a non-negative integer, got %r" % (what, value))


class Biller:
    """Debits whole cents for consumption; cents billed == floor(exact cost) at every step.

    State (month-to-date Wh, sub-cent remainder, totals) survives a reboot through state()
    and Biller(tariff, state). A newer tariff version may be handed over at any time; it
    takes over at its effective_from and keeps the month-to-date and the remainder.
    """

    def __init__(self, tariff, state=None):
        self.tariff = tariff
        self.pending = None  # an accepted newer tariff not yet effective
        self.month_key = 0  # y * 100 + m of the local month month_wh counts; 0 before any bill
        self.month_wh = 0
        self.remainder_fine = 0  # always < FINE_PER_CENT
        self.total_wh = 0
        self.total_cents = 0
        # Local bounds of the last billed month (one that resets nothing), so most bills need
        # no date sums; empty until known.
        self._month_start = 0
        self._month_end = 0
        # The last bill's inputs, kept as plain ints to rebuild its breakdown on demand.
        self._last_tariff = None
        self._last_month_wh = 0
        self._last_wh = 0
        self._last_t = 0
        self._last_tou = True
        if state is not None:
            self._restore(state)

    def _restore(self, state):
        if type(state) is not dict:
            raise BillingError("state must be an object")
        for key in _STATE_KEYS:
            _check_count(state.get(key), key)
        if state["remainder_fine"] >= FINE_PER_CENT:
            raise BillingError("remainder_fine is a whole cent or more")
        self.month_key = state["month_key"]
        self.month_wh = state["month_wh"]
        self.remainder_fine = state["remainder_fine"]
        self.total_wh = state["total_wh"]
        self.total_cents = state["total_cents"]
        pending = state.get("pending")
        if pending is not None:
            self.set_tariff(Tariff.from_dict(pending))

    def state(self):
        out = {"month_key": self.month_key, "month_wh": self.month_wh,
               "remainder_fine": self.remainder_fine, "total_wh": self.total_wh,
               "total_cents": self.total_cents, "tariff_version": self.tariff.version}
        if self.pending is not None:
            out["pending"] = self.pending.to_dict()
        return out

    def set_tariff(self, tariff, t=None):
        """Accept a tariff only if newer than the current and any pending one.

        It takes over at once if already effective at t (by default the last bill's time),
        otherwise at the first bill on or after its effective_from."""
        newest = self.tariff if self.pending is None else self.pending
        if tariff.version <= newest.version:
            return False
        if tariff.effective_from <= (self._last_t if t is None else t):
            self._switch(tariff)
        else:
            self.pending = tariff
        return True

    def _switch(self, tariff):
        if tariff.utc_offset_s != self.tariff.utc_offset_s:
            self._month_end = 0  # cached month bounds are local to the old offset
        self.tariff = tariff
        self.pending = None

    def _tariff_at(self, t):
        pending = self.pending
        if pending is None or t < pending.effective_from:
            return self.tariff
        return pending

    def _opens_month(self, key):
        """True if a bill in local month `key` starts a new month count.

        A later month does. A clock stepping back by one month boundary (a correction around
        midnight on the 1st) keeps counting into the current month rather than opening the
        old month's lifeline band again. Further back than that, the month being counted can
        only have come from a wrong clock in the future (a bad time source, persisted and
        carried forward at every boot): without a restart the bands would stay exhausted
        until the calendar caught up with it, years perhaps."""
        counted = self.month_key
        previous = counted - 89 if counted % 100 == 1 else counted - 1
        return key > counted or key < previous

    def _month_wh_at(self, t, tariff):
        """Month-to-date Wh that a bill at t would start from, without changing anything."""
        if tariff is self.tariff and self._month_start <= t < self._month_end:
            return self.month_wh
        if self._opens_month(month_key(t, tariff.utc_offset_s)):
            return 0
        return self.month_wh

    def _advance(self, t):
        tariff = self._tariff_at(t)
        if tariff is not self.tariff:
            self._switch(tariff)
        if self._month_start <= t < self._month_end:
            return tariff
        offset = tariff.utc_offset_s
        key = month_key(t, offset)
        if self._opens_month(key):
            self.month_key = key
            self.month_wh = 0
        self._month_start = month_start(t, offset)
        self._month_end = next_month_start(t, offset)
        return tariff

    def bill(self, wh, t, tou=True):
        """Debit wh Wh consumed at instant t; returns the whole cents to take off the balance.

        tou=False when the time of day is not known: the plain rate, no time-of-use window
        (see Tariff.factor_bp_at). The month still comes from t, which never runs back."""
        _check_count(wh, "wh")
        _check_count(t, "t")
        tariff = self._advance(t)
        fine = self.remainder_fine + tariff.fine_cost(self.month_wh, wh, t, tou)
        cents = fine // FINE_PER_CENT
        self.remainder_fine = fine - cents * FINE_PER_CENT
        self._last_tariff = tariff
        self._last_month_wh = self.month_wh
        self._last_wh = wh
        self._last_t = t
        self._last_tou = tou
        self.month_wh += wh
        self.total_wh += wh
        self.total_cents += cents
        return cents

    def cents_for(self, wh, t, tou=True):
        """The cents bill(wh, t, tou) would return now, without billing."""
        _check_count(wh, "wh")
        _check_count(t, "t")
        tariff = self._tariff_at(t)
        fine = self.remainder_fine + tariff.fine_cost(self._month_wh_at(t, tariff), wh, t, tou)
        return fine // FINE_PER_CENT

    def wh_for_cents(self, cents, t, tou=True):
        """Most Wh that bill(wh, t, tou) could debit for at most cents now; None if free."""
        _check_count(cents, "cents")
        _check_count(t, "t")
        tariff = self._tariff_at(t)
        # floor((rest + cost) / F) <= cents  <=>  cost <= (cents + 1) * F - rest - 1
        budget = (cents + 1) * FINE_PER_CENT - self.remainder_fine - 1
        return tariff.wh_within(self._month_wh_at(t, tariff), budget, t, tou)

    def last_breakdown(self):
        """The last bill split into energy, passthrough, levies, percent_levies, vat, total."""
        tariff = self._last_tariff
        if tariff is None:
            return None
        return tariff.breakdown(self._last_month_wh, self._last_wh, self._last_t,
                                self._last_tou)
