"""CPython only: the OpenPAYGo cases the firmware tests replay (tests/firmware/openpaygo_cases.jsonl)
are what the PyPI `openpaygo` reference makes today, and fresh random scenarios straight from
the reference give the meter's decoder the same verdicts (tests/firmware/test_openpaygo.py
replays the file on MicroPython too, which cannot import the reference)."""
import os
import sys

from hypothesis import given, settings, strategies as st

import simulator

simulator.install()
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "firmware")
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import openpaygo_cases  # noqa: E402
import test_openpaygo  # noqa: E402


def test_the_case_file_is_the_references_output():
    with open(openpaygo_cases.PATH, encoding="utf-8") as f:
        assert f.read() == openpaygo_cases.render(), \
            "stale: run python tests/firmware/openpaygo_cases.py"


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1000, max_value=2**32))
def test_fresh_reference_scenarios_decode_the_same(seed):
    scenario = openpaygo_cases.scenario(seed, entries=24)
    assert test_openpaygo.replay(scenario) == []


def test_the_app_tests_tokens_are_the_reference_encoders():
    import test_openpaygo_app
    adds, set_token = openpaygo_cases.app_tokens()
    assert (test_openpaygo_app.KEY, test_openpaygo_app.CODE) == (openpaygo_cases.APP_KEY,
                                                                 openpaygo_cases.APP_CODE)
    assert test_openpaygo_app.ADD == adds
    assert test_openpaygo_app.SET == set_token


def test_the_amount_tests_tokens_are_the_reference_encoders():
    import test_openpaygo_amounts as t
    assert [t.K999, t.K998, t.K10] == openpaygo_cases.amount_tokens()
    assert t.SPECIAL_ADDS == openpaygo_cases.special_add_tokens()


def test_where_the_meter_departs_from_the_reference_decoder_on_purpose():
    """The reference decoder applies the 9-digit counter-sync rule to an extended token of
    999: it takes the same KES 999 token again and again. The meter takes it once."""
    from openpaygo import OpenPAYGOTokenDecoder
    from meter.openpaygo import Decoder
    from meter.token_counts import ADD, USED, TokenCounts, special_value
    import test_openpaygo_amounts as t
    key, code = openpaygo_cases.APP_KEY, openpaygo_cases.APP_CODE
    count, used = 1, [1]
    for _ in range(3):
        value, kind, count, used = OpenPAYGOTokenDecoder.decode_token(
            token=t.K999[2], secret_key=key, count=count, used_counts=used, starting_code=code)
        assert (value, count) == (999, 2)  # ADD KES 999, every time
    decoder, counts = Decoder(key, code), TokenCounts()
    kind, value, count = decoder.decode(t.K999[2], counts)
    assert (kind, value, count) == (ADD, 999, 2) and special_value(value, t.K999[2]) == 0
    counts.record(count, kind)
    assert decoder.decode(t.K999[2], counts)[0] == USED
