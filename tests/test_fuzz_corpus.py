"""Every input in tests/fuzz_corpus/<target>/ (seeds, and what bench/fuzz_parsers.py found
crashing, kept as regressions) through its parser (bench/fuzz/targets.py): each must answer or
raise only the error it documents for bad input."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench", "fuzz"))
import targets  # noqa: E402

CORPUS = os.path.join(ROOT, "tests", "fuzz_corpus")
CASES = sorted((t, name) for t in os.listdir(CORPUS) for name in os.listdir(os.path.join(CORPUS, t)))


def test_every_target_has_a_corpus_and_every_corpus_a_target():
    assert sorted(os.listdir(CORPUS)) == sorted(targets.TARGETS)


@pytest.mark.parametrize("target,name", CASES, ids=["%s/%s" % c for c in CASES])
def test_the_corpus_input_is_answered_or_refused(target, name):
    with open(os.path.join(CORPUS, target, name), "rb") as f:
        targets.TARGETS[target](f.read())
