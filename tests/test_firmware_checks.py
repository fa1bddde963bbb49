"""The firmware is MicroPython: it compiles with mpy-cross, imports nothing the ESP32 lacks,
and type-checks against micropython-esp32-stubs."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import build_firmware  # noqa: E402


def test_every_firmware_module_compiles_with_mpy_cross(tmp_path):
    errors = build_firmware.build(str(tmp_path / "fw"))
    assert errors == []
    built = [os.path.relpath(os.path.join(b, f), tmp_path / "fw")
             for b, _, fs in os.walk(tmp_path / "fw") for f in fs]
    assert "main.py" in built
    assert any(p.endswith(".mpy") for p in built)


def test_firmware_imports_nothing_the_esp32_lacks():
    assert build_firmware.banned_imports() == []


def test_the_import_ban_catches_a_banned_module(tmp_path, monkeypatch):
    bad = tmp_path / "fw"
    bad.mkdir()
    (bad / "x.py").write_text("import dataclasses\nfrom typing import List\nimport json\n")
    monkeypatch.setattr(build_firmware, "FIRMWARE", str(bad))
    monkeypatch.setattr(build_firmware, "ROOT", str(tmp_path))
    assert [n for _, _, n in build_firmware.banned_imports()] == ["dataclasses", "typing"]


def test_firmware_type_checks_against_esp32_stubs():
    ok, out = build_firmware.pyright()
    assert ok, out
