# A whole meter under the MicroPython unix port for tests/link: MeterApp on fake hardware, the
# link and the firmware MQTT client, on a fast clock (60 s a step). Prints "up", then on exit
# "done balance=... recharges=... history_unacked=... malformed=...".
#   micropython meter_peer.py HOST PORT METER_ID PASSWORD STATE_DIR
import sys
import asyncio
from appfakes import FakeBoard, ManualClock
from meter import config as meter_config
from meter.app import MeterApp
from meter.link import make_link
from meter.storage import StateStore


async def run(app, link, client):
    task = asyncio.create_task(client.run())
    await client.up.wait()
    print("up")
    app.board.sensor.power_w = 600
    while not (link.recharges >= 2 and link.history.next_seq > 3
               and link.history.unacked() == 0 and client.pending() == 0):
        app.clock.advance(60000)
        app.tick()
        link.tick(60)
        await asyncio.sleep(0.002)
    print("done balance=%d recharges=%d history_unacked=%d malformed=%d" % (
        app.ledger.balance, link.recharges, link.history.unacked(), link.malformed))
    await client.stop(link.offline_payload("disconnect"))
    task.cancel()


def main(argv):
    host, port, meter_id, password, root = argv[:5]
    cfg, _ = meter_config.from_dict({
        "meter_id": meter_id, "initial_balance_cents": 100000,
        "tariff": {"version": 1, "bands": [{"rate": 2500}], "vat_bp": 0},
        "mqtt": {"host": host, "port": int(port), "user": meter_id, "password": password},
        "policy": {"min_switch_s": 0}, "persist_interval_s": 3600})
    clock = ManualClock(1767225600)
    app = MeterApp(cfg, StateStore(root), clock)
    app.attach(FakeBoard(clock, app.relay_at_boot()))
    app.tick()
    link, client = make_link(app, history_root=root, backoff_min_ms=20, backoff_max_ms=200)
    asyncio.run(run(app, link, client))


main(sys.argv[1:])
