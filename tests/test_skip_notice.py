"""`make test` without mosquitto ends with one loud line (tests/skip_notice.py)."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(tmp_path, reason):
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\ndef test_broker():\n    pytest.skip(%r)\n\n"
        "def test_other():\n    pass\n" % reason)
    # no plugin autoload: only the notice under test (the suite's plugins take seconds to load)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tests.skip_notice", "test_one.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT),
                                   PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    return [line for line in done.stdout.splitlines() if line.strip()]


def test_a_run_that_skipped_mosquitto_tests_ends_saying_so_and_how_to_fix_it(tmp_path):
    lines = _run(tmp_path, "mosquitto is not installed (/usr/sbin/mosquitto); CI installs it")
    assert lines[-1].startswith("NOT TESTED: 1 tests need mosquitto")
    assert "apt-get install mosquitto" in lines[-1]


def test_other_skips_say_nothing_more(tmp_path):
    lines = _run(tmp_path, "the WiFi path is the same on both brokers: one is enough")
    assert not any("NOT TESTED" in line for line in lines)


def test_rules_left_unevaluated_are_said_too(tmp_path):
    lines = _run(tmp_path, "NOT EVALUATED: database.rules.json needs node and npm's targaryen")
    assert lines[-1].startswith("NOT TESTED: 1 tests need node and npm's targaryen")
