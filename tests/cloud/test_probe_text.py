"""Meter status text (issue #14 part 7): control and bidi characters are refused on both ways
in, the signed HTTP report and the MQTT status message, and nothing is stored."""

import pytest

from cloud.link.payloads import Malformed, parse_status
from tests.cloud.cloud_harness import config, harness  # noqa: F401  (fixtures)

FORGING = ["ok\u202efdp.exe", "ok\u0000", "line\nforged", "\u200fonline", "ok\u2066x"]


@pytest.mark.parametrize("text", FORGING)
async def test_a_status_report_with_control_or_bidi_characters_is_refused(harness, text):
    h = harness
    _, _, meter_no, key = await h.customer_with_meter()
    resp = await h.signed_post(meter_no, key, f"/api/meters/{meter_no}/status",
                               {"wifi_status": text, "mqtt_status": "connected"})
    assert resp.status == 400 and "printable" in (await resp.json())["message"]
    assert (await h.store.get_meter(meter_no))["status"] == {}
    fine = await h.signed_post(meter_no, key, f"/api/meters/{meter_no}/status",
                               {"wifi_status": "connected -61 dBm"})
    assert fine.status == 200


@pytest.mark.parametrize("text", FORGING)
def test_an_mqtt_status_with_control_or_bidi_characters_is_malformed(text):
    with pytest.raises(Malformed):
        parse_status({"v": 1, "state": "online", "wifi_status": text})
    assert parse_status({"v": 1, "state": "online", "firmware": "0.3.1"})["firmware"] == "0.3.1"


async def test_the_embedded_stand_ins_open_views_show_no_secret(harness):
    import aiohttp
    from tests.cloud.cloud_harness import SECRET
    h = harness
    _, auth, meter_no, _ = await h.customer_with_meter()
    await h.sandbox_settings(default_outcome="none", callback_delay_s=3600)
    assert (await h.stk_push(auth, meter_no, 100)).status == 201
    base = str(h.client.make_url("/daraja/c2b"))
    await h.daraja.register_c2b_urls(f"{base}/confirmation/{SECRET}",
                                     f"{base}/validation/{SECRET}")
    passwords = [r["body"]["Password"] for r in h.sandbox.requests
                 if isinstance(r["body"], dict) and "Password" in r["body"]]
    assert passwords and SECRET in str(h.sandbox.snapshot())  # the stand-in does hold them
    async with aiohttp.ClientSession() as session:
        async with session.get(h.daraja.base_url + "/sandbox/requests") as resp:
            shown = await resp.text()
    assert resp.status == 200 and "/<redacted>" in shown
    assert SECRET not in shown and not any(p in shown for p in passwords)
