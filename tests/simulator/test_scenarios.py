"""The real firmware on simulated meters, on the virtual clock: credit runs out on time, power
cuts (mid-write included) lose no credit, sensor faults never corrupt billing, the watchdog
brings a hung meter back, and billed energy tracks the world's true energy over days."""
import asyncio
import concurrent.futures
import glob
import multiprocessing
import os
import random

import pytest

import simulator
from simulator.devices.flash import MODES
from simulator.seam import ROOT
from simulator.scenario import Scenario, ScenarioError, run_scenario
from simulator.world import SteadyLoad

simulator.install()
from meter.config import DEFAULTS  # noqa: E402  (the firmware package is on the path now)
from meter.tariff import Biller, Tariff  # noqa: E402

RTC_AFTER_POWER_ON = 946684800  # no backup battery: the RTC restarts at 2000-01-01T00:00Z
# A Kenyan-shaped tariff (lifeline band, pass-through, levy, VAT) so the prediction is not a
# round number: KES 50 buys a whole number of Wh only by accident.
KENYA_TARIFF = {"version": 3, "bands": [{"upto_kwh": 30, "rate": 1273}, {"rate": 2023}],
                "passthrough": [{"name": "fuel", "rate": 365}],
                "levies": [{"name": "erc", "rate": 8}], "vat_bp": 1600}
PERSIST_S = DEFAULTS["persist_interval_s"]
TICK_S = DEFAULTS["tick_ms"] / 1000.0


def relay_spy(meter, clock):
    """[(virtual ms, closed)] for every change of the relay contacts."""
    changes = []
    world = meter.world
    real = world.set_relay

    def spy(closed):
        if bool(closed) != world.relay_closed:
            changes.append((clock.now_ms(), bool(closed)))
        real(closed)

    world.set_relay = spy
    return changes


def switch_off_load(meter):
    """The household switches everything off, so the last reading sees the final counter."""
    meter.world.sync()
    meter.world.load = SteadyLoad(0)
    meter.board.kick()


def check_books(app, opening_cents):
    """The ledger, the biller and the energy account agree with each other."""
    ledger = app.ledger
    assert ledger.balance == opening_cents + ledger.total_credited - ledger.total_debited
    assert ledger.total_debited == app.biller.total_cents
    assert app.biller.total_wh == app.energy.total_wh
    assert app.energy.jumps == 0


# --- credit runs out at the predicted minute ------------------------------------------------

def test_kes50_at_1kw_disconnects_at_the_predicted_minute_and_a_recharge_reconnects(
        clock, tmp_path):
    biller = Biller(Tariff.from_dict(KENYA_TARIFF))
    wh = biller.wh_for_cents(5000, RTC_AFTER_POWER_ON)  # the most Wh KES 50 pays for
    if biller.cents_for(wh, RTC_AFTER_POWER_ON) < 5000:
        wh += 1  # the policy opens once the balance is <= 0: one Wh more
    cut_ms = wh * 3600  # a steady 1 kW reaches wh Wh after wh * 3.6 s
    predicted_minute = cut_ms // 60000
    assert (cut_ms + TICK_S * 1000) // 60000 == predicted_minute  # the tick cannot straddle

    scenario = Scenario({"start_balance_kes": 50, "load": {"watts": 1000},
                         "tariff": KENYA_TARIFF, "recharges": [{"at": "3h", "kes": 100}]})
    meter = scenario.make_meter(clock, str(tmp_path / "m"))
    changes = relay_spy(meter, clock)

    async def go():
        loop = asyncio.get_running_loop()
        meter.start(loop)
        scenario.apply(meter, loop)
        await asyncio.sleep(3 * 3600 + 10)
        meter.stop()

    clock.run(go())
    assert [closed for _, closed in changes] == [True, False, True]
    opened_ms = changes[1][0]
    assert opened_ms // 60000 == predicted_minute
    assert cut_ms <= opened_ms < cut_ms + TICK_S * 1000 + 100  # at the first tick after it
    assert changes[2][0] == 3 * 3600 * 1000  # the recharge closes the relay at once
    app = meter.last_app
    assert app.ledger.total_credited == 10000 and app.snapshot["relay_closed"]
    check_books(app, 5000)
    assert "relay opened: no_credit" in " ".join(line for _, line in meter.log)


# --- power cuts -------------------------------------------------------------------------------

def s0_unbilled_bound_wh(watts):
    # The S0 counter lives in RAM: a cut loses what was counted since the last persisted
    # state, at most persist_interval_s plus one tick of consumption, plus the sub-Wh rest.
    return watts * (PERSIST_S + TICK_S) / 3600.0 + 1


@pytest.mark.parametrize("sensor", ["pzem", "s0"])
def test_200_power_cuts_at_random_instants_lose_no_credit(clock, tmp_path, sensor):
    rng = random.Random(20260101 if sensor == "pzem" else 20260102)
    scenario = Scenario({"start_balance_kes": 10000, "load": {"watts": 1000}, "sensor": sensor,
                         "tariff": KENYA_TARIFF})
    meter = scenario.make_meter(clock, str(tmp_path / "m"))
    flash = meter.board.flash
    world = meter.world
    sent = []
    stats = {"plain": 0, "mid_write": 0}

    def cut_now(ms):
        world.cut_power(ms)
        meter.board.poll()  # the board sees its mains go at this very instant

    async def wait_for_power():
        while not meter.board.powered or meter.app is None:
            await asyncio.sleep(0.5)

    async def go():
        meter.start(asyncio.get_running_loop())
        for i in range(200):
            await wait_for_power()
            await asyncio.sleep(rng.uniform(0.01, 90.0))
            if i % 7 == 3:
                sent.append(rng.randint(1, 5000))
                meter.send_recharge(sent[-1])
            if meter.app is None:
                continue  # a mid-write cut already took the power
            outage = rng.randint(200, 120000)
            if i % 2:
                cuts = flash.cuts
                # Power fails part-way through the next flash write, whatever it is.
                flash.arm_power_cut(rng.randint(0, 300), on_cut=lambda: cut_now(outage),
                                    mode=rng.choice(MODES))
                while flash.cuts == cuts:
                    await asyncio.sleep(1)
                stats["mid_write"] += 1
            else:
                cut_now(outage)
                stats["plain"] += 1
        await wait_for_power()
        switch_off_load(meter)
        await asyncio.sleep(30)  # recharges re-sent, last readings taken
        meter.stop()

    clock.run(go())
    assert stats["plain"] + stats["mid_write"] >= 200 and stats["mid_write"] >= 100
    assert meter.boots == 201 and not meter.crashes
    app = meter.last_app
    assert meter.outbox == []
    assert app.ledger.total_credited == sum(sent)  # every credit, once
    check_books(app, 1000000)
    unbilled = world.energy_wh() - app.energy.total_wh
    if sensor == "pzem":
        assert unbilled == 0  # the module kept counting: the first reading after boot bills it
    else:
        assert 0 <= unbilled <= 200 * s0_unbilled_bound_wh(1000), unbilled
        print("S0: %d Wh unbilled after 200 cuts (bound %.0f)" % (
            unbilled, 200 * s0_unbilled_bound_wh(1000)))


# --- sensor faults ------------------------------------------------------------------------------

def test_pzem_crc_timeout_short_garbage_and_counter_restarts_never_corrupt_billing(
        clock, tmp_path):
    faults = [{"kind": kind, "per_million": rate} for kind, rate in
              (("crc", 60000), ("timeout", 60000), ("short", 40000), ("garbage", 40000))]
    faults += [{"kind": "restart", "at": "%dm" % m} for m in range(7, 360, 10)]
    scenario = Scenario({"start_balance_kes": 10000, "load": {"watts": 1500},
                         "faults": faults, "duration": "6h"})
    meter = scenario.make_meter(clock, str(tmp_path / "m"))

    async def go():
        loop = asyncio.get_running_loop()
        meter.start(loop)
        scenario.apply(meter, loop)
        await asyncio.sleep(6 * 3600)
        switch_off_load(meter)
        await asyncio.sleep(5)
        meter.stop()

    clock.run(go())
    app = meter.last_app
    applied = meter.board.pzem.faults_applied
    assert set(applied) == {"crc", "timeout", "short", "garbage", "restart"}
    assert app.energy.failures > 0 and app.energy.restarts == applied["restart"] == 36
    check_books(app, 1000000)
    # A restart loses only what flowed between the last good reading and the restart:
    # retries make a run of failed readings rare; 10 s of 1.5 kW plus the Wh rest is generous.
    unbilled = meter.world.energy_wh() - app.energy.total_wh
    assert 0 <= unbilled <= applied["restart"] * (1500 * 10 / 3600.0 + 1)
    assert not meter.crashes and meter.boots == 1


# --- watchdog -------------------------------------------------------------------------------

def test_a_hung_firmware_is_reset_by_the_watchdog_and_comes_back_with_its_state(clock, tmp_path):
    import machine
    scenario = Scenario({"start_balance_kes": 1000, "load": {"watts": 800},
                         "recharges": [{"at": "10m", "kes": 20}],
                         "faults": [{"kind": "hang", "at": "30m"}]})
    meter = scenario.make_meter(clock, str(tmp_path / "m"))
    seen = {}

    async def go():
        loop = asyncio.get_running_loop()
        meter.start(loop)
        scenario.apply(meter, loop)
        await asyncio.sleep(30 * 60 + 1)
        seen["hung"] = (meter.app, meter.last_app.ledger.balance, meter.boots)
        await asyncio.sleep(3600)
        switch_off_load(meter)
        await asyncio.sleep(5)
        meter.stop()

    clock.run(go())
    assert seen["hung"][0] is None and seen["hung"][2] == 1  # hung, not yet reset
    assert meter.boots == 2 and meter.hangs == 1 and not meter.crashes
    assert meter.board.reset_cause == machine.WDT_RESET
    app = meter.last_app
    assert app.reset_cause == machine.WDT_RESET
    reboot_ms = [t for t, text in meter.board.events if "reset" in text and "(3)" in text]
    assert reboot_ms and 30 * 60000 < reboot_ms[0] <= 30 * 60000 + DEFAULTS["watchdog_ms"]
    assert app.ledger.total_credited == 2000  # the recharge before the hang survived
    check_books(app, 100000)
    assert app.energy.total_wh == meter.world.energy_wh()  # nothing lost across the reset


# --- scenario files ---------------------------------------------------------------------------

SCENARIO_FILES = sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.yaml")))


def test_shipped_scenarios_exist():
    assert len(SCENARIO_FILES) >= 4


def _first_seconds(scenario):
    """Four hours, or 20 minutes on a meter with a keypad: its panel polls every 15 ms, so
    each simulated hour is 240,000 more turns of the event loop (`make sim` runs it whole)."""
    keypad = "keypad_rows" in (scenario.config.get("pins") or {})
    return min(scenario.duration_ms / 1000, 1200 if keypad else 4 * 3600)


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=os.path.basename)
def test_shipped_scenarios_run_their_first_hours(path, tmp_path):
    scenario = Scenario.from_file(path)
    row = run_scenario(scenario, str(tmp_path / "m"), seconds=_first_seconds(scenario))
    assert row["crashes"] == 0 and row["billed_wh"] <= row["true_wh"]


@pytest.mark.parametrize("bad, message", [
    ({"durationn": "1h"}, "unknown key"),
    ({"duration": "soon"}, "not a duration"),
    ({"sensor": "ct"}, "sensor"),
    ({"tariff": {"version": 1, "bands": []}}, "tariff"),
    ({"load": {"kind": "steady", "watts": -5}}, "watts"),
    ({"recharges": [{"at": "1h"}]}, "kes"),
    ({"faults": [{"kind": "melt"}]}, "kind"),
    ({"power_cuts": "often"}, "list"),
])
def test_bad_scenarios_are_refused_with_the_reason(bad, message):
    with pytest.raises(ScenarioError, match=message):
        Scenario(bad)


def test_garbage_scenario_file_is_a_scenario_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\x00\xff: [unclosed\n\t- {")
    with pytest.raises(ScenarioError):
        Scenario.from_file(str(path))


# --- billed against true energy over days ----------------------------------------------------

SOAK_DAYS = float(os.environ.get("MITA_SOAK_DAYS", "2"))


def soak_scenario(sensor):
    # A household with a power cut every other day on average and a healthy balance.
    return Scenario({"name": "soak-" + sensor, "sensor": sensor, "seed": 7,
                     "start_balance_kes": 100000, "load": {"kind": "household"},
                     "power_cuts": {"random": max(1, int(SOAK_DAYS // 2)), "min": "1m",
                                    "max": "2h"},
                     "duration": "%gd" % SOAK_DAYS})


def test_billed_energy_matches_true_energy_over_days_on_pzem_and_s0(tmp_path):
    """MITA_SOAK_DAYS days (2 by default to keep the suite quick; `make soak` runs 30) on both
    sensor paths at once, one worker process each."""
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        futures = {sensor: pool.submit(run_scenario, soak_scenario(sensor),
                                       str(tmp_path / sensor)) for sensor in ("pzem", "s0")}
        rows = {sensor: f.result() for sensor, f in futures.items()}
    for sensor, row in rows.items():
        assert row["virtual_s"] >= SOAK_DAYS * 86400
        assert row["true_wh"] > 4000 * SOAK_DAYS, row  # a household uses kWh a day
        error = abs(row["billed_wh"] - row["true_wh"]) / row["true_wh"]
        print("%s, %g days: true %d Wh, billed %d Wh, error %.4f %%, %d power cuts" % (
            sensor, SOAK_DAYS, row["true_wh"], row["billed_wh"], 100 * error, row["outages"]))
        assert error <= 0.001, (sensor, row)
        assert row["crashes"] == 0 and row["boots"] > 1
