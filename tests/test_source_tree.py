"""The project's source checks parse files through tools/source_tree.py, which survives what
broke CI once: a garbage collection in the middle of `ast.parse` whose finalizer parses source
too (an asyncio future logging its unretrieved error formats a traceback, and the traceback
module parses the failing line). On CPython 3.11 the bare `ast.parse` then raises
`SystemError: AST constructor recursion depth mismatch`."""

import ast
import gc
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from source_tree import parse_file, parse_source  # noqa: E402

SOURCE = os.path.join(ROOT, "cloud", "link", "bridge.py")


class _ParsesWhenCollected:
    def __del__(self):
        ast.parse("x = (1 + 2) * 3")


def _leave_cyclic_garbage(n=200):
    for _ in range(n):
        item = _ParsesWhenCollected()
        item.me = item  # a cycle: only the collector frees it, at a moment of its choosing


def _parse_amid_collections(parse, rounds=20):
    threshold = gc.get_threshold()
    gc.set_threshold(50)  # collect often, so one lands inside the parse
    failures = 0
    try:
        for _ in range(rounds):
            _leave_cyclic_garbage()
            try:
                parse(SOURCE)
            except SystemError:
                failures += 1
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    return failures


def test_parse_file_survives_finalizers_that_parse_during_the_parse():
    assert _parse_amid_collections(parse_file) == 0
    assert gc.isenabled()


def test_parse_source_gives_the_same_tree_as_ast_parse():
    with open(SOURCE, encoding="utf-8") as f:
        text = f.read()
    assert ast.dump(parse_source(text, SOURCE)) == ast.dump(ast.parse(text, SOURCE))


def test_the_collector_stays_off_when_it_was_off():
    gc.disable()
    try:
        parse_source("a = 1")
        assert not gc.isenabled()
    finally:
        gc.enable()
