"""Flash MicroPython onto a meter's ESP32 with esptool: detect the chip, erase, write the image
at the chip's offset (0x1000 for the ESP32 and ESP32-S2, 0x0 for the S3, C3, C6).

    python tools/flash.py --port /dev/ttyUSB0 --firmware ESP32_GENERIC-20250415-v1.25.0.bin
    python tools/flash.py --port /dev/ttyUSB0 --firmware x.bin --dry-run   # print the commands

Without a firmware image it says where to get one and exits with status 2.
"""
import argparse
import os
import re
import subprocess
import sys

OFFSETS = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0, "esp32c6": 0x0}
IMAGE_MAGIC = 0xE9  # the first byte of every ESP-IDF application/bootloader image
DOWNLOAD_HELP = """no MicroPython firmware image given (FIRMWARE=path/to/micropython.bin).

Get one for the meter's chip from https://micropython.org/download/ :
  ESP32 DevKit (the reference meter): https://micropython.org/download/ESP32_GENERIC/
  ESP32-S3 boards:                    https://micropython.org/download/ESP32_GENERIC_S3/
  ESP32-C3 boards:                    https://micropython.org/download/ESP32_GENERIC_C3/
take the .bin (not .app-bin or .elf), then: make flash PORT=%s FIRMWARE=ESP32_GENERIC-....bin
Where the internet is reachable, mpflash downloads and flashes in one go:
  pip install mpflash && mpflash flash --board ESP32_GENERIC      (see mpflash --help)"""


class FlashError(Exception):
    pass


def esptool_cmd():
    exe = os.path.join(os.path.dirname(sys.executable), "esptool")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "esptool"]


def chip_from_output(text):
    """esptool's chip-id output -> "esp32", "esp32s3", ... (None if it names no chip)."""
    m = re.search(r"(?:Chip is|Chip type:|Detecting chip type\.\.\.)\s*(ESP32(?:-[SC]\d)?)",
                  text, re.IGNORECASE)
    if not m:
        return None
    return m.group(1).lower().replace("-", "")


def offset_for(chip):
    if chip not in OFFSETS:
        raise FlashError("no known firmware offset for chip %r (known: %s)"
                         % (chip, ", ".join(sorted(OFFSETS))))
    return OFFSETS[chip]


def check_image(path):
    if not path:
        raise FlashError("missing")
    if not os.path.isfile(path):
        raise FlashError("firmware image %s does not exist" % path)
    with open(path, "rb") as f:
        head = f.read(1)
    if not head or head[0] != IMAGE_MAGIC:
        raise FlashError("%s is not an ESP32 firmware image (first byte 0x%s, want 0xe9): "
                         "take the .bin from micropython.org/download" % (path, head.hex() or "--"))


def detect_chip(port, run=subprocess.run):
    proc = run(esptool_cmd() + ["--port", port, "chip-id"], capture_output=True, text=True,
               timeout=60)
    chip = chip_from_output(proc.stdout + proc.stderr)
    if chip is None:
        raise FlashError("could not identify the chip on %s:\n%s"
                         % (port, (proc.stdout + proc.stderr).strip()[-800:]))
    return chip


def commands(port, chip, image, baud=460800, erase=True):
    base = esptool_cmd() + ["--chip", chip, "--port", port]
    out = []
    if erase:
        out.append(base + ["erase-flash"])
    out.append(base + ["--baud", str(baud), "write-flash", hex(offset_for(chip)), image])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", default=os.environ.get("PORT", ""))
    p.add_argument("--firmware", default=os.environ.get("FIRMWARE", ""))
    p.add_argument("--chip", default="auto", help="auto (ask the board) or esp32, esp32s3, ...")
    p.add_argument("--baud", type=int, default=460800)
    p.add_argument("--no-erase", action="store_true", help="write without erasing first")
    p.add_argument("--dry-run", action="store_true", help="print the esptool commands only")
    args = p.parse_args(argv)
    if not args.firmware:
        print("flash: " + DOWNLOAD_HELP % (args.port or "/dev/ttyUSB0"), file=sys.stderr)
        return 2
    try:
        check_image(args.firmware)
        if not args.port:
            raise FlashError("no serial port given (PORT=/dev/ttyUSB0)")
        chip = args.chip if args.chip != "auto" else detect_chip(args.port)
        cmds = commands(args.port, chip, args.firmware, args.baud, not args.no_erase)
    except FlashError as exc:
        print("flash: %s" % exc, file=sys.stderr)
        return 2
    for cmd in cmds:
        print(" ".join(cmd), flush=True)
        if not args.dry_run and subprocess.run(cmd).returncode != 0:
            print("flash: esptool failed", file=sys.stderr)
            return 1
    if not args.dry_run:
        print("flashed %s at %s onto the %s on %s" % (args.firmware, hex(offset_for(chip)), chip,
                                                       args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
