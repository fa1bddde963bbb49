# Where the heap goes with the meter running: the simulator's share first (it is not on the
# device), then each firmware module's import cost (bytecode, its qstrs and globals), then the
# app's data after some ticks, split by the app attribute that holds it. Prints qstr-mark lines
# (the qstr pools' size at each step), then one JSON line.
import gc
import json
import micropython
import sys

import rig

_DROP_ORDER = ("events", "snapshot", "alerts", "store", "recharger", "biller", "ledger", "energy",
               "policy", "board", "clock", "config", "log")


def loaded_modules(flash_dir, ticks=5):
    """The firmware modules this configuration loads (boot chain and lazy driver imports)."""
    rig.clean(flash_dir)
    clock, world, board = rig.make_board(flash_dir, 30000)
    app = rig.start(flash_dir, rig.LogCounter())
    for _ in range(ticks):
        rig.step(clock, board, app)
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("meter"))))


def _meter_modules():
    return set(m for m in sys.modules if m.startswith("meter"))


def qstr_mark(label):
    """The qstr pools' size under a label, for the driver: names are interned in pools that
    double when full, and a new pool lands on whatever happens to need it."""
    print("qstr-mark", label)
    micropython.qstr_info()


def _import_each(names, first_mark):
    """[name, heap bytes, modules it brought in], a qstr mark before the first and after each."""
    costs = []
    qstr_mark(first_mark)
    for name in names:
        before = _meter_modules()
        start = rig.heap()
        __import__(name)
        costs.append([name, rig.heap() - start, sorted(_meter_modules() - before)])
        qstr_mark(name)
    return costs


def main(flash_dir, order, extra=(), ticks=300):
    out = {"heap_total": gc.mem_alloc() + gc.mem_free()}
    out["sim_code"] = rig.heap()
    rig.clean(flash_dir)
    clock, world, board = rig.make_board(flash_dir, 30000)
    out["sim_objects"] = rig.heap() - out["sim_code"]
    out["modules"] = _import_each(order, "before-imports")
    # The sum of the deltas: the bench's own list of rows is not the firmware's code.
    out["code"] = sum(row[1] for row in out["modules"])
    base = rig.heap()
    log = rig.LogCounter()
    app = rig.start(flash_dir, log)
    out["data_after_boot"] = rig.heap() - base
    qstr_mark("after-boot")
    for n in range(1, ticks + 1):
        rig.step(clock, board, app)
        if n == ticks // 2 and rig.recharge(app, 1, 10000)[0] != "applied":
            raise rig.BenchError("the bench recharge was not applied")
    if app.tick_errors or app.persist_errors:
        raise rig.BenchError("tick errors %d, persist errors %d: %s" % (
            app.tick_errors, app.persist_errors, log.last))
    # The unix port scans the C stack conservatively: a stale pointer left there can keep a
    # dead structure alive for one reading. The least of a few readings, ticks apart, is the
    # heap the app really holds.
    samples = []
    for _ in range(5):
        for _ in range(10):
            rig.step(clock, board, app)
        samples.append(rig.heap())
    out["data"] = min(samples) - base
    out["data_spread"] = max(samples) - min(samples)
    out["live"] = min(samples)
    qstr_mark("after-ticks")
    out["late_imports"] = sorted(_meter_modules() - set(order))
    out["ticks"] = ticks
    drops = []
    for name in _DROP_ORDER:
        if hasattr(app, name):
            start = rig.heap()
            setattr(app, name, None)
            drops.append([name, start - rig.heap()])
    start = rig.heap()
    app = None
    drops.append(["the app object and the rest", start - rig.heap()])
    out["data_by_attribute"] = drops
    out["not_loaded"] = _import_each(extra, "before-extra")
    print(json.dumps(out))
