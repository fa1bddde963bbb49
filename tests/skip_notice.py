"""A pytest plugin (loaded by tests/conftest.py): when tests were skipped because mosquitto is
missing, the run ends with one loud line saying how many and the command that fixes it, not
only pytest's "N skipped" count that scrolls past."""

import pytest

_NEEDS = "mosquitto"
_MISSING = pytest.StashKey[int]()
_FIX = "sudo apt-get install mosquitto openssl (what .ci/run does when root), then make test"


def pytest_terminal_summary(terminalreporter, config):
    skipped = terminalreporter.stats.get("skipped", [])
    config.stash[_MISSING] = sum(1 for report in skipped if _NEEDS in _reason(report))


def pytest_unconfigure(config):
    missing = config.stash.get(_MISSING, 0)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if missing and reporter is not None:
        # after pytest's own summary line, so it is the last thing on the screen
        reporter.write_line(f"NOT TESTED: {missing} tests need mosquitto (the MQTT link on a "
                            f"real broker), which is not installed. Fix: {_FIX}",
                            red=True, bold=True)


def _reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)
