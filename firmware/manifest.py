# Frozen-firmware manifest: what a MicroPython image built with FROZEN_MANIFEST=<this file> holds
# in flash (ROM) instead of on the filesystem. The same file serves the unix port
# (tools/build_micropython.py) and an ESP32 image (make -C ports/esp32 FROZEN_MANIFEST=...).
# Nothing from micropython-lib: the firmware has its own MQTT client and NTP.

# The port's own frozen modules. On the ESP32, _boot.py mounts the filesystem (config.json and
# the state live there) and inisetup formats it on first boot; the unix port has no such folder.
try:
    freeze("$(PORT_DIR)/modules")
except OSError:
    pass

include("$(MPY_DIR)/extmod/asyncio")

# The device firmware, exactly what tools/build_firmware.py compiles: the meter package (on a
# filesystem install it is /lib/meter) and main.py, which the board runs after boot. Frozen code
# wins on the device: MicroPython runs a frozen main.py before looking at /main.py, and
# ".frozen" comes before "/lib" on sys.path, so `make deploy` onto such an image changes nothing.
package("meter")
module("main.py")
