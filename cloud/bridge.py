"""The cloud end of the meter-cloud MQTT link: delivers recharges (QoS 1, re-sent until the
meter acknowledges), keeps floors in sync, and writes status, telemetry and history into the
store. One aiomqtt client on the bridge's own broker account; reconnects with backoff."""

import asyncio
import logging
import time

import aiomqtt

from cloud import link_payloads as lp
from cloud.store.base import InvalidRecord, NotFound, StoreError

log = logging.getLogger("mita.bridge")

SUBSCRIPTIONS = ["meters/+/status", "meters/+/telemetry", "meters/+/history",
                 "meters/+/recharge/ack", "meters/+/tariff/ack"]
_TARIFF_CACHE_S = 30.0
_IN_FLIGHT = 64  # messages being handled at once; more waits at the broker (backpressure)


class Bridge:
    """Runs while the app runs: `await bridge.start()` ... `await bridge.stop()`.

    broker: dict(host, port, username, password, client_id, tls); store: a cloud Store;
    recharges: the asyncio.Queue payments put new recharges on (or None).
    """

    def __init__(self, store, broker, recharges=None, *, resend_every_s=30.0,
                 void_after_s=900.0, backoff_s=(0.2, 30.0), clock=time.time,
                 monotonic=time.monotonic):
        self.store = store
        self.broker = broker
        self.recharges = recharges
        self.resend_every_s = resend_every_s
        self.backoff_s = backoff_s
        self.clock = clock
        self.monotonic = monotonic
        self.counters = dict.fromkeys((
            "connects", "connect_failures", "received", "malformed", "oversized",
            "unknown_meter", "unknown_ack", "published", "publish_failures", "recharges_sent",
            "acks", "rejected", "retry_later", "history_stored", "history_bad", "syncs_sent",
            "tariffs_sent", "telemetry_written", "store_errors", "voided", "errors"), 0)
        self.connected = asyncio.Event()
        self.client = None
        self._tasks = []
        self._online = {}          # meter -> last known state is online
        self._alerts = {}          # meter -> {alert: bool} last written, to skip no-op writes
        self._floors = {}          # meter -> last floor computed (for the in-window check)
        self._synced = {}          # meter -> last floor sent in a sync
        self._voids = lp.VoidSeqs(void_after_s)
        self._sent_ms = {}         # (meter, seq) -> when this process last sent it
        self._attention = set()    # meters with pending recharges or unresolved gaps
        self._held = set()         # meters with recharges held back past their window
        self._retry = {}           # meter -> seqs refused "not now": send at the next pass
        self._online_at = {}       # meter -> ms of its last online status
        self._delivering = {}      # meter -> running delivery task
        self._again = set()        # meters whose delivery must run once more
        self._telemetry = {}       # meter -> (balance, alerts, ts): the newest unwritten
        self._telemetry_ready = asyncio.Event()
        self._tariff = (None, -1e9)
        self._inbox = {}           # meter -> its newest message task (one at a time a meter)
        self._slots = asyncio.Semaphore(_IN_FLIGHT)

    # -- life cycle ---------------------------------------------------------------------
    async def start(self):
        for job in (self._connection_loop, self._drain_recharges, self._resend_loop,
                    self._write_telemetry, self._scan_pending):
            self._tasks.append(asyncio.create_task(job(), name="bridge." + job.__name__))

    async def stop(self):
        tasks = self._tasks + list(self._delivering.values()) + list(self._inbox.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    async def wait_connected(self, timeout=10.0):
        await asyncio.wait_for(self.connected.wait(), timeout)

    def _make_client(self):
        b = self.broker
        tls = None
        if b.get("tls"):
            import ssl
            tls = ssl.create_default_context()
        return aiomqtt.Client(
            b["host"], b["port"], username=b.get("username"), password=b.get("password"),
            identifier=b.get("client_id", "mita-bridge"), clean_session=False,
            keepalive=b.get("keepalive", 60), tls_context=tls,
            max_inflight_messages=1000, timeout=b.get("timeout", 10))

    async def _connection_loop(self):
        floor, cap = self.backoff_s
        delay = floor
        while True:
            try:
                async with self._make_client() as client:
                    await client.subscribe([(t, 1) for t in SUBSCRIPTIONS])
                    self.client = client
                    self.counters["connects"] += 1
                    delay = floor
                    self.connected.set()
                    log.info("bridge connected", extra={"host": self.broker["host"],
                                                        "port": self.broker["port"]})
                    async for message in client.messages:
                        await self._dispatch(str(message.topic), message.payload)
            except aiomqtt.MqttError as error:
                self.counters["connect_failures"] += 1
                log.warning("bridge link down", extra={"error": str(error), "retry_s": delay})
            finally:
                self.client = None
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)

    async def publish(self, topic, payload, qos=1, retain=False):
        """True once the broker has the message; False (counted) when the link is down."""
        client = self.client
        if client is None:
            self.counters["publish_failures"] += 1
            return False
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError:
            self.counters["publish_failures"] += 1
            return False
        self.counters["published"] += 1
        return True

    # -- incoming -----------------------------------------------------------------------
    async def _dispatch(self, topic, payload):
        """Meters are handled side by side (a slow store call for one does not hold up the
        rest), each meter's messages in the order they came."""
        await self._slots.acquire()
        meter = topic.split("/")[1] if topic.count("/") >= 2 else ""
        task = asyncio.create_task(self._handle_after(self._inbox.get(meter), topic, payload))
        self._inbox[meter] = task
        task.add_done_callback(lambda done: self._message_done(meter, done))

    async def _handle_after(self, previous, topic, payload):
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await self.handle(topic, payload)

    def _message_done(self, meter, task):
        self._slots.release()
        if self._inbox.get(meter) is task:
            del self._inbox[meter]

    async def handle(self, topic, payload):
        """One message from a meter. Never raises: bad input is counted and dropped."""
        self.counters["received"] += 1
        try:
            meter, kind = lp.split_topic(topic)
            msg = lp.decode(payload if isinstance(payload, (bytes, str)) else b"")
            handler = self._handlers.get(kind)
            if handler is None:
                raise lp.Malformed("unknown topic kind %r" % kind)
            await handler(self, meter, msg)
        except lp.Oversized:
            self.counters["oversized"] += 1
        except lp.Malformed as error:
            self.counters["malformed"] += 1
            log.debug("malformed message dropped", extra={"topic": topic, "error": str(error)})
        except NotFound:
            self.counters["unknown_meter"] += 1
        except StoreError as error:
            # The meter re-sends what matters (history, acks after our re-send).
            self.counters["store_errors"] += 1
            log.error("store failed on a meter message", extra={"topic": topic,
                                                                "error": str(error)})
        except Exception:  # a bug must cost one message, never the link
            self.counters["errors"] += 1
            log.exception("meter message failed", extra={"topic": topic})

    def _now_ms(self):
        return int(self.clock() * 1000)

    async def _on_status(self, meter, msg):
        fields = lp.parse_status(msg)
        online = fields["state"] == "online"
        await self.store.update_meter_status(meter, fields, self._now_ms())
        await self._set_alerts(meter, {"connection_lost": not online})
        self._online[meter] = online
        if online:
            self._online_at[meter] = self._now_ms()
            self._synced.pop(meter, None)  # the protocol sends a sync after every online
            self._kick(meter)
            await self._offer_tariff(meter, fields.get("tariff_version"))

    async def _on_telemetry(self, meter, msg):
        balance, alerts = lp.parse_telemetry(msg)
        # Telemetry is replaceable: keep the newest per meter and write at the store's pace.
        self._telemetry[meter] = (balance, alerts, self._now_ms())
        self._telemetry_ready.set()

    async def _on_history(self, meter, msg):
        ok = True
        try:
            record = lp.parse_history(msg)  # Malformed (no int seq) goes up: no ack then
            seq = record["seq"]
            await self.store.put_consumption_hour(meter, record["date"], record["hour"],
                                                  record["wh"], record["cost_cents"])
        except lp.BadRecord as bad:
            ok, seq = False, bad.seq
        except InvalidRecord:  # a record the store refuses; acked so it does not block
            ok = False
        self.counters["history_stored" if ok else "history_bad"] += 1
        await self.publish("meters/%s/history/ack" % meter, lp.history_ack(seq, ok))

    async def _on_recharge_ack(self, meter, msg):
        seq, status, reason, balance = lp.parse_recharge_ack(msg)
        self.counters["acks"] += 1
        if status == "rejected" and reason in lp.RETRYABLE_REASONS:
            # Not applied, not final: stays pending and goes again after earlier seqs land.
            self.counters["retry_later"] += 1
            self._attention.add(meter)
            self._held.add(meter)
            self._retry.setdefault(meter, set()).add(seq)
            return
        updated = await self.store.ack_recharge(meter, seq, status, reason, self._now_ms())
        self._sent_ms.pop((meter, seq), None)
        if updated is None:
            self.counters["unknown_ack"] += 1
            return
        if status == "rejected":
            self.counters["rejected"] += 1
            log.error("meter rejected a recharge", extra={"meter_no": meter, "seq": seq,
                                                          "reason": reason})
        if balance is not None:
            await self.store.update_meter_balance(meter, balance, self._now_ms())
        if meter in self._held:
            self._kick(meter)  # held-back recharges may now be inside the meter's window

    async def _on_tariff_ack(self, meter, msg):
        version, ok, reason = lp.parse_tariff_ack(msg)
        if ok:
            await self.store.update_meter_status(meter, {"tariff_version": version},
                                                 self._now_ms())
        elif reason != "not_newer":
            log.error("meter refused a tariff", extra={"meter_no": meter, "version": version,
                                                       "reason": reason})

    _handlers = {"status": _on_status, "telemetry": _on_telemetry, "history": _on_history,
                 "recharge/ack": _on_recharge_ack, "tariff/ack": _on_tariff_ack}

    async def _set_alerts(self, meter, alerts):
        known = self._alerts.get(meter)
        if known is not None and all(known.get(k) == v for k, v in alerts.items()):
            return
        await self.store.update_meter_alerts(meter, alerts)
        self._alerts.setdefault(meter, {}).update(alerts)

    async def _offer_tariff(self, meter, meter_version):
        tariff, fetched = self._tariff
        if self.monotonic() - fetched > _TARIFF_CACHE_S:
            tariff = await self.store.get_tariff()
            self._tariff = (tariff, self.monotonic())
        if tariff and (meter_version is None or tariff.get("version", 0) > meter_version):
            if await self.publish("meters/%s/tariff" % meter, lp.tariff_message(tariff)):
                self.counters["tariffs_sent"] += 1

    # -- telemetry writer ---------------------------------------------------------------
    async def _write_telemetry(self):
        while True:
            await self._telemetry_ready.wait()
            self._telemetry_ready.clear()
            batch, self._telemetry = self._telemetry, {}
            for meter, (balance, alerts, ts) in batch.items():
                try:
                    if balance is not None:
                        await self.store.update_meter_balance(meter, balance, ts)
                    if alerts:
                        await self._set_alerts(meter, alerts)
                    self.counters["telemetry_written"] += 1
                except NotFound:
                    self.counters["unknown_meter"] += 1
                except Exception as error:  # the next telemetry replaces it anyway
                    self.counters["store_errors"] += 1
                    log.warning("telemetry not stored", extra={"meter_no": meter,
                                                               "error": repr(error)})

    # -- recharge delivery --------------------------------------------------------------
    async def _drain_recharges(self):
        if self.recharges is None:
            return
        while True:
            recharge = await self.recharges.get()
            meter = recharge["meter_no"]
            self._attention.add(meter)
            floor = self._floors.get(meter)
            if floor is not None and recharge["seq"] > floor + lp.RECHARGE_WINDOW:
                self._held.add(meter)  # the meter would refuse it now; sent after acks
                continue
            try:
                await self._send_recharge(recharge)
            except Exception:  # it stays pending in the store: a later pass sends it
                self.counters["errors"] += 1
                log.exception("recharge not sent", extra={"meter_no": meter})

    async def _send_recharge(self, recharge):
        meter = recharge["meter_no"]
        # Known at once, before the store has it: a delivery pass running now must not
        # send the same recharge a second time.
        self._sent_ms[(meter, recharge["seq"])] = self._now_ms()
        if await self.publish("meters/%s/recharge" % meter, lp.recharge_message(recharge)):
            self.counters["recharges_sent"] += 1
            try:
                await self.store.mark_recharge_sent(meter, recharge["seq"], self._now_ms())
            except StoreError as error:  # only bookkeeping: the message is out
                log.warning("mark_recharge_sent failed", extra={"error": str(error)})

    def _kick(self, meter):
        """Run a delivery pass for the meter soon; one at a time per meter."""
        if meter in self._delivering:
            self._again.add(meter)
            return
        self._delivering[meter] = asyncio.create_task(self._delivery_task(meter))

    async def _delivery_task(self, meter):
        try:
            while True:
                self._again.discard(meter)
                try:
                    await self.deliver(meter)
                except NotFound:
                    self.counters["unknown_meter"] += 1
                except Exception as error:  # a store failure or a bug: a later pass retries
                    self.counters["store_errors" if isinstance(error, StoreError)
                                  else "errors"] += 1
                    log.warning("delivery pass failed", extra={"meter_no": meter,
                                                               "error": repr(error)})
                if meter not in self._again:
                    return
        finally:
            self._delivering.pop(meter, None)

    async def deliver(self, meter):
        """Send the meter its floor (when it changed) and every pending recharge inside its
        window, in seq order. Returns the floor."""
        record = await self.store.get_meter(meter)
        if record is None:
            raise NotFound("meter %s" % meter)
        recharges = await self.store.list_recharges(meter)
        issued = record.get("recharge_seq") or 0
        voids = self._update_gaps(meter, recharges, issued)
        floor = lp.recharge_floor(recharges, issued, voids)
        self._floors[meter] = floor
        if floor > 0 and self._synced.get(meter) != floor:
            if await self.publish("meters/%s/sync" % meter, lp.sync_message(floor)):
                self._synced[meter] = floor
                self.counters["syncs_sent"] += 1
        pending = [r for r in recharges if r["status"] == "pending"]
        now, online_at = self._now_ms(), self._online_at.get(meter, 0)
        self._held.discard(meter)
        retry = self._retry.get(meter, set())
        for recharge in pending:
            if recharge["seq"] > floor + lp.RECHARGE_WINDOW:
                self._held.add(meter)
                break
            sent = max(recharge.get("sent_at") or 0,
                       self._sent_ms.get((meter, recharge["seq"]), 0)) or None
            # Not again while the last copy may still be on its way, unless the meter has
            # reconnected since (its session may have lost it).
            if (sent is None or sent < online_at or recharge["seq"] in retry
                    or now - sent >= self.resend_every_s * 1000):
                retry.discard(recharge["seq"])
                await self._send_recharge(recharge)
        if pending or self._voids.waiting(meter):
            self._attention.add(meter)
        else:
            self._attention.discard(meter)
        return floor

    def _update_gaps(self, meter, recharges, issued):
        void, fresh, revived = self._voids.update(meter, recharges, issued, self.monotonic())
        for seq in revived:
            # Declared void, then given a credit after all: the meter will call it a duplicate.
            log.error("a seq declared void was given a credit: reconcile by hand",
                      extra={"meter_no": meter, "seq": seq})
        for seq in fresh:
            self.counters["voided"] += 1
            log.warning("recharge seq void", extra={"meter_no": meter, "seq": seq})
        return void

    async def _resend_loop(self):
        while True:
            await asyncio.sleep(self.resend_every_s)
            await self.resend_pass()

    async def resend_pass(self):
        """Re-send to every meter that has something unacknowledged and is not known offline."""
        if not self.connected.is_set():
            return
        for meter in list(self._attention):
            if self._online.get(meter, True):
                self._kick(meter)

    async def _scan_pending(self):
        """At start: find meters with pending recharges left from before (a restart, a full
        queue) so the periodic pass covers them even before their status arrives."""
        try:
            for meter in await self.store.list_meters():
                if await self.store.list_recharges(meter["meter_no"], status="pending"):
                    self._attention.add(meter["meter_no"])
        except StoreError as error:
            log.warning("pending scan failed", extra={"error": str(error)})
