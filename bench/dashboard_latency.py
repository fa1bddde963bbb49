"""Benchmark: from an M-Pesa payment callback to the dashboard showing it, in a real browser.

    .venv/bin/python bench/dashboard_latency.py [--payments 20]

Real processes (tools/mita_procs.py): `python -m cloud serve` (SQLite, in-process broker), the
Daraja stand-in, one simulated meter running the firmware (tools/sim_meter.py), and Debian's
Chromium through Playwright with the meter's page open. Each payment is started from
the page's own form and held by the stand-in; the clock starts when the script asks the
stand-in to deliver the callback (/sandbox/settle) and the page stamps, with a
MutationObserver, when it shows (a) the payment as paid and (b) the higher balance the meter
acknowledged. Both clocks are this machine's wall clock (performance.timeOrigin + now()).
Prints figures only; never passes or fails on time.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import mita_procs  # noqa: E402
from sim_meter import MeterProcess  # noqa: E402

CHROMIUM = os.environ.get("MITA_CHROMIUM", "/usr/bin/chromium")
# settlement by query far later than any callback here: only the callback path is measured
CLOUD_ENV = {"MITA_SETTLE_AFTER_S": "120", "MITA_SETTLE_EVERY_S": "60",
             # one phone pays many times in a minute here: the push limits are not measured
             "MITA_PUSH_LIMITS": "phone=1000/600,meter=1000/600,operator=1000/60"}

# Stamps (epoch ms) of the first moment the page shows the held payment paid, and a balance
# above the one before the callback.
_WATCH = """([checkout, before]) => {
  window.__stamps = {};
  const now = () => performance.timeOrigin + performance.now();
  const look = () => {
    const line = document.getElementById('stk-status');
    if (!window.__stamps.paid && line && line.dataset.checkout === checkout
        && line.dataset.state === 'success') window.__stamps.paid = now();
    const el = document.getElementById('balance');
    const cents = el ? parseInt(el.textContent.replace(/[^0-9-]/g, ''), 10) : NaN;
    if (!window.__stamps.balance && cents > before) window.__stamps.balance = now();
  };
  new MutationObserver(look).observe(document.getElementById('app'),
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def balance(page):
    text = page.locator("#balance").inner_text()
    return int("".join(c for c in text if c.isdigit() or c == "-"))


def one_payment(page, daraja, amount_kes):
    daraja.outcome("success", hold=True)
    page.get_by_label("Amount (KES)").fill(str(amount_kes))
    page.get_by_label("M-Pesa phone number").fill("0712345678")
    page.get_by_role("button", name="Send prompt to my phone").click()
    page.wait_for_selector("#stk-status[data-state='pending'][data-checkout]")
    checkout = page.locator("#stk-status").get_attribute("data-checkout")
    page.evaluate(_WATCH, [checkout, balance(page)])
    started = time.time() * 1000
    daraja.settle(checkout)
    page.wait_for_function("() => window.__stamps.paid && window.__stamps.balance",
                           timeout=30_000)
    stamps = page.evaluate("window.__stamps")
    return stamps["paid"] - started, stamps["balance"] - started


def summary(name, values):
    values = sorted(values)
    p90 = values[max(0, int(len(values) * 0.9) - 1)]
    print("  %-48s median %6.1f ms  p90 %6.1f ms  max %6.1f ms" % (
        name, statistics.median(values), p90, values[-1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=20)
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        sys.exit("needs Debian's chromium at %s (apt-get install chromium)" % CHROMIUM)
    from playwright.sync_api import sync_playwright
    folder = tempfile.mkdtemp(prefix="mita-bench-dash-")
    try:
        daraja = mita_procs.DarajaProcess(folder).start()
        cloud = mita_procs.CloudProcess(folder, env=CLOUD_ENV, daraja=daraja).start()
        registration = cloud.customer_with_meter("BENCH0001")
        meter = MeterProcess(folder, registration, cloud.broker_port, speed=1.0).start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 360, "height": 800})
            # as the operator on the customer's meter page: the same page and feed, without
            # the push guard's five-pushes-a-minute limit for one customer
            page.goto(cloud.url + "/#/meter/" + registration["meter_no"])
            page.get_by_label("API key").fill(cloud.operator_key)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("#live[data-state='live']")
            paid, credited = [], []
            for i in range(args.payments):
                a, b = one_payment(page, daraja, 10 + i)  # a new amount: not a double tap
                paid.append(a)
                credited.append(b)
            browser.close()
        meter.stop()
    finally:
        mita_procs.stop_all()
        shutil.rmtree(folder, ignore_errors=True)
    print("dashboard latency, %d payments (.venv/bin/python bench/dashboard_latency.py "
          "--payments %d):" % (args.payments, args.payments))
    summary("callback -> page shows the payment paid", paid)
    summary("callback -> page shows the meter's new balance", credited)


if __name__ == "__main__":
    main()
