"""The browser tests' rig: the end-to-end stack (tests/e2e/e2e_rig.py: the cloud with its
in-process broker, the Daraja stand-in, simulated meters running the firmware, all real
processes) and Debian's Chromium driven by Playwright. Without /usr/bin/chromium or the
playwright package every browser test skips, its reason saying what to install."""

import pytest

from tests.dashboard.dash_rig import MISSING
from tests.e2e.e2e_rig import running_stack



@pytest.fixture(scope="module")
def stack():
    if MISSING:
        pytest.skip("browser tests: " + MISSING)
    with running_stack("amqtt", "mita-dash-") as built:
        yield built


@pytest.fixture(scope="module")
def browser():
    if MISSING:
        pytest.skip("browser tests: " + MISSING)
    from playwright.sync_api import sync_playwright
    from tests.dashboard.dash_rig import CHROMIUM
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def dash(stack, browser):
    """A fresh browser context per test (its own sessionStorage), phone-sized; the page
    records console errors and failed loads in `problems`."""
    context = browser.new_context(viewport={"width": 360, "height": 800})
    problems = []
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append("%s %s" % (r.status, r.url))
            if r.status >= 400 else None)
    page.set_default_timeout(20_000)
    page.problems = problems
    try:
        yield page
    finally:
        context.close()
        stack.stop_meters()
        stack.daraja.clear_outcomes()
        if not stack.cloud.proc or not stack.cloud.proc.alive:
            stack.cloud.start()
