"""The dashboard's files: the page at `/`, its modules and styles under /static/, and the
chart library (uPlot, installed from npm by `make setup`) under /static/vendor/uplot/. All
same-origin: the page loads nothing from a CDN."""

import logging
import os

from aiohttp import web

log = logging.getLogger("mita.dashboard")

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
ROOT = os.path.dirname(os.path.dirname(STATIC))
UPLOT_DIST = os.path.join(ROOT, "node_modules", "uplot", "dist")
# The page itself: scripts and styles from this origin only, never framed. (The API's own
# answers keep the middleware's stricter default-src 'none'.)
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


async def index(request):
    return web.FileResponse(os.path.join(STATIC, "index.html"),
                            headers={"Content-Security-Policy": PAGE_CSP,
                                     "Content-Type": "text/html; charset=utf-8"})


async def _revalidate_static(request, response):
    # The API's "no-store" would send every module again on each visit over a phone's data
    # bundle: the files may be kept, and are asked about (304 when unchanged) every time.
    if request.path.startswith("/static/") and response.status in (200, 304):
        response.headers["Cache-Control"] = "no-cache"


def setup_dashboard(app):
    app.on_response_prepare.append(_revalidate_static)
    app.router.add_get("/", index)
    # the longer prefix first: /static/ would otherwise answer (404) for the vendor files
    if os.path.isdir(UPLOT_DIST):
        app.router.add_static("/static/vendor/uplot/", UPLOT_DIST)
    else:
        log.warning("uPlot is not installed: the dashboard's charts are off (make setup)",
                    extra={"path": UPLOT_DIST})
    app.router.add_static("/static/", STATIC)
