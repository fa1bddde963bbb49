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
        cfg["meter_id"] = "MITA" + board_module.unique_id()
    store_root = state_root(root, cfg)
    store = StateStore(store_root, log=log.child("store"))
    clock = board_module.make_clock(cfg)
    app = MeterApp(cfg, store, clock, log=log)
    app.config_problems = problems
    app.state_root = store_root
    if app.boot_status == "corrupt":
        log.error("both state slots are corrupt: starting with zero credit, relay open")
    board = board_module.Board(cfg, relay_closed=app.relay_at_boot(), clock=clock, log=log)
    app.attach(board)
    if board.keypad is not None:
        # the token panel is shown in the display's place: it owns the LCD while in use
        from meter import VERSION
        from meter.token_entry import TokenEntry
        panel = TokenEntry(app, board.display, board.lcd, board.buzzer, VERSION, clock)
        app.attach_panel(panel)
    app.reset_cause = board.reset_cause()
    meter_config.release(cfg, meter_config.BOOT_ONLY)
    log.info("meter %s up: balance %d cents, relay %s, state %s", cfg["meter_id"],
             app.ledger.balance, "closed" if board.relay.is_closed() else "open",
             app.boot_status)
    return app


def tls_context_for(mqtt, log=None):
    """A verifying TLS context when the config names the broker's CA certificate."""
    if not (mqtt["tls"] and mqtt["ca"]):
        if mqtt["tls"] and log:
            log.warn("mqtt tls without a CA certificate: the broker is not verified")
        return None
    from meter.mqtt_tls import tls_context
    try:
        with open(mqtt["ca"], "rb") as f:
            return tls_context(cadata=f.read())
    except OSError as exc:
        if log:
            log.error("mqtt CA certificate %s unreadable: %s", mqtt["ca"], exc)
        return None


async def run(app):
    """The meter's tasks: metering always; WiFi, MQTT and NTP when configured. Billing and
    switching never wait for the network."""
    board = app.board
    cfg = app.config
    if cfg["wifi"]["ssid"] or cfg["mqtt"]["host"]:
        from meter.link import start_link
        log = app.log.child("link") if app.log else None
        start_link(app, board.wlan(), board.ntp(), history_root=app.state_root, log=log,
                   ssl_context=tls_context_for(cfg["mqtt"], log))
    if app.panel is not None:
        import asyncio
        asyncio.create_task(app.panel.run(board.keypad, app.clock))
    await app.run(board.watchdog(cfg["watchdog_ms"]))


def main(root=""):
    import asyncio
    app = start(root)
    asyncio.run(run(app))
    return app
