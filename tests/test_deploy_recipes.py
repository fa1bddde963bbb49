"""The deployment recipes (deploy/, Procfile, docs/operations.md) stay true to the code: each
runs a `python -m cloud` command the CLI takes, names only settings the cloud reads, the
example settings load, the image copies what exists and installs what the cloud imports, the
systemd unit passes systemd's own check, nginx's upstreams are the instances' ports. The image
itself is not built here (no docker daemon, no network)."""

import ast
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from source_tree import parse_file  # noqa: E402

from cloud.__main__ import build_parser  # noqa: E402
from cloud.config import SAFARICOM_CALLBACK_NETS, config_from_mapping, parse_env_file  # noqa: E402

DEPLOY = os.path.join(ROOT, "deploy")
INSTANCES = (1, 2, 3)
# The environment variables a recipe may set that the cloud does not read itself.
NOT_OURS = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


def text(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def settings_the_cloud_reads():
    """Every upper-case name the config modules look up (string constants in their code)."""
    names = set()
    for module in ("cloud/config.py", "cloud/link/settings.py"):
        for node in ast.walk(parse_file(os.path.join(ROOT, module))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", node.value):
                names.add(node.value)
    return names


def recipe_commands():
    """(recipe, the command it runs) for the image, the unit and the Procfile."""
    docker = re.search(r"^CMD (\[.*\])$", text("deploy", "Dockerfile"), re.M)
    unit = re.search(r"^ExecStart=(.*)$", text("deploy", "mita-cloud@.service"), re.M)
    procfile = re.fullmatch(r"web: (.*)\n", text("Procfile"))
    return [("Dockerfile", json.loads(docker.group(1))),
            ("systemd unit", shlex.split(unit.group(1))),
            ("Procfile", shlex.split(procfile.group(1)))]


@pytest.mark.parametrize("recipe,argv", recipe_commands())
def test_each_recipe_runs_python_m_cloud_serve(recipe, argv):
    assert os.path.basename(argv[0]) == "python" and argv[1:3] == ["-m", "cloud"], recipe
    args = build_parser().parse_args(argv[3:])
    assert args.command == "serve", recipe
    assert args.env_file == ""  # settings from the environment only, no .env in the cwd


def env_files():
    return sorted(name for name in os.listdir(DEPLOY) if name.endswith(".env.example"))


def test_the_recipes_and_the_runbook_name_only_settings_the_cloud_reads():
    known = settings_the_cloud_reads()
    assert {"MITA_MQTT_SHARE_GROUP", "MITA_MQTT_URL", "PORT", "MITA_STORE"} <= known
    sources = [text("deploy", name) for name in env_files()]
    sources += [text("deploy", "Dockerfile"), text("deploy", "mita-cloud@.service")]
    runbook = text("docs", "operations.md").split("## Deployment recipes", 1)
    assert len(runbook) == 2, "docs/operations.md has lost its Deployment recipes section"
    sources.append(runbook[1])
    named = set()
    for source in sources:
        named |= set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})=", source))
    assert named - NOT_OURS <= known, sorted(named - NOT_OURS - known)
    assert "MITA_MQTT_SHARE_GROUP" in named


@pytest.mark.parametrize("instance", INSTANCES)
def test_the_example_settings_load_as_instance_n_of_three(instance):
    env = parse_env_file(text("deploy", "cloud.env.example"))
    env.update(parse_env_file(text("deploy", "cloud-%d.env.example" % instance)))
    config = config_from_mapping(env)
    assert config.port == 8080 + instance
    assert config.store == "firebase"
    assert config.link.share_group == "mita" and not config.link.embedded
    assert config.link.url.startswith("mqtt://mita-bridge-%d:" % instance)


def normalised(distribution):
    return re.sub(r"[-_.]+", "-", distribution).lower()  # PEP 503


def test_the_image_copies_what_exists_and_installs_what_the_cloud_imports():
    dockerfile = text("deploy", "Dockerfile")
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert os.path.exists(os.path.join(ROOT, path)), path
    installed = {normalised(re.split(r"[<>=]", spec.strip('"'))[0])
                 for spec in re.findall(r'"[a-z0-9-]+[<>=][^"]*"|\btzdata\b', dockerfile)}
    provides = importlib.metadata.packages_distributions()
    imported = set()
    for folder in ("cloud", "standins"):
        for base, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith(".py"):
                    for node in ast.walk(parse_file(os.path.join(base, name))):
                        if isinstance(node, ast.Import):
                            imported |= {a.name.split(".")[0] for a in node.names}
                        elif isinstance(node, ast.ImportFrom) and node.level == 0:
                            imported.add(node.module.split(".")[0])
    ours = {"cloud", "standins", "simulator"}  # copied as source, not installed
    third_party = {m for m in imported - ours
                   if m in provides and m not in sys.stdlib_module_names}
    assert third_party >= {"aiohttp", "aiomqtt", "amqtt", "firebase_admin", "openpaygo"}
    for module in third_party:
        dists = {normalised(d) for d in provides[module]}
        assert dists & installed, "%s (from %s) is not installed in the image" % (module, dists)


def test_nginx_sends_to_the_three_instances_and_lets_only_safaricom_call_back():
    conf = text("deploy", "nginx-mita.conf")
    ports = {int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+)", conf)}
    wanted = {config_from_mapping(parse_env_file(
        text("deploy", "cloud-%d.env.example" % n))).port for n in INSTANCES}
    assert ports == wanted
    assert set(re.findall(r"allow (\S+);", conf)) == set(SAFARICOM_CALLBACK_NETS)
    assert "location = /api/events" in conf and "proxy_buffering off" in conf


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path):
    unit = text("deploy", "mita-cloud@.service")
    # systemd checks that the program exists: point it at this checkout's interpreter
    unit = unit.replace("/opt/mita/.venv/bin/python", sys.executable)
    path = tmp_path / "mita-cloud@1.service"
    path.write_text(unit)
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
