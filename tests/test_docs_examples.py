"""Every example in the docs is run by the code it describes, so none can drift from it again
(issue #14: protocol.md's tariff used `upto_wh`, which the engine refuses). Every ```json block
in README.md and docs/*.md must parse; every message example in docs/protocol.md and
docs/recharge-and-persistence.md goes through the real parser of the side that receives it,
the firmware's own modules included; every `make` target the docs tell people to run exists."""

import json
import pathlib
import re
import subprocess
import sys

import pytest

import simulator

simulator.install()

from meter import recharge, tariff_config  # noqa: E402  (after the fakes are installed)

from cloud.link import payloads  # noqa: E402
from cloud.tariff import validate_tariff  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(path, lang=None):
    """(section heading, language, text) of each fenced block in a markdown file."""
    text = path.read_text(encoding="utf-8")
    for match in _FENCE.finditer(text):
        if lang is None or match.group(1) == lang:
            above = text[:match.start()]
            headings = re.findall(r"^#+ (.*)$", above, re.M)
            yield (headings[-1] if headings else ""), match.group(1), match.group(2)


def _tariff(msg):
    # the cloud's validation is the firmware's parser; ask the firmware directly as well
    tariff_config.parse_tariff(msg["tariff"])
    return validate_tariff(msg["tariff"])


def _sync(msg):
    assert set(msg) == {"v", "recharge_floor"} and type(msg["recharge_floor"]) is int


def _recharge(msg):
    recharge.validate(msg, 25_000_000, only_source="cloud")


# section heading -> the parser of each json example in it, in order
PARSERS = {
    "docs/protocol.md": {
        "`status` (meter -> cloud, retained)": [payloads.parse_status],
        "`telemetry` (meter -> cloud)": [payloads.parse_telemetry],
        "`history` (meter -> cloud) and `history/ack` (cloud -> meter)": [payloads.parse_history],
        "`recharge` (cloud -> meter) and `recharge/ack` (meter -> cloud)":
            [_recharge, payloads.parse_recharge_ack],
        "`tariff` (cloud -> meter) and `tariff/ack`": [_tariff, payloads.parse_tariff_ack],
        "`sync` (cloud -> meter)": [_sync],
    },
    "docs/recharge-and-persistence.md": {"A recharge message": [_recharge]},
}


def _json_examples():
    for path in DOCS:
        for n, (heading, _, text) in enumerate(blocks(path, "json")):
            yield pytest.param(text, id=f"{path.name}:{heading}:{n}")


@pytest.mark.parametrize("text", list(_json_examples()))
def test_every_json_example_is_json(text):
    json.loads(text)


@pytest.mark.parametrize("doc", sorted(PARSERS))
def test_every_message_example_is_parsed_by_the_real_code(doc):
    found = {}
    for heading, _, text in blocks(ROOT / doc, "json"):
        found.setdefault(heading, []).append(json.loads(text))
    # a new example, or a renamed section, must be given its parser here
    assert {h: len(v) for h, v in found.items()} == {h: len(p) for h, p in PARSERS[doc].items()}
    for heading, messages in found.items():
        for parse, msg in zip(PARSERS[doc][heading], messages):
            parse(msg)


def _make_targets():
    done = subprocess.run(["make", "-pRrq", "-f", "Makefile", ":"], cwd=ROOT,
                          capture_output=True, text=True)
    return set(re.findall(r"^([a-zA-Z][\w-]*):", done.stdout, re.M))


def test_every_make_command_in_the_docs_exists():
    targets = _make_targets()
    told = set()
    for path in DOCS:
        for _, lang, text in blocks(path):
            if lang not in ("", "sh", "shell", "bash", "make"):
                continue
            told.update(re.findall(r"^\s*(?:\$ )?make ([a-z][\w-]*)", text, re.M))
    assert told and told <= targets, sorted(told - targets)


def _shell_lines():
    for path in DOCS:
        for _, lang, text in blocks(path):
            if lang in ("", "sh", "shell", "bash"):
                yield from (line.strip() for line in text.splitlines())


def test_every_python_command_in_the_docs_runs_its_help():
    """`python -m cloud serve ...`, `python -m simulator run ...`: the module and its
    subcommand exist and take --help (running them for real is other tests' job)."""
    commands = set()
    scripts = set()
    for line in _shell_lines():
        module = re.match(r"(?:\$ )?(?:\.venv/bin/)?python -m ([\w.]+)(?: ([a-z][\w-]*))?", line)
        if module:
            commands.add(module.groups())
        script = re.match(r"(?:\$ )?\.venv/bin/python ([\w/]+\.py)", line)
        if script:
            scripts.add(script.group(1))
    assert commands and all((ROOT / s).is_file() for s in scripts), sorted(scripts)
    for module, sub in sorted(commands, key=str):
        argv = [sys.executable, "-m", module] + ([sub] if sub else []) + ["--help"]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (module, sub, done.stderr[-500:])
