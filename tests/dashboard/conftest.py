"""The browser tests' rig: real processes (the cloud with its in-process broker, the Daraja
stand-in, simulated meters: tools/mita_procs.py, tools/sim_meter.py) and Debian's Chromium
driven by Playwright. Without /usr/bin/chromium or the playwright package every browser test
skips, its reason saying what to install."""
import itertools
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import mita_procs  # noqa: E402
from sim_meter import MeterProcess  # noqa: E402

CHROMIUM = os.environ.get("MITA_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.path.join(ROOT, "build", "screenshots")
# The stand-in settles in 0.2 s; settlement by query well after it.
CLOUD_ENV = {"MITA_SETTLE_AFTER_S": "2", "MITA_SETTLE_EVERY_S": "0.5", "MITA_MQTT_RESEND_S": "2"}
METER_SPEED = 30.0  # virtual seconds per wall second: telemetry (every 60 s) each 2 s


def _missing():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not os.path.exists(CHROMIUM):
        return "Debian's chromium is not installed at %s (apt-get install chromium)" % CHROMIUM
    return None


MISSING = _missing()


class Stack:
    """The cloud, its broker and the stand-in, shared by the module; meters per test."""

    def __init__(self, folder):
        self.folder = folder
        self.daraja = mita_procs.DarajaProcess(folder).start()
        self.cloud = mita_procs.CloudProcess(folder, env=CLOUD_ENV, daraja=self.daraja).start()
        self._numbers = itertools.count(1)
        self.meters = []

    def customer(self, start=True, **options):
        """A customer and their meter registered through the API, the meter's process
        started (and online) unless start=False."""
        registration = self.cloud.customer_with_meter("DASH%04d" % next(self._numbers))
        options.setdefault("speed", METER_SPEED)
        meter = MeterProcess(self.folder, registration, self.cloud.broker_port, **options)
        meter.registration = registration
        self.meters.append(meter)
        if start:
            meter.start()
        return meter

    def stop(self):
        for meter in self.meters:
            meter.stop(kill=True)
        for part in (self.cloud, self.daraja):
            part.stop()


@pytest.fixture(scope="module")
def stack():
    if MISSING:
        pytest.skip("browser tests: " + MISSING)
    folder = tempfile.mkdtemp(prefix="mita-dash-")
    os.chmod(folder, 0o755)
    built = None
    try:
        built = Stack(folder)
        yield built
    finally:
        if built is not None:
            built.stop()
        mita_procs.stop_all()
        if not os.environ.get("MITA_E2E_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if MISSING:
        pytest.skip("browser tests: " + MISSING)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def dash(stack, browser):
    """A fresh browser context per test (its own sessionStorage), phone-sized."""
    context = browser.new_context(viewport={"width": 360, "height": 800})
    console = []
    page = context.new_page()
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: console.append("%s %s" % (r.status, r.url))
            if r.status >= 400 else None)
    page.on("pageerror", lambda e: console.append(str(e)))
    page.set_default_timeout(20_000)
    page.console_errors = console
    try:
        yield page
    finally:
        context.close()
        stack.daraja.clear_outcomes()
        if not stack.cloud.proc or not stack.cloud.proc.alive:
            stack.cloud.start()


def sign_in(page, url, key):
    page.goto(url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def screenshot(page, name, commit_to=None):
    """Into build/screenshots/ (ignored); MITA_DOCS_SCREENSHOTS=1 also refreshes docs/img/."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, name + ".png"), full_page=True)
    if os.environ.get("MITA_DOCS_SCREENSHOTS"):
        page.screenshot(path=os.path.join(ROOT, "docs", "img", name + ".png"), full_page=True)
