"""The dashboard's files: the page at `/`, its modules and styles under /static/, and the
libraries installed from npm by `make setup` (uPlot under /static/vendor/uplot/, in Firebase
mode the Firebase JS SDK under /static/vendor/firebase/). All same-origin: the page loads no
code from a CDN."""

import base64
import hashlib
import html
import json
import logging
import os

from aiohttp import web

from cloud.keys import CONFIG

log = logging.getLogger("mita.dashboard")

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
ROOT = os.path.dirname(os.path.dirname(STATIC))
UPLOT_DIST = os.path.join(ROOT, "node_modules", "uplot", "dist")
FIREBASE_DIST = os.path.join(ROOT, "node_modules", "firebase")
# The page itself: scripts and styles from this origin only, never framed. (The API's own
# answers keep the middleware's stricter default-src 'none'.)
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
# Firebase Auth's REST origins, and for phone sign-in Google's reCAPTCHA (script and frame):
# allowed only in Firebase mode without the emulator, which replaces all of them.
_GOOGLE_AUTH = "https://identitytoolkit.googleapis.com https://securetoken.googleapis.com"
_RECAPTCHA = "https://www.google.com/recaptcha/ https://www.gstatic.com/recaptcha/"
_MARK = '  <script type="module" src="/static/app.js"></script>'


def firebase_sdk_version():
    """The installed `firebase` package's version, or None when it is not installed."""
    try:
        with open(os.path.join(FIREBASE_DIST, "package.json"), encoding="utf-8") as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


def signin_settings(config):
    """What the page's sign-in is given: the mode, and in Firebase mode the SDK's public
    settings (project, web API key, auth domain) and the Auth emulator's origin if any."""
    if config.auth_mode != "firebase":
        return {"mode": "apikey"}
    emulator = config.firebase_auth_emulator_host
    api_key = config.firebase_web_api_key
    if emulator and not api_key:
        api_key = "emulator-key"  # the emulator takes any key; the SDK refuses none
    return {"mode": "firebase", "projectId": config.firebase_project_id, "apiKey": api_key,
            "authDomain": config.firebase_auth_domain,
            "emulator": "http://" + emulator if emulator else ""}


def render_page(config, version):
    """The page and its CSP. API-key mode: the file as it is. Firebase mode: the settings in
    a meta tag, and an import map (its sha256 in the CSP, nothing else inline) that resolves
    "firebase/app", "firebase/auth" and the SDK's own gstatic imports to the copy this cloud
    serves."""
    with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as f:
        page = f.read()
    settings = signin_settings(config)
    if settings["mode"] != "firebase":
        return page, PAGE_CSP
    cdn = "https://www.gstatic.com/firebasejs/%s/" % version
    imports = {}
    for part in ("app", "auth"):
        served = "/static/vendor/firebase/firebase-%s.js" % part
        imports["firebase/" + part] = imports[cdn + "firebase-%s.js" % part] = served
    importmap = json.dumps({"imports": imports})
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    head = ('  <meta name="mita-signin" content="%s">\n  <script type="importmap">%s</script>\n'
            % (html.escape(json.dumps(settings)), importmap))
    page = page.replace(_MARK, head + _MARK, 1)
    if settings["emulator"]:
        connect, frames, scripts = settings["emulator"], "", ""
    else:
        connect, frames, scripts = _GOOGLE_AUTH, "; frame-src " + _RECAPTCHA, " " + _RECAPTCHA
    csp = ("default-src 'self'; script-src 'self' 'sha256-%s'%s; connect-src 'self' %s; "
           "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
           "frame-ancestors 'none'%s" % (digest, scripts, connect, frames))
    return page, csp


async def _revalidate_static(request, response):
    # The API's "no-store" would send every module again on each visit over a phone's data
    # bundle: the files may be kept, and are asked about (304 when unchanged) every time.
    if request.path.startswith("/static/") and response.status in (200, 304):
        response.headers["Cache-Control"] = "no-cache"


def setup_dashboard(app):
    config = app[CONFIG]
    version = firebase_sdk_version()
    if config.auth_mode == "firebase" and version is None:
        log.warning("the Firebase JS SDK is not installed: the page cannot sign in (make setup)",
                    extra={"path": FIREBASE_DIST})
    if config.auth_mode == "firebase" and not (config.firebase_web_api_key
                                               or config.firebase_auth_emulator_host):
        log.warning("FIREBASE_WEB_API_KEY is not set: the page cannot sign in")
    page, csp = render_page(config, version)

    async def index(request):
        return web.Response(text=page, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": csp})

    app.on_response_prepare.append(_revalidate_static)
    app.router.add_get("/", index)
    # the longer prefixes first: /static/ would otherwise answer (404) for the vendor files
    if os.path.isdir(UPLOT_DIST):
        app.router.add_static("/static/vendor/uplot/", UPLOT_DIST)
    else:
        log.warning("uPlot is not installed: the dashboard's charts are off (make setup)",
                    extra={"path": UPLOT_DIST})
    if config.auth_mode == "firebase" and version is not None:
        app.router.add_static("/static/vendor/firebase/", FIREBASE_DIST)
    app.router.add_static("/static/", STATIC)
