"""Firebase mode in a real browser: the page signs in with the Firebase JS SDK (served by the
cloud from node_modules) against the Firebase Auth emulator, by email and password and by
phone number and SMS code; the cloud checks each ID token with firebase-admin against the
same emulator (FIREBASE_AUTH_EMULATOR_HOST) and its store is the Firebase one (on the RTDB
stand-in). A customer sees their own meter and not another's."""
import pytest

from tests.dashboard.dash_rig import MISSING, screenshot
from tests.dashboard.firebase_rig import (AuthEmulator, RtdbStandIn, firebase_cloud_env,
                                          firebase_missing)
from tests.e2e.e2e_rig import mita_procs, running_stack

SKIP = MISSING or firebase_missing()
if SKIP:
    pytest.skip("Firebase sign-in tests: " + SKIP, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

PASSWORD = "correct horse 42"


class FirebaseStack:
    def __init__(self, folder):
        self.auth = AuthEmulator(folder).start()
        self.rtdb = RtdbStandIn(folder).start()
        self.cloud = mita_procs.CloudProcess(folder, env=firebase_cloud_env(self.auth, self.rtdb))
        self.cloud.start()
        self._numbers = iter(range(1, 10_000))

    def customer(self, **sign_in):
        """A Firebase user (`email`/`password` or `phoneNumber`), their mita record under the
        same uid and a meter of theirs, registered through the API by the operator."""
        uid = self.auth.create_user(**sign_in)
        self.cloud.api("POST", "/api/users", {"user_id": uid, "name": "Achieng Otieno",
                                              "email": sign_in.get("email")}, expect=201)
        meter_no = "FIRE%04d" % next(self._numbers)
        self.cloud.api("POST", "/api/meters", {"meter_no": meter_no, "user_id": uid},
                       expect=201)
        return meter_no

    def stop(self):
        for part in (self.cloud, self.rtdb, self.auth):
            part.stop()


@pytest.fixture(scope="module")
def fire():
    with running_stack("firebase", "mita-firebase-", build=FirebaseStack) as built:
        yield built


@pytest.fixture
def page(fire, browser):
    context = browser.new_context(viewport={"width": 360, "height": 800})
    problems = []
    opened = context.new_page()
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    opened.on("response", lambda r: problems.append("%s %s" % (r.status, r.url))
              if r.status >= 400 else None)
    opened.set_default_timeout(20_000)
    opened.problems = problems
    try:
        yield opened
    finally:
        context.close()


def problems(page):
    """The page's errors, less one the emulator causes: it answers the SDK's question for a
    reCAPTCHA Enterprise config with 501, and the SDK goes on without one (as it does for a
    project that has none)."""
    emulator_gap = any("/v2/recaptchaConfig?" in p and p.startswith("501 ") for p in page.problems)
    return [p for p in page.problems if not (emulator_gap and (
        "/v2/recaptchaConfig?" in p or p.endswith("status of 501 (Not Implemented)")))]


def sign_in_by_email(page, url, email, password=PASSWORD):
    page.goto(url + "/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in with email").click()


def test_email_sign_in_shows_my_meter_and_not_another_customers(fire, page):
    mine = fire.customer(email="achieng@example.com", password=PASSWORD)
    theirs = fire.customer(email="baraka@example.com", password=PASSWORD)
    sign_in_by_email(page, fire.cloud.url, "achieng@example.com")
    expect(page.locator("#meter-title")).to_contain_text(mine)
    expect(page.locator("#paybill")).to_contain_text(mine)
    # the live feed's ticket was bought with the ID token too
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    # nothing the page loads was refused by its CSP, nothing failed
    assert not page.problems, page.problems
    page.goto(fire.cloud.url + "/#/meter/" + theirs)
    expect(page.get_by_role("alert")).to_have_text("This meter is not on your account.")
    expect(page.locator("#balance")).to_have_count(0)


def test_an_operator_by_the_role_claim_sees_the_fleet(fire, page):
    meter_no = fire.customer(email="esther@example.com", password=PASSWORD)
    operator = fire.auth.create_user(email="ops@example.com", password=PASSWORD)
    fire.auth.set_claims(operator, {"role": "operator"})
    page.goto(fire.cloud.url + "/")
    expect(page.get_by_label("Email")).to_be_focused()  # keyboard first: the form has focus
    screenshot(page, "firebase-sign-in")
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in_by_email(page, fire.cloud.url, "ops@example.com")
    page.get_by_label("Filter by meter number").fill(meter_no)
    expect(page.locator("#fleet tr[data-meter='%s']" % meter_no)).to_have_count(1)


def test_phone_sign_in_with_the_sms_code(fire, page):
    phone = "+254712000101"
    mine = fire.customer(phoneNumber=phone)
    page.goto(fire.cloud.url + "/")
    page.get_by_label("Phone number").fill("0712 000101")  # as a customer writes it
    page.get_by_role("button", name="Send code").click()
    expect(page.get_by_role("alert")).to_have_text("A code was sent to %s." % phone)
    code = mita_procs.wait_until(lambda: fire.auth.sms_code(phone), 10, "the emulator's code")
    page.get_by_label("Code from the SMS").fill(code)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#meter-title")).to_contain_text(mine)
    assert not problems(page), page.problems
    # a reload keeps the tab signed in; signing out ends the SDK's session, not just the view
    page.reload()
    expect(page.locator("#meter-title")).to_contain_text(mine)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Email")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Email")).to_be_visible()
    expect(page.locator("#meter-title")).to_have_count(0)


def test_a_wrong_password_shows_why_and_reaches_no_data(fire, page):
    fire.customer(email="chebet@example.com", password=PASSWORD)
    sign_in_by_email(page, fire.cloud.url, "chebet@example.com", password="not it")
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed:")
    expect(page.locator("#meter-title")).to_have_count(0)


def test_the_cloud_checks_the_id_token_and_refuses_a_disabled_user(fire):
    fire.customer(email="dede@example.com", password=PASSWORD)
    token = fire.auth.id_token("dede@example.com", PASSWORD)
    status, me = fire.cloud.api("GET", "/api/me", key=token)
    assert status == 200 and me["role"] == "customer" and len(me["meters"]) == 1, me
    assert fire.cloud.api("GET", "/api/me", key="not-a-token")[0] == 401
    # disabled in Firebase: the same unexpired token is refused (check_revoked asks the emulator)
    fire.auth.disable(me["user_id"])
    assert fire.cloud.api("GET", "/api/me", key=token)[0] == 401
