# The firmware MQTT client driven from the MicroPython unix port for tests/link: prints what
# happens as lines on stdout (up N / msg TOPIC PAYLOAD / stats ...), stops on a "quit" message.
#   micropython mqtt_peer.py serve|refused HOST PORT USER PASSWORD [MAX_PACKET [CAFILE]]
import sys
import json
import asyncio
from meter.mqtt import MQTTClient
from meter.mqtt_tls import tls_context


def report(client):
    print("stats connects=%d oversized=%d callback_errors=%d dropped=%d failures=%d refusal=%d"
          % (client.connects, client.oversized, client.callback_errors, client.dropped,
             client.failures, client.refusal))


async def serve(client):
    done = asyncio.Event()
    user = client.user

    def on_message(topic, payload, retained):
        print("msg", topic, payload)
        if payload == b"quit":
            done.set()
            return
        json.loads(payload)  # garbage raises here: the client must count it and carry on

    def on_connect():
        client.publish("meters/%s/telemetry" % user, b'{"v":1,"from":"mpy"}', qos=1)

    client.on_message = on_message
    client.on_connect = on_connect
    task = asyncio.create_task(client.run())
    seen = 0
    while not done.is_set():
        if client.up.is_set() and client.connects != seen:
            seen = client.connects
            print("up", seen)
        await asyncio.sleep(0.005)
    report(client)
    await client.stop()
    task.cancel()


async def refused(client):
    task = asyncio.create_task(client.run())
    while client.failures < 2:
        await asyncio.sleep(0.005)
    print("up" if client.up.is_set() else "down")
    report(client)
    task.cancel()


def main(argv):
    mode, host, port, user, password = argv[:5]
    max_packet = int(argv[5]) if len(argv) > 5 else 4096
    context = tls_context(argv[6]) if len(argv) > 6 else None
    client = MQTTClient(user, host, int(port), user=user, password=password,
                        tls=context is not None, ssl_context=context,
                        subscriptions=[("meters/%s/recharge" % user, 1)],
                        max_packet=max_packet, backoff_min_ms=20, backoff_max_ms=200)
    asyncio.run(serve(client) if mode == "serve" else refused(client))
    import gc
    gc.collect()
    print("heap", gc.mem_alloc())


main(sys.argv[1:])
