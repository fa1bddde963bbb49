"""OpenPAYGo tokens on the board (issue #11): tokens the cloud mints with the PyPI reference
encoder, decoded by the firmware on the board's interpreter. On a rig that can press the
board's keypad (the simulated board: sim_rig's finger on the key matrix) they are typed key
by key while the firmware's own keypad task polls the matrix, and the LCD is read back;
every rig takes them through the firmware's token path over the REPL as well.

The one credit path: a payment delivered as its recharge (with its token_count, as the cloud
sends it over MQTT) and typed as its token credits once, in either order, KES 999 included.
"""
import json

import pytest

from cloud.tokens import issue, token_config

METER_KEY = "dk_hil_tokens"  # the device key the cloud would hold for this meter


def _token_config(meter):
    return token_config(meter.config["meter_id"], METER_KEY)


def _with_tokens(meter, keypad):
    """The rig's test config plus the token key provisioning writes (and the keypad pins on a
    rig that wires them), booted."""
    cfg = dict(meter.config, token=_token_config(meter))
    pins = meter.rig.get("pins", {})
    if keypad:
        cfg["pins"] = {"keypad_rows": pins["keypad_rows"], "keypad_cols": pins["keypad_cols"]}
    meter.write_config(json.dumps(cfg).encode())
    meter.boot()
    return cfg["token"]["key"]


def _recharge(meter, seq, cents, count):
    msg = {"id": "HIL-TOK-%d" % seq, "seq": seq, "amount_cents": cents, "source": "cloud",
           "token_count": count}
    return tuple(meter.board.eval("app.apply_recharge(%r)" % msg))


@pytest.fixture
def keypad_meter(meter, rig_control):
    if rig_control is None or rig_control.keypad_finger() is None \
            or "keypad_rows" not in meter.rig.get("pins", {}):
        pytest.skip("this rig cannot press the board's keypad (the reference rig wires no "
                    "switches across its keys)")
    yield meter
    meter.write_config(json.dumps(meter.config).encode())


def test_a_token_typed_on_the_keypad_credits_once_and_the_lcd_says_so(keypad_meter):
    meter = keypad_meter
    key = _with_tokens(meter, keypad=True)
    count, digits = issue(key, 1, 5000)
    assert meter.type_on_keypad(digits + "#") == ["TOKEN ACCEPTED", "+KES 50.00"]
    assert meter.balance() == 5000
    assert meter.type_on_keypad(digits + "#") == ["TOKEN USED", ""]
    assert meter.balance() == 5000
    # the count is on flash with the credit: after a reset the token is still used
    meter.soft_reset()
    meter.boot()
    assert meter.balance() == 5000
    assert meter.type_on_keypad(digits + "#")[0] == "TOKEN USED"
    assert meter.type_on_keypad("1#") == ["BALANCE", "KES 50.00"]  # a short code
    assert meter.board.eval("app.tokens.recent") == [[count, 1, 50]]


def test_kes_999_typed_on_the_keypad_and_delivered_credits_once(keypad_meter):
    meter = keypad_meter
    key = _with_tokens(meter, keypad=True)
    first, digits = issue(key, 1, 99900)  # a 12-digit extended token
    assert len(digits) == 12
    assert meter.type_on_keypad(digits + "#") == ["TOKEN ACCEPTED", "+KES 999.00"]
    assert _recharge(meter, 1, 99900, first) == ("duplicate", "token_used")
    second, digits2 = issue(key, first, 99800)
    assert _recharge(meter, 2, 99800, second) == ("applied", "ok")  # online first this time
    assert meter.type_on_keypad(digits2 + "#")[0] == "TOKEN USED"
    assert meter.type_on_keypad(digits + "#")[0] == "TOKEN USED"
    assert meter.balance() == 99900 + 99800


def test_tokens_through_the_firmware_on_any_board(meter):
    """No keypad needed: the token path and the decoder on the board's own interpreter."""
    key = _with_tokens(meter, keypad=False)
    try:
        count, digits = issue(key, 1, 99900)
        assert _recharge(meter, 1, 99900, count) == ("applied", "ok")
        assert meter.enter_token(digits) == ("USED", 0)
        count, digits = issue(key, count, 2000)
        assert meter.enter_token(digits) == ("ACCEPT", 2000)
        assert _recharge(meter, 2, 2000, count) == ("duplicate", "token_used")
        assert meter.enter_token("123456789") == ("INVALID", 0)
        assert meter.balance() == 99900 + 2000
    finally:
        meter.write_config(json.dumps(meter.config).encode())
