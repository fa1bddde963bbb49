"""The page as each sign-in mode serves it: API-key mode unchanged; Firebase mode gives the
SDK its settings in a meta tag and an import map whose hash, and nothing else inline, the CSP
allows; the Auth emulator's origin is reachable only when the cloud is configured for it."""
import base64
import hashlib
import html
import json
import re

from cloud.config import config_from_mapping
from cloud.views.dashboard import PAGE_CSP, render_page

FIREBASE = {"FIREBASE_DATABASE_URL": "https://demo-mita-default-rtdb.firebaseio.com",
            "FIREBASE_PROJECT_ID": "demo-mita"}


def directives(csp):
    return {part.split()[0]: part.split()[1:] for part in csp.split("; ")}


def test_api_key_mode_serves_the_page_as_it_is():
    page, csp = render_page(config_from_mapping({}), "12.12.0")
    assert csp == PAGE_CSP and "mita-signin" not in page and "importmap" not in page


def test_firebase_mode_gives_the_sdk_its_settings_and_a_hashed_import_map():
    page, csp = render_page(config_from_mapping(dict(FIREBASE, FIREBASE_WEB_API_KEY="AIzaX")),
                            "12.12.0")
    settings = json.loads(html.unescape(re.search(r'name="mita-signin" content="([^"]+)"',
                                                  page).group(1)))
    assert settings == {"mode": "firebase", "projectId": "demo-mita", "apiKey": "AIzaX",
                        "authDomain": "demo-mita.firebaseapp.com", "emulator": ""}
    importmap = re.search(r'<script type="importmap">(.*?)</script>', page).group(1)
    imports = json.loads(importmap)["imports"]
    assert imports["firebase/auth"] == "/static/vendor/firebase/firebase-auth.js"
    # the SDK's own import of the app module resolves to this cloud's copy too
    assert imports["https://www.gstatic.com/firebasejs/12.12.0/firebase-app.js"] == \
        "/static/vendor/firebase/firebase-app.js"
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    rules = directives(csp)
    assert rules["script-src"][:2] == ["'self'", "'sha256-%s'" % digest]
    assert "'unsafe-inline'" not in csp and "127.0.0.1" not in csp
    assert "https://identitytoolkit.googleapis.com" in rules["connect-src"]
    assert page.index("importmap") < page.index('src="/static/app.js"')


def test_the_emulator_origin_is_allowed_only_when_configured():
    page, csp = render_page(config_from_mapping(dict(
        FIREBASE, FIREBASE_AUTH_EMULATOR_HOST="127.0.0.1:9099")), "12.12.0")
    rules = directives(csp)
    assert rules["connect-src"] == ["'self'", "http://127.0.0.1:9099"]
    assert "googleapis" not in csp and "recaptcha" not in csp and "frame-src" not in rules
    assert "&quot;emulator&quot;: &quot;http://127.0.0.1:9099&quot;" in page
