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


def test_only_the_board_module_imports_the_hardware():
    assert build_firmware.hardware_imports() == []


def test_the_hardware_ban_catches_an_import_outside_the_board_module(tmp_path, monkeypatch):
    fw = tmp_path / "fw"
    (fw / "meter" / "drivers").mkdir(parents=True)
    (fw / "meter" / "board.py").write_text("import machine\nimport network\n")
    (fw / "meter" / "energy.py").write_text(
        "import json\nfrom machine import Pin\n\n\ndef f():\n    import esp32\n")
    (fw / "meter" / "drivers" / "relay.py").write_text(
        "try:\n    import ntptime\nexcept ImportError:\n    pass\nimport network.x\n")
    (fw / "main.py").write_text("import machine\n")
    monkeypatch.setattr(build_firmware, "FIRMWARE", str(fw))
    monkeypatch.setattr(build_firmware, "ROOT", str(tmp_path))
    found = build_firmware.hardware_imports()
    assert sorted(found) == sorted([
        (os.path.join("fw", "main.py"), 1, "machine"),
        (os.path.join("fw", "meter", "energy.py"), 2, "machine"),
        (os.path.join("fw", "meter", "energy.py"), 6, "esp32"),
        (os.path.join("fw", "meter", "drivers", "relay.py"), 2, "ntptime"),
        (os.path.join("fw", "meter", "drivers", "relay.py"), 5, "network.x"),
    ])
    # --check reports each as file:line with the module, and fails.
    monkeypatch.setattr(build_firmware, "pyright", lambda: (True, ""))
    monkeypatch.setattr(sys, "argv", ["build_firmware.py", "--out", str(tmp_path / "out"),
                                      "--check"])
    printed = []
    monkeypatch.setattr("builtins.print", lambda *a: printed.append(" ".join(map(str, a))))
    assert build_firmware.main() == 1
    assert "%s:6: imports esp32; only meter/board.py may touch the hardware" % (
        os.path.join("fw", "meter", "energy.py")) in printed
    assert printed[-1].startswith("firmware FAILED")


def test_firmware_type_checks_against_esp32_stubs():
    ok, out = build_firmware.pyright()
    assert ok, out
