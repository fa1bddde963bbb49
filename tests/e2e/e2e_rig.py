"""The end-to-end stack as a class: the cloud, the Daraja stand-in, the broker and simulated
meters as real processes on localhost (tools/mita_procs.py). The e2e fixtures and the
dashboard's browser tests (tests/dashboard) build theirs from it."""
import contextlib
import itertools
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools"))

import mita_procs  # noqa: E402
from sim_meter import MeterProcess  # noqa: E402

# Settlement fast enough for a test, slower than the stand-in's 0.2 s callbacks.
SETTLE_ENV = {"MITA_SETTLE_AFTER_S": "2", "MITA_SETTLE_EVERY_S": "0.5",
              "MITA_MQTT_RESEND_S": "2",
              # a module's tests all pay from one phone within minutes: not what they test
              "MITA_PUSH_LIMITS": "phone=1000/600,meter=1000/600,customer=1000/60"}
METER_SPEED = 10.0  # virtual seconds per wall second in the meter processes


class Stack:
    """One broker kind's cloud, stand-in and broker, shared by a module's tests of that kind."""

    def __init__(self, kind, folder):
        self.kind = kind
        self.folder = folder
        self.daraja = mita_procs.DarajaProcess(folder).start()
        self.mosquitto = None
        env = dict(SETTLE_ENV)
        if kind == "mosquitto":
            self.mosquitto = mita_procs.MosquittoProcess(folder).start()
            env.update(self.mosquitto.cloud_env())
        self.cloud = mita_procs.CloudProcess(folder, env=env, daraja=self.daraja).start()
        self._numbers = itertools.count(1)
        self.meters = []

    def new_meter_no(self, prefix="MITA"):
        return "%s%04d" % (prefix, next(self._numbers))

    def meter(self, meter_no=None, start=True, **options):
        """Register a customer and a meter through the API; a meter process, started online."""
        registration = self.cloud.customer_with_meter(meter_no or self.new_meter_no())
        options.setdefault("speed", METER_SPEED)
        meter = MeterProcess(self.folder, registration, self.cloud.broker_port,
                                        **options)
        meter.registration = registration
        self.meters.append(meter)
        if start:
            meter.start()
        return meter

    def stop_meters(self):
        for meter in self.meters:
            meter.stop(kill=True)
        self.meters = []

    def stop(self):
        self.stop_meters()
        for part in (self.cloud, self.mosquitto, self.daraja):
            if part is not None:
                part.stop()


@contextlib.contextmanager
def running_stack(kind, prefix, build=None):
    """A Stack of `kind` (or what `build(folder)` makes: anything with stop()) in a fresh
    folder, everything stopped afterwards, also on a failure.
    Not pytest's tmp_path (mode 0700 above it): mosquitto started as root reads its files as
    its own user. MITA_E2E_KEEP=1 keeps the folder (process logs) for a look."""
    folder = tempfile.mkdtemp(prefix=prefix)
    os.chmod(folder, 0o755)
    built = None
    try:
        built = build(folder) if build is not None else Stack(kind, folder)
        yield built
    finally:
        if built is not None:
            built.stop()
        mita_procs.stop_all()
        if not os.environ.get("MITA_E2E_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)
