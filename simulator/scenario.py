# Scenario files (YAML or JSON): what happens around one simulated meter, and when. The tariff,
# the opening balance, the load, power cuts, WiFi outages, recharges and sensor faults at given
# virtual times, the sensor kind and the run's length; see docs/simulator.md for every key.
import json
import os
import re

from simulator.devices.prng import Prng
from simulator.world import Household, SteadyLoad, World

_UNITS = {"ms": 1, "s": 1000, "m": 60000, "min": 60000, "h": 3600000, "d": 86400000}
PZEM_FAULTS = ("crc", "timeout", "short", "garbage", "restart")
OTHER_FAULTS = ("hang", "bypass")
SCENARIO_KEYS = ("name", "description", "duration", "seed", "sensor", "start_balance_kes",
                 "start_balance_cents", "tariff", "load", "power_cuts", "wifi_outages",
                 "recharges", "faults", "config", "rig")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message says which key and why."""


def duration_ms(value, where="duration"):
    """90 (seconds), "90s", "15m", "2h", "1.5d", "250ms" -> milliseconds."""
    if isinstance(value, bool):
        raise ScenarioError("%s: %r is not a duration" % (where, value))
    if isinstance(value, (int, float)):
        ms = value * 1000
    elif isinstance(value, str):
        ms = _parse_duration_text(value.strip().lower())
        if ms is None:
            raise ScenarioError("%s: %r is not a duration (try 90s, 15m, 2h, 2d8h, 1h30m)"
                                % (where, value))
    else:
        raise ScenarioError("%s: %r is not a duration" % (where, value))
    if ms < 0:
        raise ScenarioError("%s: %r is negative" % (where, value))
    return int(round(ms))


_PART = re.compile(r"(\d+(?:\.\d*)?)\s*(ms|min|s|m|h|d)")


def _parse_duration_text(text):
    """"1h30m", "2d8h", "250ms", "90" (seconds) -> ms, or None if it is not that."""
    try:
        return float(text) * 1000
    except ValueError:
        pass
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total if text else None


def _cents(item, where, kes_key="kes", cents_key="cents"):
    if cents_key in item:
        value = item[cents_key]
        if type(value) is not int:
            raise ScenarioError("%s: %s must be an integer" % (where, cents_key))
        return value
    if kes_key in item:
        value = item[kes_key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError("%s: %s must be a number" % (where, kes_key))
        return int(round(value * 100))
    raise ScenarioError("%s: give %s or %s" % (where, kes_key, cents_key))


def _list(d, key):
    value = d.get(key) or []
    if isinstance(value, dict):
        return value  # a generator spec such as {random: 20, ...}
    if not isinstance(value, list):
        raise ScenarioError("%s must be a list" % key)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ScenarioError("%s[%d] must be a mapping" % (key, i))
    return value


class Scenario:
    """A parsed scenario. make_meter() builds one meter living it; apply() schedules it."""

    def __init__(self, d=None, source=None):
        d = dict(d or {})
        for key in d:
            if key not in SCENARIO_KEYS:
                raise ScenarioError("unknown key %r (known: %s)" % (key, ", ".join(SCENARIO_KEYS)))
        self.source = source
        self.name = str(d.get("name") or (os.path.basename(source) if source else "default"))
        self.description = str(d.get("description") or "")
        self.duration_ms = duration_ms(d.get("duration", "1h"))
        self.seed = d.get("seed", 1)
        if type(self.seed) is not int:
            raise ScenarioError("seed must be an integer")
        self.sensor = d.get("sensor", "pzem")
        if self.sensor not in ("pzem", "s0"):
            raise ScenarioError("sensor must be pzem or s0, not %r" % (self.sensor,))
        self.config = dict(d.get("config") or {})
        self.rig = dict(d.get("rig") or {})
        self.start_balance_cents = None
        if "start_balance_kes" in d or "start_balance_cents" in d:
            self.start_balance_cents = _cents(d, "start balance", "start_balance_kes",
                                              "start_balance_cents")
        self.tariff = d.get("tariff")
        if self.tariff is not None:
            self._check_tariff(self.tariff)
        self.load = self._parse_load(d.get("load") or {"kind": "household"})
        self.power_cuts = self._parse_spans(d, "power_cuts")
        self.wifi_outages = self._parse_spans(d, "wifi_outages")
        self.recharges = [(duration_ms(r.get("at", 0), "recharges[%d].at" % i),
                           _cents(r, "recharges[%d]" % i), r.get("id"))
                          for i, r in enumerate(_list(d, "recharges"))]
        self.faults = self._parse_faults(_list(d, "faults"))

    @classmethod
    def from_file(cls, path):
        try:
            with open(path) as f:
                text = f.read()
        except OSError as exc:
            raise ScenarioError("cannot read %s: %s" % (path, exc))
        except UnicodeDecodeError:
            raise ScenarioError("%s: not UTF-8 text" % path)
        try:
            if path.endswith(".json"):
                d = json.loads(text)
            else:
                import yaml
                d = yaml.safe_load(text)
        except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's parents
            raise ScenarioError("%s: not valid YAML/JSON: %s" % (path, exc))
        except Exception as exc:  # noqa: BLE001 - yaml.YAMLError is not a ValueError
            raise ScenarioError("%s: not valid YAML/JSON: %s" % (path, exc))
        if not isinstance(d, dict):
            raise ScenarioError("%s: a scenario is a mapping of keys" % path)
        return cls(d, source=path)

    # --- parsing helpers ---------------------------------------------------------------------

    @staticmethod
    def _check_tariff(tariff):
        import simulator
        simulator.install()
        from meter.tariff import Tariff, TariffError
        try:
            Tariff.from_dict(tariff)
        except TariffError as exc:
            raise ScenarioError("tariff: %s" % exc)

    @staticmethod
    def _parse_load(spec):
        if not isinstance(spec, dict):
            raise ScenarioError("load must be a mapping")
        kind = spec.get("kind", "steady" if "watts" in spec else "household")
        if kind == "steady":
            watts = spec.get("watts", 1000)
            if isinstance(watts, bool) or not isinstance(watts, (int, float)) or watts < 0:
                raise ScenarioError("load.watts must be a non-negative number")
            return {"kind": "steady", "watts": watts, "pf": spec.get("pf_centi", 100)}
        if kind == "household":
            out = {"kind": "household"}
            for key in ("base_w", "constant_w", "pf_centi", "jitter_pct", "seed"):
                if key in spec:
                    if type(spec[key]) is not int:
                        raise ScenarioError("load.%s must be an integer" % key)
                    out[key] = spec[key]
            return out
        raise ScenarioError("load.kind must be steady or household, not %r" % (kind,))

    def _parse_spans(self, d, key):
        """A list of {at, for} (for omitted: until the end), or {random: N, min, max}."""
        raw = _list(d, key)
        if isinstance(raw, dict):
            if "random" not in raw:
                raise ScenarioError("%s: a mapping must say random: N" % key)
            return {"random": int(raw["random"]),
                    "min": duration_ms(raw.get("min", "10s"), key + ".min"),
                    "max": duration_ms(raw.get("max", "10m"), key + ".max")}
        spans = []
        for i, item in enumerate(raw):
            at = duration_ms(item.get("at", 0), "%s[%d].at" % (key, i))
            length = item.get("for")
            spans.append((at, None if length is None else duration_ms(length, "%s[%d].for"
                                                                       % (key, i))))
        return spans

    @staticmethod
    def _parse_faults(raw):
        if isinstance(raw, dict):
            raise ScenarioError("faults must be a list")
        faults = []
        for i, item in enumerate(raw):
            where = "faults[%d]" % i
            kind = item.get("kind")
            if kind not in PZEM_FAULTS + OTHER_FAULTS:
                raise ScenarioError("%s: kind must be one of %s" % (
                    where, ", ".join(PZEM_FAULTS + OTHER_FAULTS)))
            fault = {"kind": kind, "at": duration_ms(item.get("at", 0), where + ".at")}
            if "per_million" in item:
                if kind not in PZEM_FAULTS or type(item["per_million"]) is not int:
                    raise ScenarioError("%s: per_million is an integer rate of a PZEM fault"
                                        % where)
                fault["per_million"] = item["per_million"]
            fault["count"] = int(item.get("count", 1))
            if "for" in item:
                fault["for"] = duration_ms(item["for"], where + ".for")
            faults.append(fault)
        return faults

    # --- building and scheduling -------------------------------------------------------------

    def firmware_config(self, sensor=None):
        cfg = dict(self.config)
        cfg["sensor"] = sensor or self.sensor
        if self.start_balance_cents is not None:
            cfg["initial_balance_cents"] = self.start_balance_cents
        if self.tariff is not None:
            cfg["tariff"] = self.tariff
        return cfg

    def make_load(self, seed):
        spec = self.load
        if spec["kind"] == "steady":
            return SteadyLoad(spec["watts"], spec["pf"])
        kwargs = {k: v for k, v in spec.items() if k not in ("kind", "seed")}
        return Household(seed=spec.get("seed", seed), **kwargs)

    def make_meter(self, clock, flash_dir, meter_id=None, seed=None, sensor=None, cloud_url=None):
        """A SimulatedMeter living this scenario (not started: call meter.start(loop), then
        apply(meter) to schedule the timed events)."""
        from simulator.meter import SimulatedMeter
        seed = self.seed if seed is None else seed
        world = World(clock, self.make_load(seed), seed=seed)
        return SimulatedMeter(self.firmware_config(sensor), world, flash_dir, clock,
                              meter_id=meter_id, seed=seed, cloud_url=cloud_url, rig=self.rig)

    def spans(self, spec, seed, salt):
        """The concrete (start ms, length ms or None) list, random ones drawn per meter."""
        if not isinstance(spec, dict):
            return list(spec)
        rng = Prng(seed * 7919 + salt)
        out = []
        for _ in range(spec["random"]):
            start = rng.below(max(1, self.duration_ms))
            out.append((start, rng.between(spec["min"], max(spec["min"], spec["max"]))))
        return sorted(out)

    def apply(self, meter, loop, origin_ms=None, seed=None):
        """Schedule the scenario's events on a started meter, times counted from origin_ms."""
        seed = self.seed if seed is None else seed
        t0 = meter.clock.now_ms() if origin_ms is None else origin_ms
        for start, length in self.spans(self.power_cuts, seed, 1):
            meter.world.schedule_outage(t0 + start, length)
        for start, length in self.spans(self.wifi_outages, seed, 2):
            meter.board.ap.schedule_outage(t0 + start, length)
        meter.board.kick()
        for at, cents, ref in self.recharges:
            _at(loop, meter, t0 + at, meter.send_recharge, cents, ref)
        for fault in self.faults:
            _at(loop, meter, t0 + fault["at"], inject_fault, meter, fault)


def _at(loop, meter, t_ms, fn, *args):
    delay = max(0, t_ms - meter.clock.now_ms()) / 1000.0
    return loop.call_later(delay, fn, *args)


def inject_fault(meter, fault):
    """One scenario fault, now: PZEM wire faults, a firmware hang, a bypass of the relay."""
    kind = fault["kind"]
    if kind in PZEM_FAULTS:
        if "per_million" in fault:
            meter.board.pzem.set_fault_rate(kind, fault["per_million"])
        else:  # a restart too happens at a request, as the module's own reset would
            meter.board.pzem.inject(kind, fault["count"])
    elif kind == "hang":
        meter.hang()
    elif kind == "bypass":
        meter.world.set_bypass(True)
        if fault.get("for"):
            _at(meter._loop, meter, meter.clock.now_ms() + fault["for"], _end_bypass, meter)
    meter.board.kick()  # the S0 output's next pulse may have moved
    meter.board.log("fault injected: %s" % kind)


def _end_bypass(meter):
    meter.world.set_bypass(False)
    meter.board.kick()


def run_scenario(scenario, flash_dir, seconds=None, sensor=None, seed=None):
    """Run one meter through a scenario on its own fast-forward clock; its summary row.

    A plain function of picklable arguments, so long runs can go to worker processes."""
    import asyncio
    from simulator.clock import VirtualClock
    from simulator.seam import install
    from simulator.meter import meter_summary
    clock = install(VirtualClock())
    meter = scenario.make_meter(clock, flash_dir, seed=seed, sensor=sensor)
    seconds = scenario.duration_ms / 1000.0 if seconds is None else seconds

    async def go():
        loop = asyncio.get_running_loop()
        meter.start(loop)
        scenario.apply(meter, loop, seed=seed)
        await asyncio.sleep(seconds)
        meter.stop()

    clock.run(go())
    row = meter_summary(meter)
    row["virtual_s"] = clock.now_ms() / 1000.0
    row["outages"] = len(meter.world.outages)
    return row
