"""Fuzz every parser that takes outside bytes (bench/fuzz/targets.py) with atheris for a fixed
number of executions each; print executions, coverage and crashes per parser.

    .venv/bin/python bench/fuzz_parsers.py                    # 20,000 executions each
    .venv/bin/python bench/fuzz_parsers.py --runs 200000 --only mqtt_packets,pzem_reply

Each target runs in its own process (atheris instruments the firmware and cloud modules it
imports), seeded from tests/fuzz_corpus/<target>/ and a fresh folder for what it finds. A
crashing input is copied into tests/fuzz_corpus/<target>/ (commit it with the fix: `make test`
replays every file there, tests/test_fuzz_corpus.py). Figures only; nothing here fails on time.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench", "fuzz"))
CORPUS = os.path.join(ROOT, "tests", "fuzz_corpus")
RUN_ONE = os.path.join(ROOT, "bench", "fuzz", "run_one.py")


def fuzz(name, runs, seed, work):
    found = os.path.join(work, name)
    os.makedirs(found)
    seeds = os.path.join(CORPUS, name)
    os.makedirs(seeds, exist_ok=True)
    argv = [sys.executable, RUN_ONE, name, "-runs=%d" % runs, "-seed=%d" % seed,
            "-max_len=4096", "-timeout=10", "-artifact_prefix=%s/" % work, found, seeds]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=work)
    log = proc.stderr
    cov = re.findall(r"cov: (\d+)", log)
    execs = re.findall(r"Done (\d+) runs", log)
    crashes = sorted(glob.glob(os.path.join(work, "crash-*")) +
                     glob.glob(os.path.join(work, "timeout-*")))
    kept = []
    for path in crashes:
        dest = os.path.join(seeds, os.path.basename(path))
        shutil.move(path, dest)
        kept.append(os.path.relpath(dest, ROOT))
    return {"target": name, "execs": int(execs[-1]) if execs else 0,
            "coverage": int(cov[-1]) if cov else 0, "corpus": len(os.listdir(found)),
            "crashes": kept, "status": proc.returncode,
            "tail": "" if proc.returncode == 0 else log.strip().splitlines()[-12:]}


def main(argv=None):
    import targets
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", default="", help="comma-separated target names")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(targets.TARGETS)
    work = tempfile.mkdtemp(prefix="mita-fuzz-")
    print("command: .venv/bin/python bench/fuzz_parsers.py --runs %d --seed %d%s"
          % (args.runs, args.seed, " --only " + args.only if args.only else ""))
    print("%-22s %9s %9s %7s  %s" % ("target", "execs", "coverage", "corpus", "crashes"))
    bad = 0
    try:
        for name in names:
            r = fuzz(name, args.runs, args.seed, work)
            print("%-22s %9d %9d %7d  %s" % (r["target"], r["execs"], r["coverage"],
                                             r["corpus"], ", ".join(r["crashes"]) or "none"),
                  flush=True)
            if r["crashes"] or r["status"]:
                bad += 1
                print("    " + "\n    ".join(r["tail"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
