# A simulated day under a heap cap: one-second ticks driven back to back (no sleeping), a
# recharge every few hours, the state persisted as the firmware decides. Prints one result
# line; a MemoryError anywhere ends the process with status 1, which is what the cap search reads.
# The default credit is tight on purpose: the balance goes low, critical and to zero (the relay
# opens) and recharges close it again, so the day walks every branch a meter's day has.
import gc
import sys

import rig


def main(flash_dir, ticks=86400, balance_cents=3000, recharge_every=21600,
         recharge_cents=3000):
    rig.clean(flash_dir)
    clock, world, board = rig.make_board(flash_dir, balance_cents)
    log = rig.LogCounter()
    app = rig.start(flash_dir, log)
    low = app.ledger.balance
    recharges = 0
    n = 0
    try:
        for n in range(1, ticks + 1):
            rig.step(clock, board, app)
            if recharge_every and n % recharge_every == 0:
                recharges += 1
                status, reason = rig.recharge(app, recharges, recharge_cents)
                if status != "applied":
                    raise rig.BenchError("recharge %d: %s %s" % (recharges, status, reason))
            if app.ledger.balance < low:
                low = app.ledger.balance
    except MemoryError:
        print("day-memoryerror tick=%d" % n)
        raise
    if app.tick_errors or app.persist_errors:
        raise rig.BenchError("tick errors %d, persist errors %d, last log: %s" % (
            app.tick_errors, app.persist_errors, log.last))
    gc.collect()
    print("day-ok ticks=%d energy_wh=%d balance_cents=%d lowest_cents=%d recharges=%d "
          "relay_switches=%d relay_closed=%d log_lines=%d live=%d" % (
              ticks, app.energy.total_wh, app.ledger.balance, low, recharges,
              app.board.relay.switch_count, app.board.relay.is_closed(), log.lines,
              gc.mem_alloc()))
    sys.exit(0)
