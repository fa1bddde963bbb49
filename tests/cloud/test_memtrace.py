"""The soak's memory tracer (cloud/memtrace.py): off unless MITA_TRACEMALLOC names a file; each
report names the source line whose allocations grew since the first report."""

import tracemalloc

from cloud import memtrace
from cloud.config import config_from_mapping

_KEPT = []


def _grow(n):
    _KEPT.extend(bytearray(1000) for _ in range(n))  # the line the report must name


def test_off_by_default_and_on_with_a_file():
    assert config_from_mapping({}).tracemalloc_path == ""
    assert config_from_mapping({"MITA_TRACEMALLOC": "/tmp/m.txt"}).tracemalloc_path == "/tmp/m.txt"


def test_a_report_names_the_line_that_grew_since_the_first(tmp_path):
    path = tmp_path / "memory.txt"
    tracer = memtrace.MemoryTracer(str(path), clock=lambda: 0)
    was_tracing = tracemalloc.is_tracing()
    tracer.start()
    try:
        tracer.report()
        _grow(200)
        tracer.report()
    finally:
        if not was_tracing:
            tracemalloc.stop()
        _KEPT.clear()
    text = path.read_text()
    assert text.count("== report") == 2
    second = text.split("== report 2")[1]
    since_first = second.split("since the previous report")[0]
    top = since_first.splitlines()[2]  # the biggest growth, first after the header
    assert "test_memtrace.py:%d" % (_grow.__code__.co_firstlineno + 1) in top
    assert int(top.split()[0]) >= 200 * 1000  # 200 kept bytearrays of 1000 bytes


async def test_sigusr1_appends_a_report_while_the_service_runs(tmp_path):
    import asyncio
    import os
    import signal
    path = tmp_path / "memory.txt"
    loop = asyncio.get_running_loop()
    was_tracing = tracemalloc.is_tracing()
    memtrace.install(str(path), loop)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(200):  # the handler runs on the loop, soon after the signal
            if path.exists():
                break
            await asyncio.sleep(0.01)
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        if not was_tracing:
            tracemalloc.stop()
    assert path.read_text().startswith("== report 1")
