"""Review fixes (#4): each test names a hole found in review and fails if it reopens."""

import pytest

from cloud.auth import AuthError, MeterVerifier, signed_headers
from tests.cloud.cloud_harness import config, harness  # noqa: F401  (fixtures)


@pytest.mark.parametrize("signature", ["\u00e9" * 64, "g" * 64, " " * 64, "0" * 63 + "\u0661"])
async def test_a_non_hex_meter_signature_is_a_401_not_a_crash(signature):
    class Keys:
        async def get_device_key(self, meter_no):
            return "k"

    verifier = MeterVerifier(Keys(), clock=lambda: 1_000_000)
    headers = signed_headers("M1", "k", "POST", "/p", b"{}", timestamp=1_000_000)
    headers["X-Mita-Signature"] = signature
    with pytest.raises(AuthError, match="hex"):
        await verifier.verify("M1", "POST", "/p", headers, b"{}")


async def test_a_non_ascii_signature_over_http_is_json_401(harness):
    h = harness
    _, _, meter_no, key = await h.customer_with_meter()
    path = f"/api/meters/{meter_no}/balance"
    raw = b'{"balance_cents": 5}'
    headers = signed_headers(meter_no, key, "POST", path, raw)
    headers["X-Mita-Signature"] = "\u00e9" * 64
    resp = await h.client.post(path, data=raw, headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthorized"
    assert (await h.store.get_meter(meter_no))["current_balance_cents"] == 0
