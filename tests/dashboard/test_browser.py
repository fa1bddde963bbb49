"""The dashboard in a real browser (Debian's Chromium through Playwright) against real
processes: the cloud, its broker, the Daraja stand-in and simulated meters running the
firmware. Each test names what a customer or an operator sees, and waits for it on the page
(Playwright's auto-waiting), never on a timer."""
import datetime
import re

import pytest

from cloud.firmware_source import load_firmware_module
from tests.dashboard.dash_rig import MISSING, customer, screenshot, sign_in
from tests.e2e.e2e_rig import mita_procs

if MISSING:
    pytest.skip("browser tests: " + MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

WAIT_MS = 30_000
FIRMWARE = load_firmware_module("__init__")["VERSION"]
EAT = datetime.timezone(datetime.timedelta(hours=3))  # the meters' and the history's days


def balance_cents(page):
    text = page.locator("#balance").inner_text()
    digits = re.sub(r"[^0-9-]", "", text)
    return int(digits)


def wait_balance(page, above=None, below=None):
    """Until the page shows a balance above or below the given cents."""
    page.wait_for_function(
        """([above, below]) => {
            const el = document.getElementById('balance');
            if (!el) return false;
            const cents = parseInt(el.textContent.replace(/[^0-9-]/g, ''), 10);
            return Number.isFinite(cents) && (above === null || cents > above)
                && (below === null || cents < below);
        }""", arg=[above, below], timeout=WAIT_MS)


def test_sign_in_pay_from_the_page_and_watch_it_bill_down(stack, dash):
    meter = customer(stack)  # opening balance 0: the relay is open for no credit
    with open(stack.cloud.proc.log_path) as log:  # `python -m cloud serve` says where it is
        assert "dashboard: %s/" % stack.cloud.url in log.read()
    sign_in(dash, stack.cloud.url, meter.registration["api_key"])
    expect(dash.locator("#meter-title")).to_contain_text(meter.meter_no)
    expect(dash.locator("#relay")).to_have_text("Off", timeout=WAIT_MS)
    expect(dash.locator("#relay-why")).to_contain_text("no credit")
    expect(dash.locator("#paybill")).to_contain_text(meter.meter_no)
    dash.evaluate("window.__notReloaded = true")
    stack.daraja.outcome("success")
    dash.get_by_label("Amount (KES)").fill("100")
    dash.get_by_label("M-Pesa phone number").fill("0712345678")
    dash.get_by_role("button", name="Send prompt to my phone").click()
    expect(dash.locator("#stk-status")).to_have_attribute("data-state", "success",
                                                          timeout=WAIT_MS)
    # the meter applies the recharge and reports it; the relay closes: all without a reload
    expect(dash.locator("#relay")).to_have_text("On", timeout=WAIT_MS)
    wait_balance(dash, above=9000)
    receipt = dash.locator("#payments .receipt").first
    expect(receipt).not_to_have_text("—")
    expect(dash.locator("#stk-status")).to_contain_text("Receipt %s." % receipt.inner_text())
    # the payment's token, as the customer types it on the keypad (issue #11)
    expect(dash.locator("#payments .token").first).to_have_text(re.compile(r"^\d{3} \d{3} \d{3}$"))
    expect(dash.locator("#payments th").nth(3)).to_have_text("Token")
    credited = balance_cents(dash)
    wait_balance(dash, below=credited)  # billed down, told by telemetry
    assert dash.evaluate("window.__notReloaded") is True
    # a phone's 360 px: nothing sticks out sideways (wide tables scroll in their own box)
    assert dash.evaluate("document.documentElement.scrollWidth") <= 360
    assert not dash.problems


def test_a_cancelled_payment_shows_its_reason(stack, dash):
    meter = customer(stack, start=False)
    sign_in(dash, stack.cloud.url, meter.registration["api_key"], shot="sign-in")
    stack.daraja.outcome("cancelled")
    dash.get_by_label("Amount (KES)").fill("50")
    dash.get_by_label("M-Pesa phone number").fill("0712345678")
    dash.get_by_label("M-Pesa phone number").press("Enter")  # keyboard only
    status = dash.locator("#stk-status")
    expect(status).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    expect(status).to_contain_text("cancelled on the phone")
    dash.select_option("#lang", "sw")
    expect(dash.locator("#meter-title")).to_contain_text("Mita")
    expect(dash.get_by_label("Kiasi (KES)")).to_be_visible()
    expect(dash.locator("#stk-status")).to_have_text("Haijalipwa: lilighairiwa kwenye simu.")


def test_the_charts_show_the_stored_history_and_the_days_left_follow_from_it(stack, dash):
    # a near-idle meter holding KES 430: a day of the seeded history costs KES 41.10
    meter = customer(stack, balance_cents=43_000, watts=1)
    yesterday = (datetime.datetime.now(EAT) - datetime.timedelta(days=1)).date().isoformat()
    seed_history(stack, meter.meter_no, yesterday, {7: 120, 8: 340, 19: 910})
    sign_in(dash, stack.cloud.url, meter.registration["api_key"])
    expect(dash.locator(".hourly figcaption")).to_contain_text(yesterday)
    rows = dash.locator(".hourly-values tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).locator("td").all_text_contents() for i in range(3)] == [
        ["07:00", "120"], ["08:00", "340"], ["19:00", "910"]]
    expect(dash.locator(".hourly canvas")).to_have_count(1)  # uPlot drew it
    daily = dash.locator(".daily-values tbody tr", has_text=yesterday)
    expect(daily.locator("td").nth(1)).to_have_text("1370")
    expect(dash.locator("#days-left")).to_have_text("about 10 days", timeout=WAIT_MS)
    # paid from the phone's own menu (paybill, the meter number as the account): live too
    mita_procs.paybill(stack.daraja.url, meter.meter_no, 50)
    expect(dash.locator("#payments .receipt")).to_have_count(1, timeout=WAIT_MS)
    expect(dash.locator("#days-left")).to_have_text("about 11 days", timeout=WAIT_MS)
    screenshot(dash, "customer")


def seed_history(stack, meter_no, date, hours):
    """Hours straight into the cloud's SQLite file, as the bridge stores a meter's upload."""
    import asyncio
    import concurrent.futures
    import os
    from cloud.store.sqlite import SqliteStore

    async def put():
        store = await SqliteStore.open(os.path.join(stack.folder, "mita.sqlite3"))
        try:
            for hour, wh in hours.items():
                await store.put_consumption_hour(meter_no, date, hour, wh, wh * 3)
        finally:
            await store.close()
    # Playwright's sync API keeps an event loop running on this thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, put()).result()


def test_a_customer_cannot_open_another_customers_meter(stack, dash):
    mine = customer(stack, start=False)
    theirs = customer(stack, start=False)
    sign_in(dash, stack.cloud.url, mine.registration["api_key"])
    expect(dash.locator("#meter-title")).to_contain_text(mine.meter_no)
    dash.goto(stack.cloud.url + "/#/meter/" + theirs.meter_no)
    expect(dash.get_by_role("alert")).to_have_text("This meter is not on your account.")
    expect(dash.locator("#balance")).to_have_count(0)


def test_the_operator_sees_a_meter_go_offline_and_a_failed_payment(stack, dash):
    meter = customer(stack)
    dash.set_viewport_size({"width": 1280, "height": 800})
    sign_in(dash, stack.cloud.url, stack.cloud.operator_key)
    dash.get_by_label("Filter by meter number").fill(meter.meter_no)
    expect(dash.locator("#fleet tbody tr")).to_have_count(1)  # the store found the prefix
    row = dash.locator("#fleet tr[data-meter='%s']" % meter.meter_no)
    expect(row.locator("td.state")).to_have_text("Online", timeout=WAIT_MS)
    screenshot(dash, "operator")
    meter.stop(kill=True)  # a power cut: the broker's last will tells the cloud
    expect(row.locator("td.state")).to_have_text("Offline", timeout=WAIT_MS)
    expect(row.locator("td").nth(6)).to_have_text(FIRMWARE)  # the version it last reported
    # the desk's failed STK list follows live, with the reason the customer got
    stack.daraja.outcome("cancelled")
    stack.cloud.stk_push(meter.meter_no, 30, key=meter.registration["api_key"])
    failed = dash.locator("#stk-failed li", has_text=meter.meter_no)
    expect(failed).to_contain_text("cancelled on the phone", timeout=WAIT_MS)
    row.get_by_role("link", name=meter.meter_no).click()  # the meter's own page
    expect(dash.locator("#connection")).to_have_text("Offline")
    expect(dash.locator("#meter-details")).to_contain_text("Firmware" + FIRMWARE)


def test_the_page_recovers_after_the_cloud_restarts(stack, dash):
    meter = customer(stack)
    sign_in(dash, stack.cloud.url, meter.registration["api_key"])
    expect(dash.locator("#live")).to_have_attribute("data-state", "live")
    stack.cloud.stop()
    expect(dash.locator("#live")).to_have_attribute("data-state", "down", timeout=WAIT_MS)
    stack.cloud.start()
    expect(dash.locator("#live")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    # a payment made after the restart reaches the page through the new stream
    stack.daraja.outcome("success")
    stack.cloud.stk_push(meter.meter_no, 70, key=meter.registration["api_key"])
    wait_balance(dash, above=6000)


def test_the_operator_routes_a_mistyped_paybill_payment_and_registers_a_meter(stack, dash):
    meter = customer(stack, start=False)
    mita_procs.paybill(stack.daraja.url, "NOSUCHMETER9", 40)  # an account number typed wrong
    dash.set_viewport_size({"width": 1280, "height": 800})
    sign_in(dash, stack.cloud.url, stack.cloud.operator_key)
    item = dash.locator("#unmatched li", has_text="NOSUCHMETER9")
    item.get_by_label("Credit to meter").fill(meter.meter_no)
    item.get_by_role("button", name="Credit").click()
    expect(item).to_contain_text("Credited (credited)")
    assert [t["amount_cents"] for t in stack.cloud.transactions(meter.meter_no)] == [4000]
    dash.get_by_label("Name", exact=True).fill("Achieng Otieno")
    dash.get_by_label("Meter number", exact=True).fill("new 7001")
    dash.get_by_role("button", name="Register a customer and meter").click()
    result = dash.locator("#reg-result")
    expect(result).to_contain_text("Customer API key (shown once): mk_")
    key = result.inner_text().split("(shown once): ")[1].split(".")[0]
    assert stack.cloud.api("GET", "/api/me", key=key)[1]["meters"][0]["meter_no"] == "NEW7001"
