# What the bench images freeze beside the firmware (tools/build_micropython.py --bench): the
# simulator's fake hardware and world, and the bench's own scripts. Frozen, their code and qstrs
# sit in the image as the firmware's do, so a heap cap measures the firmware's data and churn,
# not bytecode a real board never carries. Paths are relative to this file.

# machine, network, esp32, ntptime, micropython: top-level, as MICROPYPATH=simulator/hal has them.
for name in ("machine", "network", "esp32", "ntptime", "micropython"):
    module(name + ".py", base_path="../../simulator/hal")
for name in ("clock", "world", "sim_board", "board_context"):
    module(name + ".py", base_path="../../simulator")
package("devices", base_path="../../simulator")
# time.py replaces the port's time module (virtual ticks), as it does from MICROPYPATH.
for name in ("time", "rig", "day", "heap", "tick", "month"):
    module(name + ".py")
