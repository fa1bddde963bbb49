# Under CPython the firmware package and the simulator's fake MicroPython modules
# (micropython.const, ...) are put on the path, as MICROPYPATH does under the unix port.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for sub in ("firmware", os.path.join("simulator", "hal"), os.path.join("tests", "firmware")):
    path = os.path.join(ROOT, sub)
    if path not in sys.path:
        sys.path.insert(0, path)
