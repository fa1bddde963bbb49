# The physical world around one meter: the mains (voltage, frequency, power cuts), the
# household's load (seeded daily curve, appliances, constant loads), the relay's effect, and the
# true energy that flowed, integrated exactly in integers so billing can be checked to the mWh.
try:
    from simulator.devices.outages import Outages
    from simulator.devices.prng import Prng
except ImportError:  # MicroPython: simulator/ itself is on MICROPYPATH
    from devices.outages import Outages
    from devices.prng import Prng

DAY_MS = 86400000
HOUR_MS = 3600000
_SLOT_MS = 900000  # the daily curve moves in 15-minute steps
_MWMS_PER_MWH = 3600000  # 1 mWh = 3.6 J = 3.6e6 mW*ms
_MWMS_PER_WH = 3600000000
KENYA_UTC_OFFSET_S = 3 * 3600

# Share of the household's base load per local hour: low at night, a morning peak around
# 07:00 and a larger evening peak 19:00-21:00 (cooking, lights, TV).
DAILY_SHAPE = (15, 15, 15, 15, 15, 30, 80, 100, 50, 30, 30, 30,
               30, 30, 30, 30, 35, 50, 90, 100, 100, 80, 45, 20)

# name, watts, uses per day, minutes per use, local hours a use may start in
DEFAULT_APPLIANCES = (
    ("kettle", 2000, 2, 4, (6, 7, 18, 19)),
    ("iron", 1000, 1, 20, (7, 19, 20)),
    ("tv", 80, 1, 180, (18, 19)),
    ("fridge", 120, 24, 20, tuple(range(24))),
)


class WorldError(Exception):
    pass


class SteadyLoad:
    """A constant load: the simplest profile, for tests that predict minutes exactly."""

    def __init__(self, watts, pf_centi=100):
        self.power = int(watts * 1000)
        self.pf_centi = pf_centi

    def power_mw(self, local_ms):
        return self.power

    def next_change(self, local_ms):
        return None


class Household:
    """A seeded household: the same seed gives the same day, whatever order days are asked."""

    def __init__(self, seed=1, base_w=400, constant_w=15, appliances=DEFAULT_APPLIANCES,
                 pf_centi=92, jitter_pct=20):
        self.seed = seed
        self.base_w = base_w
        self.constant_w = constant_w
        self.appliances = appliances
        self.pf_centi = pf_centi
        self.jitter_pct = jitter_pct
        self._days = {}
        self._last = None

    def day(self, day_index):
        """[(start ms within the day, power mW)], sorted, first at 0."""
        seg = self._days.get(day_index)
        if seg is None:
            # Only yesterday can still be asked for (a step across midnight): older days go, so
            # the simulator's own memory stays flat, which a heap-capped bench run counts.
            for old in [d for d in self._days if d < day_index - 1]:
                del self._days[old]
            seg = self._build_day(day_index)
            self._days[day_index] = seg
        return seg

    def _build_day(self, day_index):
        rng = Prng(self.seed * 100003 + day_index)
        changes = {}  # ms -> delta mW

        def add(start, end, mw):
            start = max(0, min(DAY_MS, start))
            end = max(0, min(DAY_MS, end))
            if end > start and mw:
                changes[start] = changes.get(start, 0) + mw
                changes[end] = changes.get(end, 0) - mw

        add(0, DAY_MS, self.constant_w * 1000)
        for slot in range(DAY_MS // _SLOT_MS):
            share = DAILY_SHAPE[slot * _SLOT_MS // HOUR_MS]
            jitter = 100 + rng.between(-self.jitter_pct, self.jitter_pct)
            add(slot * _SLOT_MS, (slot + 1) * _SLOT_MS, self.base_w * share * jitter // 10)
        for name, watts, uses, minutes, hours in self.appliances:
            for _ in range(uses):
                start = hours[rng.below(len(hours))] * HOUR_MS + rng.below(HOUR_MS)
                add(start, start + minutes * 60000, watts * 1000)
        out = []
        level = 0
        for t in sorted(changes):
            level += changes[t]
            if t >= DAY_MS:
                break  # what ends at midnight is the next day's business
            if out and out[-1][0] == t:
                out[-1] = (t, level)
            elif not out or out[-1][1] != level:
                out.append((t, level))
        if not out or out[0][0] != 0:
            out.insert(0, (0, 0))
        return out

    def _locate(self, local_ms):
        hit = self._last
        if hit is not None and hit[0] <= local_ms < hit[1]:
            return hit[2], hit[3], hit[4]  # most queries fall in the segment asked last
        day_index = local_ms // DAY_MS
        seg = self.day(day_index)
        t = local_ms - day_index * DAY_MS
        lo, hi = 0, len(seg) - 1
        while lo < hi:  # the last segment starting at or before t
            mid = (lo + hi + 1) // 2
            if seg[mid][0] <= t:
                lo = mid
            else:
                hi = mid - 1
        base = day_index * DAY_MS
        end = base + (seg[lo + 1][0] if lo + 1 < len(seg) else DAY_MS)
        self._last = (base + seg[lo][0], end, day_index, seg, lo)
        return day_index, seg, lo

    def power_mw(self, local_ms):
        _, seg, i = self._locate(local_ms)
        return seg[i][1]

    def next_change(self, local_ms):
        day_index, seg, i = self._locate(local_ms)
        if i + 1 < len(seg):
            return day_index * DAY_MS + seg[i + 1][0]
        return (day_index + 1) * DAY_MS


class World:
    """One meter's surroundings. `clock` gives now_ms() (virtual monotonic) and epoch_ms()."""

    def __init__(self, clock, load=None, seed=1, nominal_dv=2400, utc_offset_s=KENYA_UTC_OFFSET_S):
        self.clock = clock
        self.load = load if load is not None else Household(seed)
        self.seed = seed
        self.nominal_dv = nominal_dv
        self.utc_offset_ms = utc_offset_s * 1000
        self.relay_closed = True
        self.bypass = False  # tamper: the load draws around an open relay
        self.extra_mw = 0  # a load switched on by hand (the CLI's keys)
        self.outages = Outages()  # power cuts, virtual monotonic time
        self._t = clock.now_ms()
        self.metered_total = 0  # true energy through the meter, mW*ms
        self.unpowered_ms = 0
        self._dv_slot = self._hz_minute = None  # caches: values change per 10 min / per minute
        self._piece = None  # see _piece_at

    # --- time -----------------------------------------------------------------------------

    def now_ms(self):
        return self.clock.now_ms()

    def _local(self, t):
        return self.clock.epoch_at(t) + self.utc_offset_ms

    # --- the mains ------------------------------------------------------------------------

    def mains_on(self, t=None):
        if not self.outages.spans:
            return True  # the usual case, asked several times a tick by every meter
        return not self.outages.down(self.now_ms() if t is None else t)

    def schedule_outage(self, start_ms, duration_ms=None):
        """A power cut from start_ms (virtual) for duration_ms, or until restore_power()."""
        self.sync()
        self.outages.schedule(start_ms, duration_ms)

    def cut_power(self, duration_ms=None):
        self.schedule_outage(self.now_ms(), duration_ms)

    def restore_power(self):
        self.sync()
        self.outages.restore(self.now_ms())
        self._piece = None  # a cut's end moved in place: the span count does not show it

    def next_event_ms(self):
        """The next virtual instant the mains or the load changes (for the board's scheduler)."""
        now = self.now_ms()
        best = self.outages.next_change(now)
        nxt = self.load.next_change(self._local(now))
        if nxt is not None:
            nxt = nxt - self._local(now) + now
            if best is None or nxt < best:
                best = nxt
        return best

    def voltage_dv(self, t=None):
        t = self.now_ms() if t is None else t
        if not self.mains_on(t):
            return 0
        slot = self._local(t) // 600000
        if slot != self._dv_slot:
            self._dv_slot = slot
            self._dv = self.nominal_dv + Prng(self.seed * 7919 + slot).between(-80, 60)
        return self._dv

    def frequency_dhz(self, t=None):
        t = self.now_ms() if t is None else t
        if not self.mains_on(t):
            return 0
        minute = self._local(t) // 60000
        if minute != self._hz_minute:
            self._hz_minute = minute
            self._dhz = 500 + Prng(self.seed * 104729 + minute).between(-2, 2)
        return self._dhz

    # --- the load and the relay -------------------------------------------------------------

    def set_relay(self, closed):
        closed = bool(closed)
        if closed != self.relay_closed:
            self.sync()
            self.relay_closed = closed

    def set_bypass(self, on):
        self.sync()
        self.bypass = bool(on)

    def set_extra_load(self, watts):
        self.sync()
        self.extra_mw = int(watts * 1000)

    def demand_mw(self, t=None):
        """What the household would draw right now with the relay closed."""
        t = self.now_ms() if t is None else t
        return self.load.power_mw(self._local(t)) + self.extra_mw

    def _metered_power_at(self, t):
        if not self.mains_on(t) or not (self.relay_closed or self.bypass):
            return 0
        return self.demand_mw(t)

    def metered_power_mw(self):
        self.sync()
        return self._piece_at(self._t)[2]

    # --- exact energy -----------------------------------------------------------------------

    def sync(self):
        """Integrate the power drawn from the last sync up to now, piece by constant piece."""
        now = self.now_ms()
        t = self._t
        if now <= t:
            return
        while t < now:
            piece = self._piece_at(t)
            end = now if piece[1] is None else min(now, piece[1])
            if not piece[3]:
                self.unpowered_ms += end - t
            self.metered_total += piece[2] * (end - t)
            t = end
        self._t = now

    def _piece_at(self, t):
        """(start, end or None, metered mW, mains on, ...) of the stretch of constant power
        around t. Every meter syncs several times a tick, nearly always inside the stretch it
        asked about last, so that one is kept while what it was made from is unchanged."""
        p = self._piece
        if (p is not None and p[0] <= t and (p[1] is None or t < p[1]) and p[4] is self.load
                and p[5] == self.relay_closed and p[6] == self.bypass
                and p[7] == self.extra_mw and p[8] == len(self.outages.spans)):
            return p
        end = None
        local = self._local(t)
        nxt = self.load.next_change(local)
        if nxt is not None:
            end = nxt - local + t
        m = self.outages.next_change(t)
        if m is not None and (end is None or m < end):
            end = m
        p = (t, end, self._metered_power_at(t), self.mains_on(t), self.load, self.relay_closed,
             self.bypass, self.extra_mw, len(self.outages.spans))
        self._piece = p
        return p

    def metered_mwms(self):
        self.sync()
        return self.metered_total

    def energy_mwh(self):
        return self.metered_mwms() // _MWMS_PER_MWH

    def energy_wh(self):
        return self.metered_mwms() // _MWMS_PER_WH

    def sensor_reading(self):
        """(mains_on, voltage 0.1 V, current mA, power 0.1 W, energy mWh, frequency 0.1 Hz,
        power factor 0.01): what a sensor on this meter's line would see now."""
        self.sync()
        t = self._t
        piece = self._piece_at(t)
        if not piece[3]:
            return (False, 0, 0, 0, self.metered_total // _MWMS_PER_MWH, 0, 0)
        dv = self.voltage_dv(t)
        mw = piece[2]
        pf = getattr(self.load, "pf_centi", 100) if mw else 0
        ma = mw * 1000 // (dv * pf) if mw and pf else 0
        return (True, dv, ma, mw // 100, self.metered_total // _MWMS_PER_MWH,
                self.frequency_dhz(t), pf)
