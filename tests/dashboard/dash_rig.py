"""Helpers the dashboard's browser tests share: is a browser here, signing in, a customer
with a meter process, screenshots."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("MITA_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.path.join(ROOT, "build", "screenshots")
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


def customer(stack, start=True, **options):
    """A customer and their meter registered through the API; the meter's process started
    (online; opening balance 0 and a 1 kW load unless `options` say otherwise) unless
    start=False."""
    return stack.meter(stack.new_meter_no("DASH"), start=start, speed=METER_SPEED, **options)


def sign_in(page, url, key, shot=None):
    """Sign in through the form; `shot` names a screenshot of the filled-in form."""
    page.goto(url + "/")
    page.get_by_label("API key").fill(key)
    if shot:
        screenshot(page, shot)
    page.get_by_role("button", name="Sign in").click()


def screenshot(page, name):
    """Into build/screenshots/ (ignored); MITA_DOCS_SCREENSHOTS=1 also refreshes docs/img/."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, name + ".png"), full_page=True)
    if os.environ.get("MITA_DOCS_SCREENSHOTS"):
        page.screenshot(path=os.path.join(ROOT, "docs", "img", name + ".png"), full_page=True)
