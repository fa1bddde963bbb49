# Boot order: config, persisted state, then the board with the relay already where the state
# says (no flicker, never on without credit), then the app. `start()` returns the app without
# running it, so a REPL or a test can drive it; `run()` is what /main.py calls.
from meter import board as board_module
from meter import config as meter_config
from meter.app import MeterApp
from meter.log import Logger
from meter.storage import StateStore


def state_root(root, config):
    path = root + "/" + config["state_dir"] if config["state_dir"] else root
    return path.rstrip("/") if path not in ("", "/") else ""


def start(root="", log=None):
    """Build the meter from <root>/config.json and the state in <root>/<state_dir>."""
    log = log or Logger("mita")
    cfg, problems = meter_config.load(root + "/config.json", log)
    if not cfg["meter_id"]:
        cfg["meter_id"] = "MITA-" + board_module.unique_id()
    store = StateStore(state_root(root, cfg), log=log.child("store"))
    clock = board_module.make_clock(cfg)
    app = MeterApp(cfg, store, clock, log=log)
    app.config_problems = problems
    if app.boot_status == "corrupt":
        log.error("both state slots are corrupt: starting with zero credit, relay open")
    board = board_module.Board(cfg, relay_closed=app.relay_at_boot(), clock=clock, log=log)
    app.attach(board)
    app.reset_cause = board.reset_cause()
    log.info("meter %s up: balance %d cents, relay %s, state %s", cfg["meter_id"],
             app.ledger.balance, "closed" if board.relay.is_closed() else "open",
             app.boot_status)
    return app


async def run(app):
    await app.run(app.board.watchdog(app.config["watchdog_ms"]))


def main(root=""):
    import asyncio
    app = start(root)
    asyncio.run(run(app))
    return app
