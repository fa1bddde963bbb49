# Runs firmware test modules under the MicroPython unix port: every top-level test_* function,
# in file order of definition where the interpreter keeps it. Prints one line per failure and
# the closing "N passed, N failed" line; exits 1 when anything failed.
import sys
import gc


def run_module(name):
    passed = 0
    failed = 0
    mod = __import__(name)
    names = sorted(n for n in dir(mod) if n.startswith("test_"))
    for n in names:
        fn = getattr(mod, n)
        if not callable(fn):
            continue
        try:
            fn()
            passed += 1
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print("FAIL %s.%s: %s: %s" % (name, n, type(exc).__name__, exc))
            sys.print_exception(exc)
        gc.collect()
    return passed, failed


def main(argv):
    passed = failed = 0
    for arg in argv:
        name = arg.split("/")[-1]
        if name.endswith(".py"):
            name = name[:-3]
        p, f = run_module(name)
        passed += p
        failed += f
    gc.collect()
    print("heap: %d bytes live, %d free" % (gc.mem_alloc(), gc.mem_free()))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


main(sys.argv[1:])
