"""mita simulator: fake MicroPython hardware, the physical world and a virtual clock.

simulator.install() puts the fakes on sys.path (CPython); simulator.micropython_path() gives a
micropython process its MICROPYPATH. See simulator/seam.py."""
from simulator.seam import install, micropython_path  # noqa: F401
