# A whole meter under the MicroPython unix port for tests/link: MeterApp on fake hardware, the
# link and the firmware MQTT client, on a fast clock (60 s a step). Prints "up", then on exit
# "done balance=... recharges=... history_unacked=... malformed=...".
#   micropython meter_peer.py HOST PORT METER_ID PASSWORD STATE_DIR
import sys
import asyncio
from appfakes import linked_meter


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
    app, link, client = linked_meter(root, meter_id, host, int(port), password, 100000,
                                     backoff_ms=(20, 200))
    asyncio.run(run(app, link, client))


main(sys.argv[1:])
