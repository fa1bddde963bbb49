"""The ESP32 images for the meter, built the two ways a fleet can carry the firmware off the heap.

    python3 tools/esp32_image.py image --src ~/micropython      # make esp32-image
    python3 tools/esp32_image.py image --src ~/micropython --dry-run
    python3 tools/esp32_image.py romfs                          # make romfs-image

image: MicroPython v1.28.0's ESP32_GENERIC board with firmware/manifest.py frozen in (the meter
package and main.py in flash, asyncio from extmod), built inside Espressif's published ESP-IDF
container (espressif/idf, the IDF version MicroPython v1.28.0 recommends), from a MicroPython
checkout with its submodules (`git clone --depth 1 -b v1.28.0 https://github.com/micropython/micropython`;
the build runs `make submodules` for the esp32 port first). Needs docker and the network for the
container and submodules: it cannot run on the machine the tests run on, so the tests check its
inputs (manifest, board, partition table) against the vendored source and the command it runs.
Output: build/esp32/mita-ESP32_GENERIC-v1.28.0.bin, flashed by `make flash FIRMWARE=...`.
The board's default table (partitions-4MiBplus.csv) leaves 0x1F0000 bytes for the image; the
IDF build fails if the frozen image does not fit.

romfs: for a stock MicroPython v1.25+ image whose partition table has a romfs partition
(partitions-4MiB-romfs.csv: 128 KiB at 0x1E0000): the firmware's .mpy files as a ROMFS image,
which the board mounts at /rom and runs in place, so the bytecode stays off the heap without a
custom build. Output: build/esp32/mita.romfs (lib/meter/*.mpy), written to a board with
`mpremote romfs deploy` (`mpremote romfs -o` builds the same image offline, as here); main.py
and config.json stay on the filesystem (`make deploy`). On v1.28.0's ESP32 port the ROMFS mount
appends `/rom` and `/rom/lib` to sys.path during mp_init, before main.c appends `/lib`
(extmod/vfs.c, ports/esp32/main.c), so a filesystem copy of the package does not shadow it.
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "esp32")
MANIFEST = os.path.join(ROOT, "firmware", "manifest.py")
BOARD = "ESP32_GENERIC"
MICROPYTHON = "v1.28.0"
IDF_IMAGE = "espressif/idf:v5.5.1"  # ports/esp32/README.md of v1.28.0: the recommended IDF
# The board's files the image build reads (relative to the MicroPython checkout).
IMAGE_INPUTS = ("ports/esp32/boards/%s/mpconfigboard.cmake" % BOARD,
                "ports/esp32/boards/sdkconfig.base", "ports/esp32/partitions-4MiBplus.csv",
                "ports/esp32/modules/_boot.py", "extmod/asyncio/manifest.py")
ROMFS_TABLE = "ports/esp32/partitions-4MiB-romfs.csv"
ROMFS_BYTES = 0x20000  # the romfs partition in ROMFS_TABLE


class ImageError(Exception):
    pass


def missing_inputs(src):
    """The files the image build needs that the checkout at `src` lacks."""
    return [p for p in IMAGE_INPUTS if not os.path.isfile(os.path.join(src, p))]


def image_command(src, uid=None, gid=None):
    """The docker command line that builds the frozen image in Espressif's container."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    make = ("make submodules BOARD={b} && make BOARD={b} FROZEN_MANIFEST=/mita/firmware/"
            "manifest.py".format(b=BOARD))
    return ["docker", "run", "--rm", "-u", "%d:%d" % (uid, gid), "-e", "HOME=/tmp",
            "-v", "%s:/micropython" % os.path.abspath(src),
            "-v", "%s:/mita/firmware:ro" % os.path.join(ROOT, "firmware"),
            "-w", "/micropython/ports/esp32", IDF_IMAGE, "bash", "-c", make]


def build_image(src, dry_run=False, log=print):
    missing = missing_inputs(src)
    if missing:
        raise ImageError("%s is not a MicroPython %s checkout (missing %s)"
                         % (src, MICROPYTHON, ", ".join(missing)))
    cmd = image_command(src)
    log("+ " + " ".join(shlex.quote(a) for a in cmd))
    if dry_run:
        return None
    if shutil.which("docker") is None:
        raise ImageError("docker not found: the ESP32 image is built in Espressif's ESP-IDF "
                         "container (%s); install docker, or build in an ESP-IDF shell with "
                         "the make line above" % IDF_IMAGE)
    subprocess.run(cmd, check=True)
    built = os.path.join(src, "ports", "esp32", "build-" + BOARD, "firmware.bin")
    os.makedirs(OUT, exist_ok=True)
    dest = os.path.join(OUT, "mita-%s-%s.bin" % (BOARD, MICROPYTHON))
    shutil.copy2(built, dest)
    log("image: %s" % dest)
    return dest


def build_romfs(out=None, log=print):
    """The firmware's .mpy files (tools/build_firmware.py) as a ROMFS image; returns its path."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build_firmware
    work = os.path.join(OUT, "romfs-src")
    if os.path.isdir(work):
        shutil.rmtree(work)
    staged = os.path.join(OUT, "romfs-fw")
    errors = build_firmware.build(staged)
    if errors:
        raise ImageError("mpy-cross failed: %s" % errors)
    os.makedirs(work)
    shutil.copytree(os.path.join(staged, "lib"), os.path.join(work, "lib"))
    out = out or os.path.join(OUT, "mita.romfs")
    mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
    subprocess.run([mpremote if os.path.exists(mpremote) else "mpremote", "romfs", "--no-mpy",
                    "-o", out, "build", work], check=True, stdout=subprocess.DEVNULL)
    size = os.path.getsize(out)
    if size > ROMFS_BYTES:
        raise ImageError("ROMFS image of %d bytes is over the %d-byte partition of %s"
                         % (size, ROMFS_BYTES, ROMFS_TABLE))
    log("romfs: %s (%d bytes of the %d-byte partition in %s)" % (out, size, ROMFS_BYTES,
                                                                  ROMFS_TABLE))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    image = sub.add_parser("image", help="the frozen ESP32_GENERIC image (docker)")
    image.add_argument("--src", default=os.environ.get("MITA_MICROPYTHON_CHECKOUT", ""),
                       help="a MicroPython v1.28.0 git checkout (submodules are fetched)")
    image.add_argument("--dry-run", action="store_true", help="check inputs, print the command")
    sub.add_parser("romfs", help="the firmware as a ROMFS image for a stock v1.25+ board")
    args = p.parse_args(argv)
    try:
        if args.what == "romfs":
            build_romfs()
        elif not args.src:
            raise ImageError("no checkout given: --src DIR (git clone --depth 1 -b %s "
                             "https://github.com/micropython/micropython DIR)" % MICROPYTHON)
        else:
            build_image(args.src, args.dry_run)
    except (ImageError, subprocess.CalledProcessError) as exc:
        print("esp32 image: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
