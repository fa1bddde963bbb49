# Under CPython the firmware package and the simulator's fake MicroPython modules
# (micropython.const, ...) are put on the path, as MICROPYPATH does under the unix port;
# this folder's helpers (appfakes, support, ...) go first.
import os
import sys

import simulator

simulator.install()
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
