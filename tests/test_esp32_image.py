"""The ESP32 recipes (tools/esp32_image.py): the frozen image's inputs exist in MicroPython
v1.28.0's own tree (checked against the vendored source, since the build itself needs docker and
the network), its command freezes firmware/manifest.py into ESP32_GENERIC in Espressif's
container, and the ROMFS image of the firmware builds here and fits the romfs partition."""
import os
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import esp32_image  # noqa: E402
from build_micropython import find_source  # noqa: E402

SOURCE = find_source()


@pytest.fixture(scope="module")
def vendored(tmp_path_factory):
    """The parts of the vendored v1.28.0 tree the image build reads, unpacked."""
    if SOURCE is None or not os.path.isfile(SOURCE):
        pytest.skip("the vendored MicroPython v1.28.0 tarball is not on this machine")
    out = tmp_path_factory.mktemp("mp")
    wanted = set(esp32_image.IMAGE_INPUTS) | {esp32_image.ROMFS_TABLE}
    with tarfile.open(SOURCE) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.split("/", 1)[-1] in wanted]
        tar.extractall(out, members=members)
    return os.path.join(out, "micropython-1.28.0")


def test_the_image_inputs_are_in_micropython_1_28(vendored):
    assert esp32_image.missing_inputs(vendored) == []
    with open(os.path.join(vendored, "ports/esp32/boards/sdkconfig.base")) as f:
        assert 'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions-4MiBplus.csv"' in f.read()
    with open(os.path.join(vendored, esp32_image.ROMFS_TABLE)) as f:
        romfs = [line.split(",") for line in f if line.startswith("romfs")]
    assert int(romfs[0][4], 16) == esp32_image.ROMFS_BYTES


def test_a_folder_that_is_no_checkout_is_refused(tmp_path):
    with pytest.raises(esp32_image.ImageError, match="not a MicroPython"):
        esp32_image.build_image(str(tmp_path), dry_run=True, log=lambda line: None)


def test_the_image_command_freezes_the_manifest_into_esp32_generic(vendored):
    lines = []
    assert esp32_image.build_image(vendored, dry_run=True, log=lines.append) is None
    cmd = esp32_image.image_command(vendored, uid=1000, gid=1000)
    assert cmd[:3] == ["docker", "run", "--rm"] and esp32_image.IDF_IMAGE in cmd
    assert "%s:/mita/firmware:ro" % os.path.join(ROOT, "firmware") in cmd
    assert cmd[-1] == ("make submodules BOARD=ESP32_GENERIC && make BOARD=ESP32_GENERIC "
                       "FROZEN_MANIFEST=/mita/firmware/manifest.py")
    assert lines and lines[0].startswith("+ docker run")
    with open(esp32_image.MANIFEST) as f:  # what the container freezes
        manifest = f.read()
    assert 'package("meter")' in manifest and 'module("main.py")' in manifest


def test_the_firmware_as_a_romfs_image_fits_its_partition(tmp_path, monkeypatch):
    monkeypatch.setattr(esp32_image, "OUT", str(tmp_path))
    path = esp32_image.build_romfs(log=lambda line: None)
    with open(path, "rb") as f:
        image = f.read()
    assert 0 < len(image) <= esp32_image.ROMFS_BYTES
    fw = os.path.join(ROOT, "firmware", "meter")
    names = [n[:-3] + ".mpy" for n in os.listdir(fw) if n.endswith(".py")]
    assert all(name.encode() in image for name in names)  # every module, by its file name


def test_without_a_checkout_the_tool_says_how_to_get_one():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "esp32_image.py"),
                           "image"], capture_output=True, text=True,
                          env=dict(os.environ, MITA_MICROPYTHON_CHECKOUT=""))
    assert proc.returncode == 2
    assert "git clone --depth 1 -b v1.28.0" in proc.stderr
