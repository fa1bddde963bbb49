"""Put the meter firmware onto a board with mpremote and check every file by its SHA-256
computed on the board: .mpy files built by mpy-cross under /lib/meter, /main.py, /config.json.

    python tools/deploy.py --port /dev/ttyUSB0 --meter MITA-0001   # config from tools/provision.py
    python tools/deploy.py --port /dev/pts/3 --config my-config.json --no-reset

main.py goes on last (and is parked first), so a board cut off mid-deploy never boots a mix of
old and new modules; a reset with main.py parked also stops a watchdog the old app started.
"""
import argparse
import hashlib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, ROOT)

import build_firmware  # noqa: E402
import provision  # noqa: E402

PARKED_MAIN = "/main.py.deploy"


class DeployError(Exception):
    pass


def package_manifest():
    """firmware/package.json for mip: every module of the meter package, relative URLs (mip
    resolves them against the manifest's own location), the firmware's version."""
    import re
    pkg = os.path.join(ROOT, "firmware", "meter")
    urls = []
    for base, dirs, names in os.walk(pkg):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(base, name), os.path.dirname(pkg))
                rel = rel.replace(os.sep, "/")
                urls.append([rel, rel])
    with open(os.path.join(pkg, "__init__.py")) as f:
        version = re.search(r'VERSION = "([^"]+)"', f.read()).group(1)
    return {"urls": urls, "deps": [], "version": version}


def write_package_json(path=None):
    import json
    path = path or os.path.join(ROOT, "firmware", "package.json")
    with open(path, "w") as f:
        json.dump(package_manifest(), f, indent=2)
        f.write("\n")
    return path


def mpremote_cmd():
    exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "mpremote"]


def plan(build_dir, config_path=None):
    """[(local path, board path)] in copy order: the package, config, then main.py."""
    files = []
    lib = os.path.join(build_dir, "lib")
    for base, dirs, names in os.walk(lib):
        dirs.sort()
        for name in sorted(names):
            local = os.path.join(base, name)
            files.append((local, "/" + os.path.relpath(local, build_dir).replace(os.sep, "/")))
    if config_path:
        files.append((config_path, "/config.json"))
    files.append((os.path.join(build_dir, "main.py"), "/main.py"))
    return files


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_mpremote(port, args, timeout=120):
    proc = subprocess.run(mpremote_cmd() + ["connect", port] + args, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise DeployError("mpremote %s failed:\n%s" % (" ".join(args[:3]),
                                                      (proc.stdout + proc.stderr).strip()[-800:]))
    return proc.stdout


def copy_args(files):
    """One mpremote run for everything: directories first, then `fs cp` per file."""
    dirs = set()
    for _, remote in files:
        d = os.path.dirname(remote)
        while d not in ("/", ""):
            dirs.add(d)
            d = os.path.dirname(d)
    dirs = sorted(dirs, key=lambda d: (d.count("/"), d))
    mk = ("import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n"
          "        pass" % (dirs,))
    args = ["exec", mk]
    for local, remote in files:
        args += ["+", "fs", "cp", local, ":" + remote]
    return args


def mismatches(board, want):
    """["path: board <sha>, built <sha>"] for every file whose on-board SHA-256 differs."""
    bad = []
    for remote, digest in sorted(want.items()):
        got = board.sha256(remote)
        if got != digest:
            bad.append("%s: board %s, built %s" % (remote, got, digest))
    return bad


def verify(port, build_dir, config_path=None, board_timeout=15.0):
    """Check a deployed board against a build without copying anything; [] means identical."""
    from hil.board import ReplBoard
    want = {remote: sha256_file(local) for local, remote in plan(build_dir, config_path)}
    with ReplBoard(port, timeout=board_timeout) as board:
        return mismatches(board, want)


def deploy(port, build_dir, config_path=None, reset=True, board_timeout=15.0, log=print):
    """Copy and verify; returns {board path: sha256}. Raises DeployError on any mismatch."""
    from hil.board import ReplBoard, BoardError
    files = plan(build_dir, config_path)
    for local, _ in files:
        if not os.path.isfile(local):
            raise DeployError("missing %s: build the firmware first" % local)
    try:
        with ReplBoard(port, timeout=board_timeout) as board:
            if board.exists("/main.py"):
                board.remove(PARKED_MAIN)
                board.rename("/main.py", PARKED_MAIN)
                board.machine_reset()
    except BoardError as exc:
        raise DeployError("preparing the board: %s" % exc)
    log("copying %d files to %s" % (len(files), port))
    run_mpremote(port, copy_args(files[:-1]))
    want = {remote: sha256_file(local) for local, remote in files}
    try:
        with ReplBoard(port, timeout=board_timeout) as board:
            bad = mismatches(board, {r: d for r, d in want.items() if r != "/main.py"})
            if bad:
                raise DeployError("hash mismatch on the board:\n  " + "\n  ".join(bad))
            with open(files[-1][0], "rb") as f:
                board.put_file("/main.py", f.read())
            if mismatches(board, {"/main.py": want["/main.py"]}):
                raise DeployError("hash mismatch on the board: /main.py")
            board.remove(PARKED_MAIN)
            if reset:
                board.reset_and_leave()
    except BoardError as exc:
        raise DeployError("verifying on the board: %s" % exc)
    log("verified %d files by SHA-256 on the board" % len(want))
    return want


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", default=os.environ.get("PORT", ""), required=False)
    p.add_argument("--meter", default=os.environ.get("METER", ""),
                   help="meter id: its config from build/meters/<METER>/config.json")
    p.add_argument("--config", help="a config.json to put at /config.json instead")
    p.add_argument("--build", default=os.path.join(ROOT, "build", "firmware"))
    p.add_argument("--no-build", action="store_true", help="deploy what --build already holds")
    p.add_argument("--no-reset", action="store_true", help="leave the board in the REPL")
    p.add_argument("--package-json", action="store_true",
                   help="only (re)write firmware/package.json, the mip manifest")
    args = p.parse_args(argv)
    if args.package_json:
        print(write_package_json())
        return 0
    if not args.port:
        print("deploy: no serial port given (PORT=/dev/ttyUSB0)", file=sys.stderr)
        return 2
    config = args.config
    if not config and args.meter:
        config = provision.config_path(args.meter)
        if not os.path.exists(config):
            print("deploy: no config for %s at %s: run tools/provision.py --meter %s first"
                  % (args.meter, config, args.meter), file=sys.stderr)
            return 2
    try:
        if not args.no_build:
            errors = build_firmware.build(args.build)
            if errors:
                raise DeployError("mpy-cross failed: %s" % errors)
        deploy(args.port, args.build, config, reset=not args.no_reset)
    except DeployError as exc:
        print("deploy: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
