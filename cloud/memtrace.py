"""Opt-in memory tracing for soaks: with MITA_TRACEMALLOC=<file> the service runs under
tracemalloc and, on each SIGUSR1, appends to that file what grew since the first report and
since the previous one (by allocating line, with its call stack), the live asyncio tasks and
the objects by type. Off by default: tracing costs CPU and memory, and the file names the
service's own source lines only (no request data, no secrets).

A cache shows as lines that stop growing between reports; a leak as lines that grow by the
same amount each time (bench/soak.py --tracemalloc sends the signals and reads the file)."""

import asyncio
import collections
import gc
import logging
import signal
import time
import tracemalloc

log = logging.getLogger("mita.memtrace")

_FRAMES = 12  # enough stack to see which of the service's callers allocated
_TOP = 25
_NOISE = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>",
          "<unknown>", tracemalloc.__file__)


def _snapshot():
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, pattern) for pattern in _NOISE])


def top_types(limit=15):
    """[(type name, live count)] of the commonest objects the collector tracks."""
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    return counts.most_common(limit)


def _stack(stat):
    """The allocating line, then the callers that belong to the project (outermost last)."""
    frames = [f for f in stat.traceback if "/site-packages/" not in f.filename
              and "/lib/python3" not in f.filename]
    shown = [stat.traceback[-1]] + [f for f in reversed(frames) if f != stat.traceback[-1]][:4]
    return " <- ".join("%s:%d" % (f.filename.rsplit("/", 2)[-1] if "/" in f.filename
                                  else f.filename, f.lineno) for f in shown)


def _diff_lines(title, newer, older, key):
    stats = newer.compare_to(older, key)
    total = sum(s.size_diff for s in stats)
    lines = ["%s: %+d B in %+d blocks" % (title, total, sum(s.count_diff for s in stats))]
    for stat in stats[:_TOP]:
        lines.append("  %+10d B %+7d blocks  %s" % (stat.size_diff, stat.count_diff,
                                                      _stack(stat)))
    return lines


class MemoryTracer:
    """Reports to `path` on demand; `report()` is what SIGUSR1 runs."""

    def __init__(self, path, clock=time.time):
        self.path = path
        self.clock = clock
        self.first = None     # the first report's snapshot: the baseline after warm-up
        self.previous = None  # tracing's start, then the last report's
        self.reports = 0

    def start(self):
        if not tracemalloc.is_tracing():
            tracemalloc.start(_FRAMES)
        self.previous = _snapshot()

    def report(self):
        snap = _snapshot()
        current, peak = tracemalloc.get_traced_memory()
        self.reports += 1
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # no running loop (a test calling it directly)
            tasks = 0
        lines = ["== report %d at %.0f: traced %d B (peak %d B), %d asyncio tasks" % (
            self.reports, self.clock(), current, peak, tasks)]
        if self.first is None:
            self.first = snap
        else:
            lines += _diff_lines("since the first report", snap, self.first, "traceback")
        lines += _diff_lines("since the previous report" if self.reports > 1
                             else "since tracing started", snap, self.previous, "traceback")
        lines.append("objects by type: " + ", ".join("%s=%d" % t for t in top_types()))
        self.previous = snap
        with open(self.path, "a") as f:
            f.write("\n".join(lines) + "\n")


def install(path, loop):
    """Trace from now on; SIGUSR1 appends a report to `path`. Returns the tracer."""
    tracer = MemoryTracer(path)
    tracer.start()
    loop.add_signal_handler(signal.SIGUSR1, tracer.report)
    log.warning("tracemalloc on: SIGUSR1 appends a memory report", extra={"path": path})
    return tracer
