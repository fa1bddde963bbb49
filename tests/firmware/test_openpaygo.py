# OpenPAYGo tokens: the meter's decoder gives the reference decoder's verdict, value and count
# for every entry of openpaygo_cases.jsonl (made by the PyPI `openpaygo` encoder and decoder,
# see openpaygo_cases.py), under CPython and under MicroPython alike.
import json

from meter import openpaygo, token_counts as tc
from meter.openpaygo import Decoder
from meter.token_counts import TokenCounts, TokenError
from meter.siphash import siphash24
from support import raises

_VERDICTS = {tc.ADD: "ADD", tc.SET: "SET", tc.DISABLE_PAYG: "DISABLE_PAYG",
             tc.COUNTER_SYNC: "COUNTER_SYNC", tc.INVALID: "INVALID",
             tc.USED: "USED"}


def _cases_path():
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    return here + "/openpaygo_cases.jsonl"


def _scenarios():
    with open(_cases_path()) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def replay(scenario):
    """Every entry through the meter's decoder, the count window kept as the meter keeps it;
    returns the entries that differ from the reference's, as (index, ours, reference)."""
    decoder = Decoder(scenario["key"], scenario["code"])
    counts = TokenCounts()
    wrong = []
    for i, entry in enumerate(scenario["entries"]):
        verdict, value, count = decoder.decode(entry[0], counts)
        ours = [_VERDICTS[verdict], value, count]
        if verdict not in (tc.USED, tc.INVALID):
            counts.record(count, verdict, tc.special_value(value, entry[0]))
        else:
            ours[2] = None  # a refused token's count is the meter's own detail
        if ours != entry[1:]:
            wrong.append((i, ours, entry[1:]))
    return wrong


def test_every_verdict_value_and_count_equals_the_reference():
    n = 0
    kinds = {}
    for scenario in _scenarios():
        wrong = replay(scenario)
        assert not wrong, (scenario["seed"], wrong[:3])
        for entry in scenario["entries"]:
            kinds[entry[1]] = kinds.get(entry[1], 0) + 1
            n += 1
    # the file exercises every verdict, or this test would prove less than it says
    assert n >= 400, n
    for name in ("ADD", "SET", "DISABLE_PAYG", "COUNTER_SYNC", "USED", "INVALID"):
        assert kinds.get(name, 0) >= 5, (name, kinds)


def test_the_replay_notices_a_wrong_verdict():
    scenario = next(_scenarios())
    entries = [list(e) for e in scenario["entries"]]
    entries[0][1] = "SET" if entries[0][1] != "SET" else "ADD"
    assert replay({"key": scenario["key"], "code": scenario["code"], "entries": entries})


def test_siphash_matches_the_published_vectors():
    key = bytes(range(16))
    assert siphash24(key, b"") == 0x726FDB47DD0E0E31
    assert siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5
    assert siphash24(key, bytes(range(8))) == 0x93F5F5799A932462


def test_starting_code_from_the_key_is_the_references():
    # the reference derives the code as SipHash(key, key) folded to 9 digits
    scenario = None
    for s in _scenarios():
        if s["code"] is None:
            scenario = s
            break
    assert scenario is not None
    assert Decoder(scenario["key"]).code == openpaygo.starting_code(scenario["key"])
    assert replay(scenario) == []


def test_a_token_is_used_once_and_the_window_remembers_out_of_order_counts():
    scenario = next(_scenarios())
    decoder = Decoder(scenario["key"], scenario["code"])
    counts = TokenCounts()
    accepted = [e for e in scenario["entries"] if e[1] == "ADD"]
    token = accepted[0][0]
    verdict, value, count = decoder.decode(token, counts)
    counts.record(count, verdict, tc.special_value(value, token))
    assert counts.is_used(count)
    assert decoder.decode(token, counts)[0] == tc.USED


def test_digits_that_are_not_ascii_are_invalid_not_an_error():
    # "\u00b2".isdigit() is True on CPython and int() then fails: found by fuzzing
    decoder = Decoder(bytes(range(16)), 123456789)
    for text in ("\u00b2", "12345678\u0663", "\uff11" * 9, " 123456789", ""):
        assert decoder.decode(text, TokenCounts())[0] == tc.INVALID, text


def test_bad_keys_codes_states_and_digits():
    raises(TokenError, Decoder, "abc")
    raises(TokenError, Decoder, "zz" * 16)
    raises(TokenError, Decoder, "00" * 16, 1000000000)
    raises(TokenError, TokenCounts.from_state, [1, 1])
    raises(TokenError, TokenCounts.from_state, [1, 1, 1 << 17])
    raises(TokenError, TokenCounts.from_state, [1, -1, 1])
    assert TokenCounts.from_state([5, 7, 3]).state() == [5, 7, 3]
    decoder = Decoder("00" * 16, 123456789)
    for bad in ("", "12a456789", "1234567890123", None, " 23456789"):
        assert decoder.decode(bad, TokenCounts()) == (tc.INVALID, None, None)
