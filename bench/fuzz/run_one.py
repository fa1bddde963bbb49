"""One fuzz target under atheris (libFuzzer for Python, coverage-guided), for
bench/fuzz_parsers.py: python bench/fuzz/run_one.py TARGET [libFuzzer flags] [corpus dirs]."""
import os
import sys

try:
    import atheris
except ImportError:
    sys.exit("atheris is not installed: .venv/bin/pip install -e '.[fuzz]' (Linux wheels)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["meter", "cloud", "targets"]):
    import targets  # noqa: E402
    targets.prepare()


def main():
    name = sys.argv[1]
    target = targets.TARGETS[name]
    atheris.Setup([sys.argv[0]] + sys.argv[2:], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
