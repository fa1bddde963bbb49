"""Build MicroPython's unix port, 32-bit, from the vendored source, with and without the firmware.

    python3 tools/build_micropython.py          # or: make micropython
    python3 tools/build_micropython.py --force  # rebuild even when the cache says up to date

Outputs (build/ is git-ignored):
    build/micropython/micropython-plain    32-bit, asyncio frozen (as in the PyPI wheel), no firmware
    build/micropython/micropython-frozen   32-bit, firmware/manifest.py frozen: meter/, main.py, asyncio
    build/micropython/src/mpy-cross/build/mpy-cross
With --bench, also the two images the firmware benchmarks run in (bench/firmware_month.py):
    build/micropython/micropython-bench-frozen  the frozen build plus bench/mpy/manifest_fakes.py
                                                (the simulator's fakes and the bench scripts)
    build/micropython/micropython-bench-plain   the plain build plus the same fakes: the firmware
                                                comes from .mpy files into RAM, the fakes do not

The source is MicroPython v1.28.0: $MITA_MICROPYTHON_SRC (the release tarball, or a checkout of
the v1.28.0 tag) when set, else micropython-1.28.0-src.tar.xz in ../shared/vendor next to the
repository or in /work/shared/vendor. Nothing is downloaded. The build is skipped when a hash
of the source, this script, the manifest and every firmware file matches the last build's.

Flags: MICROPY_FORCE_32BIT=1 (gcc-multilib), and no readline, FFI, btree or SSL, so none of
the absent git submodules (libffi, berkeley-db, mbedtls, axtls, micropython-lib) is needed. The
manifests use nothing from micropython-lib (no require()); MPY_LIB_DIR points at an empty
folder that only satisfies the build's "is the submodule there" check.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "micropython")
SRC = os.path.join(OUT, "src")
TARBALL = "micropython-1.28.0-src.tar.xz"
TOP_DIR = "micropython-1.28.0"
MANIFEST = os.path.join(ROOT, "firmware", "manifest.py")
FAKES_MANIFEST = os.path.join(ROOT, "bench", "mpy", "manifest_fakes.py")
# What the unix port needs from a checkout (the vendored tarball holds exactly this, and more).
TREE = ["LICENSE", "py", "extmod", "shared", "drivers", "mpy-cross", "tools", "ports/unix",
        "lib/littlefs", "lib/re1.5", "lib/uzlib", "lib/libm", "lib/libm_dbl",
        "lib/crypto-algorithms", "lib/oofatfs", "lib/mbedtls_errors"]
FLAGS = ["MICROPY_FORCE_32BIT=1", "MICROPY_USE_READLINE=0", "MICROPY_PY_FFI=0",
         "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0"]
JOBS = os.environ.get("MITA_MAKE_JOBS", "2")

HOW_TO_GET = """\
MicroPython v1.28.0 source not found. Looked at:
%s
Get it with
    git clone --depth 1 -b v1.28.0 https://github.com/micropython/micropython
and point MITA_MICROPYTHON_SRC at that folder (or at micropython-1.28.0-src.tar.xz)."""


def candidates():
    env = os.environ.get("MITA_MICROPYTHON_SRC")
    if env:
        return [os.path.abspath(env)]
    return [os.path.normpath(os.path.join(ROOT, "..", "shared", "vendor", TARBALL)),
            os.path.join("/work", "shared", "vendor", TARBALL)]


def find_source():
    for path in candidates():
        if os.path.isfile(path) or os.path.isdir(os.path.join(path, "py")):
            return path
    return None


def hash_file(h, path):
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def source_key(source):
    """Tarball: its bytes. Checkout: every file of the parts the build uses (name and bytes)."""
    h = hashlib.sha256()
    if os.path.isfile(source):
        hash_file(h, source)
        return h.hexdigest()
    for part in TREE:
        top = os.path.join(source, part)
        if os.path.isfile(top):
            h.update(part.encode())
            hash_file(h, top)
            continue
        for base, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__")
                             and not d.startswith("build"))
            for name in sorted(files):
                path = os.path.join(base, name)
                h.update(os.path.relpath(path, source).encode())
                hash_file(h, path)
    return h.hexdigest()


def build_key(src_key, folders=("firmware",)):
    """The source's key, this script and every .py file in `folders` (what gets frozen)."""
    h = hashlib.sha256(src_key.encode())
    hash_file(h, os.path.abspath(__file__))
    for folder in folders:
        for base, dirs, files in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(base, name)
                    h.update(os.path.relpath(path, ROOT).encode())
                    hash_file(h, path)
    return h.hexdigest()


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def write(path, text):
    with open(path, "w") as f:
        f.write(text + "\n")


def unpack(source, src_key):
    """Put the source tree at build/micropython/src, unless the same source is already there."""
    stamp = os.path.join(SRC, ".mita-source")
    if read(stamp) == src_key:
        return
    if os.path.isdir(SRC):
        shutil.rmtree(SRC)
    os.makedirs(SRC)
    if os.path.isfile(source):
        print("unpacking %s" % source)
        subprocess.run(["tar", "-xJf", source, "-C", SRC, "--strip-components=1",
                        TOP_DIR], check=True)
    else:
        print("copying %s" % source)
        for part in TREE:
            src, dst = os.path.join(source, part), os.path.join(SRC, part)
            if os.path.isfile(src):
                shutil.copyfile(src, dst)
            else:
                shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(
                    ".git", "__pycache__", "build", "build-*"))
    write(stamp, src_key)


def make(directory, *args):
    cmd = ["make", "-C", directory, "-j", JOBS] + list(args)
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="ignore the cache")
    parser.add_argument("--if-source", action="store_true",
                        help="no source found: say how to get it and exit 0 (make test: the "
                             "32-bit tests then skip)")
    parser.add_argument("--bench", nargs="?", const="all", choices=("all", "frozen"),
                        help="also the bench images (firmware benchmarks; the simulator's fakes "
                             "and the bench scripts frozen in); --bench=frozen: only the frozen "
                             "one, which the test suite uses")
    args = parser.parse_args()

    source = find_source()
    if source is None:
        print(HOW_TO_GET % "\n".join("    " + c for c in candidates()), file=sys.stderr)
        if args.if_source:
            print("(the 32-bit MicroPython tests are skipped without it)", file=sys.stderr)
            return 0
        return 2
    for tool in ("make", "gcc"):
        if shutil.which(tool) is None:
            print("%s not found: apt-get install gcc gcc-multilib make" % tool, file=sys.stderr)
            return 2

    os.makedirs(OUT, exist_ok=True)
    plain_manifest = os.path.join(OUT, "plain-manifest.py")
    write(plain_manifest, 'include("$(MPY_DIR)/extmod/asyncio")')
    # (name, manifest, folders whose files it freezes)
    variants = [("plain", plain_manifest, ()), ("frozen", MANIFEST, ("firmware",))]
    if args.bench:
        images = (("bench-plain", plain_manifest, ()), ("bench-frozen", MANIFEST, ("firmware",)))
        for name, base, folders in images:
            if args.bench == "frozen" and name != "bench-frozen":
                continue
            manifest = os.path.join(OUT, name + "-manifest.py")
            write(manifest, 'include(%r)\ninclude(%r)' % (base, FAKES_MANIFEST))
            variants.append((name, manifest, folders + ("simulator", "bench/mpy")))

    src_key = source_key(source)
    todo = []
    for name, manifest, folders in variants:
        dest = os.path.join(OUT, "micropython-" + name)
        stamp = os.path.join(OUT, ".mita-build-" + name)
        key = build_key(src_key, folders)
        if args.force or read(stamp) != key or not os.path.exists(dest):
            todo.append((name, manifest, dest, stamp, key))
    built = [os.path.join(OUT, "micropython-" + v[0]) for v in variants]
    if not todo:
        print("micropython up to date: %s" % ", ".join(built))
        return 0

    started = time.monotonic()
    for _, _, _, stamp, _ in todo:
        if os.path.exists(stamp):
            os.remove(stamp)
    unpack(source, src_key)

    # Satisfies py/mkrules.mk's micropython-lib check; nothing is taken from it.
    mpy_lib = os.path.join(OUT, "no-micropython-lib")
    os.makedirs(mpy_lib, exist_ok=True)
    write(os.path.join(mpy_lib, "README.md"), "Empty: the mita manifests use no micropython-lib.")

    make(os.path.join(SRC, "mpy-cross"))
    unix = os.path.join(SRC, "ports", "unix")
    common = FLAGS + ["MPY_LIB_DIR=" + mpy_lib]
    for name, manifest, dest, stamp, key in todo:
        build_dir = "build-" + name
        make(unix, "BUILD=" + build_dir, "FROZEN_MANIFEST=" + manifest, *common)
        shutil.copy2(os.path.join(unix, build_dir, "micropython"), dest)
        write(stamp, key)
    print("micropython built in %.0f s: %s" % (time.monotonic() - started,
                                                ", ".join(t[2] for t in todo)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print("build failed: %s" % " ".join(exc.cmd), file=sys.stderr)
        sys.exit(1)
