# A month (or any number of days) of the whole meter with its cloud link up, under a heap cap:
# the simulator's board and household on the virtual clock, the firmware booted by its own boot
# module, its link and MQTT client connected to a real broker with the real cloud behind it
# (bench/firmware_month.py starts both and pays on the lines printed here).
#
# One-second meter ticks back to back; the link steps with them (telemetry every 10 s, history
# every 15 min); asyncio runs the client's reads and writes between ticks, in real time (its
# keepalive too), and virtual time stands still while anything the meter sent waits for the
# broker's answer. Lines printed (stdout, flushed):
#   up live=B                    connected; B bytes live
#   hour H balance=C live=B      at each virtual hour (the driver pays every few hours)
#   month-ok k=v ...             at the end; exit status 0
#   month-memoryerror tick=N     a MemoryError (exit status 1)
import asyncio
import gc
import sys

import time  # bench/mpy/time.py: virtual ticks for the firmware
import rig
from asyncio import core

# asyncio keeps real time, as the broker does: its C task queue stamps new and woken tasks with
# the port's real ticks, so a queue ordered by virtual ticks would never run them. The meter's
# own clock (meter.clock, through time.ticks_ms) stays virtual.
core.ticks = time.real_ticks_ms

TELEMETRY_S = 10
PUMP_MS = 5000  # the longest real wait for the broker's answers before counting a stall


def _config(host, port, meter_id, password, key):
    return {"mqtt": {"host": host, "port": port, "user": meter_id, "password": password},
            "key": key}


async def _pump(client, real_ms=PUMP_MS):
    """Run the client's tasks until it has nothing waiting (or real_ms passes): True if clear."""
    start = time.real_ticks_ms()
    while True:
        await asyncio.sleep(0)
        if client.pending() == 0 and client.connected:
            return True
        if time.ticks_diff(time.real_ticks_ms(), start) > real_ms:
            return False


def _say(line):
    print(line)
    try:
        sys.stdout.flush()
    except AttributeError:
        pass


async def _run(flash_dir, ticks, host, port, meter_id, password, key, balance_cents):
    from meter.link import make_link
    rig.clean(flash_dir)
    clock, world, board = rig.make_board(flash_dir, balance_cents, meter_id=meter_id,
                                         extra=_config(host, port, meter_id, password, key))
    sim_live = rig.heap()
    log = rig.LogCounter()
    app = rig.start(flash_dir, log)
    link, client = make_link(app, history_root=app.state_root, telemetry_s=TELEMETRY_S)
    task = asyncio.create_task(client.run())
    if not await _pump(client, 20000):
        raise rig.BenchError("no connection to %s:%d (%s)" % (host, port, client.last_error))
    _say("up live=%d sim=%d" % (rig.heap(), sim_live))
    stalls = 0
    peak = 0
    n = 0
    try:
        for n in range(1, ticks + 1):
            rig.step(clock, board, app)
            link.tick(1)
            await asyncio.sleep(0)
            if n % TELEMETRY_S == 0:
                if not await _pump(client):
                    stalls += 1
                used = gc.mem_alloc()
                if used > peak:
                    peak = used
            if n % 3600 == 0:
                _say("hour %d balance=%d live=%d" % (n // 3600, app.ledger.balance, rig.heap()))
                await _pump(client)  # a payment made on this line arrives before time moves on
    except MemoryError:
        _say("month-memoryerror tick=%d" % n)
        raise
    await _pump(client)
    live = rig.heap()
    if app.tick_errors or app.persist_errors:
        raise rig.BenchError("tick errors %d, persist errors %d, last log: %s" % (
            app.tick_errors, app.persist_errors, log.last))
    _say("month-ok ticks=%d energy_wh=%d balance_cents=%d recharges=%d refused=%d "
         "malformed=%d telemetry=%d history_unacked=%d connects=%d dropped=%d stalls=%d "
         "relay_switches=%d json_overflows=%d live=%d sim=%d peak=%d" % (
             ticks, app.energy.total_wh, app.ledger.balance, link.recharges, link.refused,
             link.malformed, link.telemetry_sent,
             link.history.unacked() if link.history else -1, client.connects, client.dropped,
             stalls, app.board.relay.switch_count, client.json_overflows, live, sim_live, peak))
    await client.stop(link.offline_payload("disconnect"))
    task.cancel()


def main(flash_dir, ticks, host, port, meter_id, password, key, balance_cents=3000):
    asyncio.run(_run(flash_dir, ticks, host, port, meter_id, password, key, balance_cents))
    sys.exit(0)
