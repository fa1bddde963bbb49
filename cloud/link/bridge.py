"""The cloud end of the meter-cloud MQTT link: delivers recharges (QoS 1, re-sent until the
meter acknowledges), keeps floors in sync, and writes status, telemetry and history into the
store. One aiomqtt client on the bridge's own broker account; reconnects with backoff.

Delivery is pull-only: whoever records a recharge calls `kick(meter)`, and one delivery pass
per meter reads what is pending from the store and decides what goes out (`deliver`). The
resend loop and a meter coming online kick the same pass."""

import asyncio
import contextlib
import logging
import time

import aiomqtt

from cloud.link import payloads as lp
from cloud.link.channel import MeterChannel
from cloud.link.inbound import InboundQueue
from cloud.link.mqtt_client import forget_disconnect, make_client, subscriptions
from cloud.link.supervise import supervised
from cloud.store.base import InvalidRecord, NotFound, StoreError

log = logging.getLogger("mita.bridge")

_TARIFF_CACHE_S = 30.0
_IN_FLIGHT = 64  # messages being handled at once; more waits at the broker (backpressure)


def _decode(payload):
    return lp.decode(payload if isinstance(payload, (bytes, str)) else b"")


class Bridge:
    """Runs while the app runs: `await bridge.start()` ... `await bridge.stop()`.

    broker: dict(host, port, username, password, client_id, tls); store: a cloud Store.
    """

    def __init__(self, store, broker, *, resend_every_s=30.0, void_after_s=900.0,
                 backoff_s=(0.2, 30.0), clock=time.time, monotonic=time.monotonic,
                 on_event=None, restart_pause_s=1.0):
        self.store = store
        self.broker = broker
        self.resend_every_s = resend_every_s
        self.backoff_s = backoff_s
        self.restart_pause_s = restart_pause_s
        self.clock = clock
        self.monotonic = monotonic
        # Told what changed for a meter once the store has it (the dashboard's live feed).
        self.on_event = on_event or (lambda meter_no, kind, **fields: None)
        self.counters = dict.fromkeys((
            "connects", "connect_failures", "received", "malformed", "oversized",
            "unknown_meter", "unknown_ack", "published", "publish_failures", "recharges_sent",
            "acks", "rejected", "retry_later", "history_stored", "history_bad", "syncs_sent",
            "tariffs_sent", "telemetry_written", "telemetry_batches", "telemetry_coalesced",
            "store_errors", "voided", "errors", "task_restarts", "status_stale"), 0)
        self.connected = asyncio.Event()
        self.client = None
        self._tasks = []
        self._channels = {}        # meter -> MeterChannel
        self._voids = lp.VoidSeqs(void_after_s)
        self._telemetry = {}       # meter -> (balance, alerts, ts): the newest unwritten
        self._telemetry_ready = asyncio.Event()
        self._tariff = (None, -1e9)
        self._slots = asyncio.Semaphore(_IN_FLIGHT)

    def channel(self, meter):
        """The bridge's MeterChannel for `meter`, made on first use."""
        channel = self._channels.get(meter)
        if channel is None:
            channel = self._channels[meter] = MeterChannel()
        return channel

    def known(self, meter):
        """The meter's channel if the bridge has heard of it, else None (read-only use)."""
        return self._channels.get(meter)

    async def settled(self):
        """Wait for every delivery pass running now (tests, shutdown)."""
        tasks = [c.delivering for c in self._channels.values() if c.delivering is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- life cycle ---------------------------------------------------------------------
    async def start(self):
        for job in (self._connection_loop, self._resend_loop, self._write_telemetry,
                    self._scan_pending):
            self._tasks.append(asyncio.create_task(
                supervised(job, self.counters, self.restart_pause_s),
                name="bridge." + job.__name__))

    async def stop(self):
        tasks = list(self._tasks)
        for channel in self._channels.values():
            tasks += [t for t in (channel.delivering, channel.inbox) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    async def wait_connected(self, timeout=10.0):
        await asyncio.wait_for(self.connected.wait(), timeout)

    def _inbound_queue(self, maxsize=0):
        """The client's incoming queue: telemetry is coalesced as it is read, not queued."""
        return InboundQueue(self.take_telemetry, self._stamp, maxsize)

    def _stamp(self, topic):
        """What a queued message carries from the moment it was read (see handle())."""
        return self._now_ms(), self.channel(lp.meter_of(topic)).reports

    def take_telemetry(self, topic, payload):
        """One telemetry message, handled at once (no task, no await): counted as handle()
        counts, and bad ones dropped the same way."""
        with self._counted(topic):
            meter, _ = lp.split_topic(topic)
            self._coalesce(meter, _decode(payload))
            self.channel(meter).reports += 1

    async def _connection_loop(self):
        floor, cap = self.backoff_s
        delay = floor
        while True:
            try:
                async with make_client(self.broker, self._inbound_queue) as client:
                    await client.subscribe(
                        [(t, 1) for t in subscriptions(self.broker.get("share_group"))])
                    self.client = client
                    self.counters["connects"] += 1
                    delay = floor
                    self.connected.set()
                    log.info("bridge connected", extra={"host": self.broker["host"],
                                                        "port": self.broker["port"]})
                    async for message, (received_ms, reports) in client.messages:
                        await self._dispatch(str(message.topic), message.payload,
                                             received_ms, reports)
            except aiomqtt.MqttError as error:
                self.counters["connect_failures"] += 1
                log.warning("bridge link down", extra={"error": str(error), "retry_s": delay})
                if self.broker.get("share_group") and not self.counters["connects"]:
                    # amqtt 0.12.1, for one, never answers an MQTT 5 CONNECT (it times out)
                    log.error("shared subscriptions need an MQTT 5 broker (mosquitto 2, EMQX, "
                              "VerneMQ); is %s:%s one?" % (self.broker["host"],
                                                          self.broker["port"]))
            finally:
                forget_disconnect(self.client)
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
    async def _dispatch(self, topic, payload, received_ms, reports):
        """Meters are handled side by side (a slow store call for one does not hold up the
        rest), each meter's messages in the order they came."""
        await self._slots.acquire()
        channel = self.channel(lp.meter_of(topic))
        task = asyncio.create_task(self._handle_after(channel.inbox, topic, payload,
                                                      received_ms, reports))
        channel.inbox = task
        task.add_done_callback(lambda done: self._message_done(channel, done))

    async def _handle_after(self, previous, topic, payload, received_ms, reports):
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await self.handle(topic, payload, received_ms, reports)

    def _message_done(self, channel, task):
        self._slots.release()
        if channel.inbox is task:
            channel.inbox = None

    async def handle(self, topic, payload, received_ms=None, reports=None):
        """One message from a meter. Never raises: bad input is counted and dropped.
        received_ms: when it arrived (a status is ordered by it across instances);
        reports: the meter's telemetry count when it was read (telemetry is taken as it is
        read, ahead of queued messages: a balance read earlier must not overwrite it)."""
        with self._counted(topic):
            meter, kind = lp.split_topic(topic)
            msg = _decode(payload)
            handler = self._handlers.get(kind)
            if handler is None:
                raise lp.Malformed("unknown topic kind %r" % kind)
            if kind == "status":
                await self._on_status(meter, msg, received_ms)
            elif kind == "recharge/ack":
                await self._on_recharge_ack(meter, msg, reports)
            else:
                await handler(self, meter, msg)

    @contextlib.contextmanager
    def _counted(self, topic):
        """Counts a message and what became of it; never lets its failure out."""
        self.counters["received"] += 1
        try:
            yield
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

    async def _on_status(self, meter, msg, received_ms=None):
        fields = lp.parse_status(msg)
        online = fields["state"] == "online"
        if self.broker.get("share_group"):
            # Instances handle a meter's messages side by side: its last will and the online
            # status right after it may be written in either order. The store keeps the
            # later message's (by arrival); an earlier one written last changes nothing.
            at = received_ms or self._now_ms()
            stored = await self.store.update_meter_status(meter, fields, self._now_ms(),
                                                          state_at=at)
            if (stored or {}).get("status", {}).get("state_at") != at:
                self.counters["status_stale"] += 1
                return
        else:
            await self.store.update_meter_status(meter, fields, self._now_ms())
        await self._set_alerts(meter, {"connection_lost": not online})
        self.on_event(meter, "status", state=fields["state"])
        channel = self.channel(meter)
        channel.online = online
        if online:
            channel.online_at = self._now_ms()
            channel.synced = None  # the protocol sends a sync after every online
            channel.command_key = None  # a re-provisioned meter may hold a new key
            self.kick(meter)
            await self._offer_tariff(meter, fields.get("tariff_version"))

    async def _on_telemetry(self, meter, msg):
        self._coalesce(meter, msg)

    def _coalesce(self, meter, msg):
        balance, alerts = lp.parse_telemetry(msg)
        # Telemetry is replaceable: keep the newest per meter and write at the store's pace;
        # an alert flag an older unwritten reading raised still gets written.
        previous = self._telemetry.get(meter)
        if previous is not None:
            self.counters["telemetry_coalesced"] += 1
            if previous[1]:
                alerts = dict(previous[1], **(alerts or {}))
            if balance is None:
                balance = previous[0]
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
        key = await self._command_key(meter)
        await self.publish("meters/%s/history/ack" % meter, lp.history_ack(seq, meter, key, ok))

    async def _on_recharge_ack(self, meter, msg, reports=None):
        seq, status, reason, balance = lp.parse_recharge_ack(msg)
        self.counters["acks"] += 1
        channel = self.channel(meter)
        if status == "rejected" and reason in lp.RETRYABLE_REASONS:
            # Not applied, not final: stays pending and goes again after earlier seqs land.
            self.counters["retry_later"] += 1
            channel.attention = channel.held = True
            channel.retry.add(seq)
            return
        updated = await self.store.ack_recharge(meter, seq, status, reason, self._now_ms())
        channel.sent_ms.pop(seq, None)
        if updated is None:
            self.counters["unknown_ack"] += 1
            return
        if status == "rejected":
            self.counters["rejected"] += 1
            log.error("meter rejected a recharge", extra={"meter_no": meter, "seq": seq,
                                                          "reason": reason})
        if balance is not None and reports in (None, channel.reports):
            await self.store.update_meter_balance(meter, balance, self._now_ms())
        self.on_event(meter, "recharge", seq=seq, status=status)
        if channel.held:
            self.kick(meter)  # held-back recharges may now be inside the meter's window

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
        channel = self.channel(meter)
        known = channel.alerts
        if known is not None and all(known.get(k) == v for k, v in alerts.items()):
            return
        await self.store.update_meter_alerts(meter, alerts)
        channel.alerts = dict(known or {}, **alerts)
        self.on_event(meter, "alerts")

    async def _offer_tariff(self, meter, meter_version):
        tariff, fetched = self._tariff
        if self.monotonic() - fetched > _TARIFF_CACHE_S:
            tariff = await self.store.get_tariff()
            self._tariff = (tariff, self.monotonic())
        if tariff and (meter_version is None or tariff.get("version", 0) > meter_version):
            key = await self._command_key(meter)
            if await self.publish("meters/%s/tariff" % meter,
                                  lp.tariff_message(tariff, meter, key)):
                self.counters["tariffs_sent"] += 1

    # -- telemetry writer ---------------------------------------------------------------
    async def _write_telemetry(self):
        """The newest reading of every meter heard since the last write, all in one store
        write (one commit, or one multi-path update): the fleet's telemetry costs the store a
        write per pass, not a write per message. Readings that arrive meanwhile wait for the
        next pass; a meter's newer reading replaces its older one (counted as coalesced)."""
        while True:
            await self._telemetry_ready.wait()
            self._telemetry_ready.clear()
            batch, self._telemetry = self._telemetry, {}
            readings = {}
            for meter, (balance, alerts, ts) in batch.items():
                channel = self.channel(meter)
                known = channel.alerts
                if alerts and known is not None and all(known.get(k) == v
                                                        for k, v in alerts.items()):
                    alerts = None  # nothing new to merge
                readings[meter] = (balance, alerts, ts)
            try:
                unknown = set(await self.store.write_telemetry(readings))
            except Exception as error:  # the next telemetry replaces it anyway
                self.counters["store_errors"] += 1
                log.warning("telemetry not stored", extra={"meters": len(readings),
                                                           "error": repr(error)})
                continue
            self.counters["telemetry_batches"] += 1
            for meter, (_, alerts, _) in readings.items():
                if meter in unknown:
                    self.counters["unknown_meter"] += 1
                    continue
                self.counters["telemetry_written"] += 1
                self.on_event(meter, "telemetry", balance_cents=readings[meter][0])
                if alerts:
                    channel = self.channel(meter)
                    channel.alerts = dict(channel.alerts or {}, **alerts)
                    self.on_event(meter, "alerts")

    # -- recharge delivery --------------------------------------------------------------
    async def _command_key(self, meter):
        """The key this meter's commands are signed with, from its device key in the store."""
        channel = self.channel(meter)
        if channel.command_key is None:
            device_key = await self.store.get_device_key(meter)
            if not device_key:
                raise NotFound("meter %s has no device key" % meter)
            channel.command_key = lp.command_key(device_key, meter)
        return channel.command_key

    async def _send_recharge(self, meter, channel, recharge):
        key = await self._command_key(meter)
        # Known at once, before the store has it: a delivery pass running now must not
        # send the same recharge a second time.
        channel.sent_ms[recharge["seq"]] = self._now_ms()
        if await self.publish("meters/%s/recharge" % meter,
                              lp.recharge_message(recharge, meter, key)):
            self.counters["recharges_sent"] += 1
            try:
                await self.store.mark_recharge_sent(meter, recharge["seq"], self._now_ms())
            except StoreError as error:  # only bookkeeping: the message is out
                log.warning("mark_recharge_sent failed", extra={"error": str(error)})

    def kick(self, meter):
        """Something for the meter may be waiting in the store (a new recharge, an ack that
        opens its window, a reconnect): run a delivery pass soon, one at a time per meter."""
        channel = self.channel(meter)
        channel.attention = True
        if channel.delivering is not None:
            channel.again = True
            return
        channel.delivering = asyncio.create_task(self._delivery_task(meter, channel))

    async def _delivery_task(self, meter, channel):
        try:
            while True:
                channel.again = False
                try:
                    await self.deliver(meter)
                except NotFound:
                    self.counters["unknown_meter"] += 1
                except Exception as error:  # a store failure or a bug: a later pass retries
                    self.counters["store_errors" if isinstance(error, StoreError)
                                  else "errors"] += 1
                    log.warning("delivery pass failed", extra={"meter_no": meter,
                                                               "error": repr(error)})
                if not channel.again:
                    return
        finally:
            channel.delivering = None

    async def deliver(self, meter):
        """The one sender: the meter's floor (when it changed) and every pending recharge
        inside its window, in seq order. Returns the floor."""
        record = await self.store.get_meter(meter)
        if record is None:
            raise NotFound("meter %s" % meter)
        recharges = await self.store.list_recharges(meter)
        issued = record.get("recharge_seq") or 0
        voids = self._update_gaps(meter, recharges, issued)
        floor = lp.recharge_floor(recharges, issued, voids)
        channel = self.channel(meter)
        channel.floor = floor
        if lp.floor_needs_sync(recharges, channel.synced, floor):
            key = await self._command_key(meter)
            if await self.publish("meters/%s/sync" % meter, lp.sync_message(floor, meter, key)):
                channel.synced = floor
                self.counters["syncs_sent"] += 1
        elif channel.synced is not None and floor > channel.synced:
            channel.synced = floor  # the meter's floor got there over its own applied seqs
        pending = [r for r in recharges if r["status"] == "pending"]
        now = self._now_ms()
        channel.held = False
        for recharge in pending:
            if recharge["seq"] > floor + lp.RECHARGE_WINDOW:  # the meter would refuse it now
                channel.held = True
                break
            sent = channel.last_sent(recharge)
            # Not again while the last copy may still be on its way, unless the meter has
            # reconnected since (its session may have lost it).
            if (sent is None or sent < channel.online_at or recharge["seq"] in channel.retry
                    or now - sent >= self.resend_every_s * 1000):
                channel.retry.discard(recharge["seq"])
                await self._send_recharge(meter, channel, recharge)
        channel.attention = bool(pending) or self._voids.waiting(meter)
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
            if self.broker.get("share_group"):
                await self.shared_scan()
            await self.resend_pass()

    async def resend_pass(self):
        """Re-send to every meter that has something unacknowledged and is not known offline."""
        if not self.connected.is_set():
            return
        for meter, channel in list(self._channels.items()):
            if channel.attention and channel.online is not False:
                self.kick(meter)

    async def shared_scan(self):
        """Several instances on one broker: a recharge recorded by an instance that died
        before delivering it is known to no other instance's memory, so the holder of the
        store's `redeliver` lease (one instance at a time, taken over three periods after its
        holder stops renewing) looks for pending recharges in the store each period. True
        when this instance scanned."""
        holder = self.broker.get("client_id") or self.broker.get("username")
        ttl_ms = int(self.resend_every_s * 3000)
        try:
            if not await self.store.acquire_lease("redeliver", holder, ttl_ms, self._now_ms()):
                return False
        except StoreError as error:
            log.warning("redeliver lease failed", extra={"error": str(error)})
            return False
        await self._scan_pending()
        return True

    async def _scan_pending(self):
        """Find meters with pending recharges in the store (at start: left from before, a
        restart, a full queue) so the periodic pass covers them even before their status
        arrives."""
        try:
            for meter in await self.store.list_meters():
                if await self.store.list_recharges(meter["meter_no"], status="pending"):
                    self.channel(meter["meter_no"]).attention = True
        except StoreError as error:
            log.warning("pending scan failed", extra={"error": str(error)})
