# The meter's side of the meter-cloud protocol (docs/protocol.md): status, telemetry and hourly
# history out; recharges, tariffs, floor syncs and history acks in. Every incoming message is
# checked here; a bad one is counted and dropped, never a crash. Everything the cloud sends is
# signed with this meter's command key (meter.command_auth): an unsigned, mis-signed or
# misaddressed command is refused and counted before it reaches the app.
import json
from micropython import const

from meter import VERSION
from meter.command_auth import command_key, opened
from meter.history import HistoryLog
from meter.protocol import PROTOCOL_VERSION

_HISTORY_WINDOW = const(8)  # history records in flight at once
_STATUS_KEYS = ("load_connected", "reason", "tariff_version")


class LinkError(ValueError):
    pass


def decode(payload):
    """A protocol message as a dict, or None if it is not one this meter can read."""
    try:
        msg = json.loads(payload)
    except Exception:  # ValueError, UnicodeError: both only mean "not our JSON"
        return None
    if type(msg) is not dict:
        return None
    v = msg.get("v")
    if type(v) is not int or v < 1 or v > PROTOCOL_VERSION:
        return None
    return msg


class MeterLink:
    """Hooks the app to an MQTTClient: pass link.on_message / link.on_connect to the client
    (or build both with make_client), and call tick() once a second (run() does)."""

    def __init__(self, app, history=None, telemetry_s=60, min_gap_s=2, wifi=None, log=None):
        self.app = app
        self.mqtt = None
        self.history = history
        self.telemetry_s = telemetry_s
        self.min_gap_s = min_gap_s
        self.wifi = wifi
        self.log = log
        self.meter_id = app.config["meter_id"]
        self.prefix = "meters/%s/" % self.meter_id
        # Derived once; b"" (no device key provisioned): every command is refused.
        self.command_key = command_key(app.config["key"], self.meter_id)
        self.malformed = 0
        self.refused = 0  # commands not signed by the cloud for this meter
        self.recharges = 0
        self.telemetry_sent = 0
        self.restarts = {}  # task name -> restarts by start_link's supervisor
        self._handlers = {
            self.prefix + "recharge": self._on_recharge,
            self.prefix + "tariff": self._on_tariff,
            self.prefix + "sync": self._on_sync,
            self.prefix + "history/ack": self._on_history_ack,
        }
        self._last_status = None
        self._last_shape = None
        self._since_telemetry_s = 0
        self._hist_sent = []  # history seqs published in this session, not yet acked
        if history is not None:
            # The baseline now, so the first second's consumption is not lost from history.
            wh, debited = app.totals()
            history.sample(app.clock.now(), wh, debited)

    # --- wiring --------------------------------------------------------------------------
    def subscriptions(self):
        return [(topic, 1) for topic in self._handlers]

    def will(self):
        return (self.prefix + "status", self.offline_payload("connection_lost"), 1, True)

    def offline_payload(self, reason):
        return json.dumps({"v": PROTOCOL_VERSION, "state": "offline", "reason": reason})

    def attach(self, mqtt):
        self.mqtt = mqtt
        mqtt.on_message = self.on_message
        mqtt.on_connect = self.on_connect

    def online(self):
        return self.mqtt is not None and self.mqtt.connected

    # --- outgoing ------------------------------------------------------------------------
    def on_connect(self):
        """Every (re)connect: the status leads, then telemetry, then history from the oldest."""
        self.app.set_online(True)
        self._publish_status(first=True)
        self._hist_sent = []
        self.send_telemetry()
        self._upload_history()

    def _status(self):
        s = self.app.snapshot
        wifi = self.wifi.status() if self.wifi is not None else "connected"
        return {"v": PROTOCOL_VERSION, "state": "online", "t": self.app.clock.now(),
                "load_connected": bool(s.get("relay_closed")), "wifi_status": wifi,
                "mqtt_status": "connected", "firmware": VERSION,
                "tariff_version": s.get("tariff_version"), "boot": self.app.boot_status,
                "reason": s.get("reason")}

    def _publish_status(self, first=False):
        status = self._status()
        self._last_status = [status[k] for k in _STATUS_KEYS]
        self._publish("status", status, qos=1, retain=True, first=first)

    def send_telemetry(self):
        s = self.app.snapshot
        mqtt = self.mqtt
        counters = {"malformed": self.malformed, "refused": self.refused,
                    "oversized": mqtt.oversized if mqtt is not None else 0,
                    "dropped": mqtt.dropped if mqtt is not None else 0,
                    "history_dropped": self.history.dropped if self.history is not None else 0,
                    "json_overflows": mqtt.json_overflows if mqtt is not None else 0}
        self._publish("telemetry", {
            "v": PROTOCOL_VERSION, "t": self.app.clock.now(),
            "balance_cents": s.get("balance_cents"), "power_w": s.get("power_w"),
            "energy_wh": s.get("energy_wh"), "voltage_dv": s.get("voltage_dv"),
            "month_wh": s.get("month_wh"), "load_connected": bool(s.get("relay_closed")),
            # a copy: the app changes its alerts in place, and the message is only turned
            # into JSON when the client sends it
            "tariff_version": s.get("tariff_version"), "alerts": dict(s.get("alerts") or {}),
            "counters": counters})
        self._since_telemetry_s = 0
        self.telemetry_sent += 1

    def _upload_history(self):
        if self.history is None or not self.online():
            return
        room = _HISTORY_WINDOW - len(self._hist_sent)
        if room <= 0:
            return
        after = self._hist_sent[-1] if self._hist_sent else 0
        for rec in self.history.pending(room, after):
            self._hist_sent.append(rec["seq"])
            self._publish("history", self.history.message(rec), qos=1)

    def _publish(self, sub, msg, qos=0, retain=False, first=False):
        # The dict itself: the client writes its JSON into its one buffer as it sends it
        # (meter.json_buffer), instead of a str and a bytes copy of it every 10 s.
        if self.mqtt is not None:
            self.mqtt.publish(self.prefix + sub, msg, qos, retain, first)

    # --- the one-second step -------------------------------------------------------------
    def tick(self, elapsed_s=1):
        """Record history, send telemetry when due or when something a person would notice
        changed, and a new status when the load switched."""
        app = self.app
        app.set_online(self.online())
        if self.history is not None:
            wh, debited = app.totals()
            record = self.history.sample(app.clock.now(), wh, debited)
            if record is not None:
                self._upload_history()
        if not self.online():
            return
        status = self._status()
        if [status[k] for k in _STATUS_KEYS] != self._last_status:
            self._publish_status()
        self._since_telemetry_s += elapsed_s
        shape = self._shape()
        changed = shape != self._last_shape
        self._last_shape = shape
        if self._since_telemetry_s >= self.telemetry_s or (
                changed and self._since_telemetry_s >= self.min_gap_s):
            self.send_telemetry()

    def _shape(self):
        """What makes telemetry worth sending at once: alerts and the relay."""
        s = self.app.snapshot
        alerts = s.get("alerts") or {}
        names = sorted(alerts)
        return [s.get("relay_closed")] + [name for name in names if alerts[name]]

    async def run(self, period_ms=1000):
        import asyncio
        while True:
            try:
                self.tick(period_ms // 1000 or 1)
            except Exception as exc:  # the link must never take the meter down with it
                self._log("error", "link tick failed: %r", exc)
            await asyncio.sleep(period_ms / 1000)

    # --- incoming ------------------------------------------------------------------------
    def on_message(self, topic, payload, retained=False):
        handler = self._handlers.get(topic)
        if handler is None:
            self._bad("message on %s" % topic)
            return
        cmd = topic[len(self.prefix):]
        body = opened(self.command_key, payload)
        if body is None:
            self._refuse(cmd, "not signed with this meter's key")
            return
        msg = decode(body)
        if msg is None:
            self._bad("undecodable message on %s" % topic)
            return
        if msg.get("cmd") != cmd or msg.get("meter") != self.meter_id:
            self._refuse(cmd, "signed for another command or meter")
            return
        try:
            handler(msg)
        except LinkError as exc:
            self._bad("%s: %s" % (topic, exc))

    def _refuse(self, cmd, why):
        # Not from the cloud, or not meant for this topic of this meter: never applied, and
        # never acknowledged (the cloud re-sends a real one, signed, until it is answered).
        self.refused += 1
        self._log("warn", "refused %s: %s", cmd, why)

    def _bad(self, why):
        self.malformed += 1
        self._log("warn", "dropped: %s", why)

    def _on_recharge(self, msg):
        # Only the cloud numbers credits over MQTT: the token window is the keypad's. The app
        # validates the whole message (once) and persists before it returns; the ack (and
        # the PUBACK) only go out after that.
        status, reason = self.app.apply_recharge(msg, "cloud")
        seq = msg.get("seq")
        if type(seq) is not int:
            # Nothing the cloud could match an ack to: dropped and counted, never applied.
            raise LinkError("recharge without an int seq")
        self.recharges += 1
        self._publish("recharge/ack", {
            "v": PROTOCOL_VERSION, "seq": seq, "id": msg.get("id"), "status": status,
            "reason": reason, "balance_cents": self.app.balance_cents(),
            "t": self.app.clock.now()}, qos=1)
        if status == "applied":
            self.send_telemetry()

    def _on_tariff(self, msg):
        tariff = msg.get("tariff")
        if type(tariff) is not dict:
            raise LinkError("tariff message without a tariff object")
        ok, reason = self.app.set_tariff(tariff)
        self._publish("tariff/ack", {"v": PROTOCOL_VERSION, "version": tariff.get("version"),
                                     "ok": ok, "reason": reason}, qos=1)

    def _on_sync(self, msg):
        floor = msg.get("recharge_floor")
        try:
            moved = self.app.advance_floor("cloud", floor)  # validates the floor
        except ValueError:  # RechargeError: not a seq
            raise LinkError("sync without a valid recharge_floor")
        if moved:
            self._log("warn", "recharge floor raised to %d by the cloud", floor)

    def _on_history_ack(self, msg):
        seq = msg.get("seq")
        if type(seq) is not int:
            raise LinkError("history ack without an int seq")
        if self.history is None:
            return
        self.history.ack(seq)
        if seq in self._hist_sent:
            self._hist_sent.remove(seq)
        self._upload_history()

    def _log(self, level, msg, *args):
        if self.log is not None:
            getattr(self.log, level)(msg, *args)


def make_link(app, wifi=None, history_root=None, telemetry_s=60, log=None, **mqtt_options):
    """The link and its MQTT client from app.config: client id and user default to the
    meter id, the will is the retained offline status. Returns (link, client)."""
    from meter.config import release
    from meter.mqtt import MQTTClient
    cfg = app.config
    meter_id = cfg["meter_id"]
    history = None
    if history_root is not None:
        history = HistoryLog(history_root, cfg["utc_offset_min"] * 60, log=log)
    link = MeterLink(app, history, telemetry_s=telemetry_s, wifi=wifi, log=log)
    m = cfg["mqtt"]
    client = MQTTClient(meter_id, m["host"], m["port"], user=m["user"] or meter_id,
                        password=m["password"], tls=m["tls"], will=link.will(),
                        subscriptions=link.subscriptions(), log=log, **mqtt_options)
    link.attach(client)
    # The client keeps host, port, login and TLS for every reconnect: the config's copy (the
    # broker password among it) is never read again.
    release(cfg, ("mqtt",))
    return link, client


async def end_session_on_wifi_loss(wifi, client):
    """On the device lwIP fails every socket soon after the station loses its access point;
    ending the MQTT session at once makes that prompt (no waiting for the keepalive to lapse),
    and the client waits for WiFi before it connects again."""
    while True:
        await wifi.down.wait()
        client.reconnect("wifi down")
        await wifi.up.wait()


async def supervise(name, start, restarts, log=None, pause_s=5):
    """Await start() and, whenever the task it makes dies of an exception, start it again
    after pause_s, counting restarts[name]: a WiFi or NTP task killed by a bug must not leave
    the meter offline until the watchdog resets it (billing never stops either way)."""
    import asyncio
    while True:
        try:
            await start()
            return  # it ended by itself: nothing to restart
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            restarts[name] = restarts.get(name, 0) + 1
            if log is not None:
                log.error("%s task died (%r); restart %d", name, exc, restarts[name])
        await asyncio.sleep(pause_s)


def start_link(app, wlan=None, ntp=None, history_root="", log=None, ssl_context=None):
    """Start everything the meter does online as supervised tasks beside app.run(): WiFi (if a
    WLAN is given), MQTT once WiFi is up, NTP while online, and the link's one-second step.
    The meter meters and bills the same whether or not any of this is up. link.restarts counts
    the restarts of each. Returns (link, client, tasks)."""
    import asyncio
    from meter.config import release
    from meter.ntp import TimeSync
    from meter.wifi import WifiManager
    wifi = None
    if wlan is not None:
        w = app.config["wifi"]
        wifi = WifiManager(wlan, w["ssid"], w["password"], log=log)
    # the manager holds the SSID and password (the board read them before this, for the WLAN)
    release(app.config, ("wifi",))
    link, client = make_link(app, wifi=wifi, history_root=history_root, log=log,
                             ssl_context=ssl_context)
    up = wifi.up if wifi is not None else None
    tasks = []

    def supervised(name, start):
        tasks.append(asyncio.create_task(supervise(name, start, link.restarts, log)))

    supervised("link", link.run)
    if wifi is not None:
        supervised("wifi", wifi.run)
        supervised("wifi_watch", lambda: end_session_on_wifi_loss(wifi, client))
    if client.host:
        supervised("mqtt", lambda: client.run(up))
    if ntp is not None:
        sync = TimeSync(app.clock, ntp, log=log)
        supervised("ntp", lambda: sync.run(up))
    return link, client, tasks
