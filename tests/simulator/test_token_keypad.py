"""A token typed on the simulated meter's keypad matrix, through the real firmware (boot.run's
panel task polling the keypad driver) to the HD44780 on the simulated I2C bus: the credit
lands once, the LCD says so, and typing it again says USED."""
import asyncio
import os
import sys

from simulator.meter import SimulatedMeter
from simulator.world import SteadyLoad, World

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "firmware"))
from test_openpaygo_app import ADD, CODE, KEY  # noqa: E402

# the firmware's keypad on the simulated board's matrix pins (simulator/sim_board.DEFAULT_RIG)
CONFIG = {"meter_id": "tok-1", "initial_balance_cents": 10000,
          "pins": {"keypad_rows": [13, 12, 14, 27], "keypad_cols": [33, 32, 39, 36]},
          "token": {"key": KEY, "starting_code": CODE}}


def test_a_token_typed_on_the_keypad_credits_once_and_shows_on_the_lcd(clock, tmp_path):
    seen = {}

    async def main():
        meter = SimulatedMeter(CONFIG, World(clock, SteadyLoad(0)), str(tmp_path / "flash"), clock)
        meter.start()
        await asyncio.sleep(2)
        start = meter.app.ledger.balance

        async def type_token(token):
            for key in token + "#":
                meter.press_key(key, hold_ms=80)
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)

        await type_token(ADD[4][2])
        seen["accepted"] = meter.board.lcd.lines()
        seen["credit"] = meter.app.ledger.balance - start
        await type_token(ADD[4][2])
        seen["again"] = meter.board.lcd.lines()
        seen["credit_after"] = meter.app.ledger.balance - start
        await asyncio.sleep(6)  # the verdict's hold is over: the meter's own pages return
        seen["after"] = meter.board.lcd.lines()
        meter.stop()

    clock.run(main())
    assert seen["credit"] == 5000 and seen["credit_after"] == 5000
    assert [l.strip() for l in seen["accepted"]] == ["TOKEN ACCEPTED", "+KES 50.00"]
    assert seen["again"][0].strip() == "TOKEN USED"
    assert "TOKEN" not in seen["after"][0]


def test_the_panel_keys_type_a_token_in_the_shipped_keypad_scenario(clock, tmp_path):
    from simulator.panel import Controls
    from simulator.scenario import Scenario
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    scenario = Scenario.from_file(os.path.join(root, "scenarios", "keypad-tokens.yaml"))
    meter = scenario.make_meter(clock, str(tmp_path / "m"))
    controls = Controls(meter)
    seen = {}

    async def go():
        meter.start(asyncio.get_running_loop())
        await asyncio.sleep(2)
        start = meter.app.ledger.total_credited
        for ch in ADD[2][2] + "#":  # KES 30, as the scenario's comment lists it
            assert controls.key(ch)
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        seen["credited"] = meter.app.ledger.total_credited - start
        seen["lcd"] = meter.board.lcd.lines()
        meter.stop()

    clock.run(go())
    assert seen["credited"] == 3000
    assert seen["lcd"][1].strip() == "+KES 30.00"
