"""SimulatedMeter: the app task stops on a power cut and restarts on power-on and resets."""
import asyncio

import machine
from simulator.meter import SimulatedMeter
from simulator.world import SteadyLoad, World

CONFIG = {"meter_id": "m-1"}


def make_meter(clock, tmp_path, app):
    world = World(clock, SteadyLoad(1000))
    return SimulatedMeter(CONFIG, world, str(tmp_path / "flash"), clock, app_factory=app)


def run_meter(clock, tmp_path, app, seconds):
    """Run a meter with this app for `seconds` of virtual time; returns the stopped meter."""

    async def main():
        meter = make_meter(clock, tmp_path, app)
        meter.start()
        await asyncio.sleep(seconds)
        meter.stop()
        return meter

    return clock.run(main())


def test_watchdog_starvation_restarts_the_app(clock, tmp_path):
    causes = []

    async def app(meter):
        causes.append((clock.now_ms(), machine.reset_cause()))
        wdt = machine.WDT(timeout=8000)
        if len(causes) == 1:
            await asyncio.sleep(3600)  # hangs without feeding: the watchdog must bite
        while True:
            wdt.feed()
            await asyncio.sleep(1)

    meter = run_meter(clock, tmp_path, app, 60)
    assert causes == [(0, machine.PWRON_RESET), (8000, machine.WDT_RESET)]
    assert meter.boots == 2 and meter.crashes == []


def test_power_cut_stops_the_app_and_power_back_boots_it(clock, tmp_path):
    log = []

    async def app(meter):
        log.append(("boot", clock.now_ms(), machine.reset_cause()))
        try:
            while True:
                await asyncio.sleep(1)
                with open(meter.board.flash.path("tick"), "w") as f:
                    f.write(str(clock.now_ms()))
        finally:
            # cleanup of a dead board must not reach the flash
            try:
                with open(meter.board.flash.path("tick"), "w") as f:
                    f.write("cleanup")
            except BaseException as exc:  # noqa: BLE001
                log.append(("cleanup refused", type(exc).__name__))

    async def main():
        meter = make_meter(clock, tmp_path, app)
        meter.world.schedule_outage(10500, 5000)
        meter.start()
        await asyncio.sleep(20)
        with open(meter.board.flash.path("tick")) as f:
            last = f.read()
        meter.stop()
        return last

    last = clock.run(main())
    assert log[0] == ("boot", 0, machine.PWRON_RESET)
    assert log[1] == ("cleanup refused", "PowerLost")
    assert log[2] == ("boot", 15500, machine.PWRON_RESET)
    assert last == "19500"


def test_machine_reset_and_a_crash(clock, tmp_path):
    boots = []

    async def app(meter):
        boots.append(machine.reset_cause())
        await asyncio.sleep(1)
        if len(boots) == 1:
            machine.reset()
        raise RuntimeError("firmware bug")

    meter = run_meter(clock, tmp_path, app, 5)
    assert boots == [machine.PWRON_RESET, machine.SOFT_RESET]
    assert meter.crashes == [(2000, "RuntimeError('firmware bug')")]


def test_the_firmware_releases_the_config_sections_only_its_boot_reads(clock, tmp_path):
    from meter import config as meter_config

    async def main():
        meter = SimulatedMeter(CONFIG, World(clock, SteadyLoad(1000)), str(tmp_path / "flash"),
                               clock)
        meter.start()
        await asyncio.sleep(5)
        meter.stop()
        return meter.last_app or meter.app

    app = clock.run(main())
    assert [name for name in meter_config.BOOT_ONLY if name in app.config] == []
    # what was built from them is all there, and the running meter never missed them
    assert app.tick_errors == 0 and app.persist_errors == 0 and app.snapshot["meter_id"] == "m-1"
    assert app.biller.tariff.version == 0 and app.board.relay is not None
    assert app.config["meter_id"] == "m-1" and "mqtt" in app.config  # no link: kept
