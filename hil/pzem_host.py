"""The simulator's PZEM-004T emulator on a serial port of the test host (the reference rig's
second USB-UART), so the test sets the load the board measures. Frames are delimited by the
line going quiet, as Modbus RTU is."""
import threading

import serial

from simulator.clock import VirtualClock, REAL
from simulator.devices.pzem import Pzem004t
from simulator.world import World, SteadyLoad

_QUIET_S = 0.01  # > 3.5 characters at 9600 baud


class HostPzem:
    def __init__(self, port, address=1, baudrate=9600, relay_on_cts=False):
        self.clock = VirtualClock(REAL)
        self.world = World(self.clock, SteadyLoad(0))
        self.pzem = Pzem004t(self.world, address)
        self.relay_on_cts = relay_on_cts
        self.serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0.1)
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.serial.close()

    def _serve(self):
        while not self._stop.is_set():
            first = self.serial.read(1)
            if not first:
                continue
            frame = bytearray(first)
            self.serial.timeout = _QUIET_S
            while True:
                more = self.serial.read(64)
                if not more:
                    break
                frame.extend(more)
            self.serial.timeout = 0.1
            if self.relay_on_cts:
                self.world.set_relay(self.serial.cts)
            reply = self.pzem.handle(bytes(frame))
            self.frames += 1
            if reply:
                self.serial.write(reply)

    # --- the rig controls the HIL tests use ---------------------------------------------------
    def set_load(self, watts):
        self.world.set_extra_load(int(watts))

    def sensor_fault(self, kind=None):
        self.pzem.fault_rates = {}
        if kind:
            self.pzem.set_fault_rate(kind, 1000000)

    def energy_mwh(self):
        return self.world.energy_mwh()
