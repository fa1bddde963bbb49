"""The cloud's OpenPAYGo tokens (cloud/tokens.py, the PyPI reference encoder) decode on the
firmware's own decoder with the key provisioning writes: every payment's value and count, 9-digit
up to KES 995 and 12-digit above; the key is the meter's own and derived, never the device key."""
import os
import sys

import pytest

import simulator

simulator.install()  # the firmware's meter package, with micropython.const, on the path
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import provision  # noqa: E402
from cloud.config import config_from_mapping  # noqa: E402
from cloud.tokens import TokenIssueError, carries, issue, token_config, token_key  # noqa: E402
from meter import config as meter_config  # noqa: E402
from meter.openpaygo import Decoder  # noqa: E402
from meter.token_counts import ADD, TokenCounts  # noqa: E402


def test_issued_tokens_decode_on_the_meter_with_the_provisioned_key():
    config = provision.build_config("MITA-0007", key="dk_abc")
    cfg, problems = meter_config.from_dict(config)
    assert problems == []
    decoder = Decoder(cfg["token"]["key"], cfg["token"]["starting_code"] or None)
    counts = TokenCounts()
    last = 1
    for cents in (50000, 100, 99500, 99600, 2500000, 1000):
        last, token = issue(token_key("MITA-0007", "dk_abc"), last, cents)
        assert len(token) == (9 if cents <= 99500 else 12)
        kind, value, count = decoder.decode(token, counts)
        assert (kind, value * 100, count) == (ADD, cents, last), token
        counts.record(count, kind)
        assert decoder.decode(token, counts)[0] != ADD  # typed twice: refused


def test_the_token_key_is_per_meter_derived_and_not_the_device_key():
    key = token_key("MITA-0007", "dk_abc")
    assert len(key) == 32 and int(key, 16) >= 0
    assert key == token_key("MITA-0007", "dk_abc")
    assert key not in (token_key("MITA-0008", "dk_abc"), token_key("MITA-0007", "dk_abd"))
    assert "dk_abc" not in key
    assert token_config("MITA-0007", "dk_abc") == {"key": key, "starting_code": 0}
    assert "token" not in provision.build_config("MITA-0007")  # no device key, no token key


@pytest.mark.parametrize("cents", [0, -100, 150, 99999900 + 100, "100", 100.0, True])
def test_amounts_no_token_carries_are_refused(cents):
    with pytest.raises(TokenIssueError):
        issue(token_key("MITA-0007", "dk_abc"), 1, cents)


def test_every_amount_the_cloud_takes_gets_a_token():
    # whole KES within MITA_MAX_AMOUNT_KES's hard cap, KES 998 and 999 included: no payment
    # reaches a meter over MQTT only
    with pytest.raises(ValueError):
        config_from_mapping({"MITA_MAX_AMOUNT_KES": "250001"})
    top = config_from_mapping({"MITA_MAX_AMOUNT_KES": "250000"}).max_amount_kes
    missing = [kes for kes in range(1, top + 1) if not carries(kes * 100)]
    assert missing == []


def test_the_c_siphash_under_the_encoder_is_the_reference_package_s_hash(monkeypatch):
    """cloud/tokens.py swaps the encoder's pure-Python SipHash for siphash24's C one: the same
    64-bit values (upper half included: the C digest is signed) and the same tokens."""
    import random

    import openpaygo.token_shared
    import openpaygo.token_shared_extended
    import siphash

    from cloud import tokens
    rng = random.Random(16)
    high = 0
    for _ in range(2000):
        key, data = rng.randbytes(16), rng.randbytes(rng.choice((8, 16, 1, 0, 33)))
        value = tokens._SipHash_2_4(key, data).hash()
        assert value == siphash.SipHash_2_4(key, data).hash()
        high += value >= 2 ** 63
    assert high > 500  # the signed half was exercised
    key = token_key("MITA-0007", "dk_abc")
    cases = [(last, cents) for last in (1, 2, 37, 500) for cents in (100, 99500, 99800, 2500000)]
    fast = [issue(key, last, cents) for last, cents in cases]
    for module in (openpaygo.token_shared, openpaygo.token_shared_extended):
        monkeypatch.setattr(module, "siphash", siphash)  # the encoder as published
    assert [issue(key, last, cents) for last, cents in cases] == fast
