"""A pytest plugin (loaded by tests/conftest.py): when tests were skipped because a tool is
missing (mosquitto, or node with npm's targaryen), the run ends with one loud line per tool
saying how many and the command that fixes it, not only pytest's "N skipped" that scrolls past."""

import pytest

# word in the skip reason -> (what those tests need, the fix)
_NEEDS = {
    "mosquitto": ("mosquitto (the MQTT link on a real broker)",
                  "sudo apt-get install mosquitto openssl (what .ci/run does when root), "
                  "then make test"),
    "targaryen": ("node and npm's targaryen (database.rules.json evaluated)",
                  "sudo apt-get install nodejs npm, then make setup"),
}
_MISSING = pytest.StashKey[dict]()


def pytest_terminal_summary(terminalreporter, config):
    skipped = terminalreporter.stats.get("skipped", [])
    config.stash[_MISSING] = {word: sum(1 for report in skipped if word in _reason(report))
                              for word in _NEEDS}


def pytest_unconfigure(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for word, missing in config.stash.get(_MISSING, {}).items():
        if missing and reporter is not None:
            need, fix = _NEEDS[word]
            # after pytest's own summary line, so it is the last thing on the screen
            reporter.write_line(f"NOT TESTED: {missing} tests need {need}, which is not "
                                f"installed. Fix: {fix}", red=True, bold=True)


def _reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)
