# Device entry point: MicroPython runs /main.py after boot.py.
import meter

print("mita", meter.VERSION)
