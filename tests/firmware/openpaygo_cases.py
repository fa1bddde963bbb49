# CPython only (not a test module): token sequences made by EnAccess's reference `openpaygo`
# (PyPI 0.6.3) encoder, with the reference decoder's verdict for each entry, written one
# scenario per JSON line to openpaygo_cases.jsonl. tests/firmware/test_openpaygo.py replays the
# file under CPython and MicroPython (which has no `openpaygo`); tests/test_openpaygo_reference.py
# checks the file is exactly what this module makes now, and runs fresh seeds live.
#   python tests/firmware/openpaygo_cases.py   (rewrites the file)
import json
import os
import random

from openpaygo import OpenPAYGOTokenDecoder, OpenPAYGOTokenEncoder, TokenType
from openpaygo.token_shared import OpenPAYGOTokenShared

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "openpaygo_cases.jsonl")
SEEDS = range(24)
VERDICTS = {TokenType.ADD_TIME: "ADD", TokenType.SET_TIME: "SET",
            TokenType.DISABLE_PAYG: "DISABLE_PAYG", TokenType.COUNTER_SYNC: "COUNTER_SYNC",
            TokenType.INVALID: "INVALID", TokenType.ALREADY_USED: "USED"}


class ReferenceDevice:
    """The reference device's count handling (openpaygo's test/simulators/device_simulator.py),
    starting with its starting count used (see meter.openpaygo.TokenCounts)."""

    def __init__(self, key, code):
        self.key, self.code = key, code
        self.count = 1
        self.used = [1]

    def enter(self, token):
        try:
            value, kind, count, updated = OpenPAYGOTokenDecoder.decode_token(
                token=token, secret_key=self.key, count=self.count, used_counts=self.used,
                starting_code=self.code)
        except UnboundLocalError:
            # 0.6.3's extended decoder raises where it finds no match at all: an invalid token
            return ["INVALID", None, None]
        if value is None:
            return [VERDICTS[kind], None, None]
        value = int(value)  # decode_token divides by value_divider=1
        if count > self.count or value == 999:
            self.count = count
        self.used = updated
        return [VERDICTS[kind], value, count]


def _token(key, code, count, rng, extended=False):
    """(new server count, token) for a random kind of token issued after `count`."""
    roll = rng.random()
    if extended:
        kind = TokenType.SET_TIME if roll < 0.2 else TokenType.ADD_TIME
        value = rng.randrange(0, 1000000)
        while value in (998, 999):
            # the one place the meter departs from the reference decoder on purpose: these
            # are amounts in an extended token (meter.token_counts.special_value)
            value = rng.randrange(0, 1000000)
        return OpenPAYGOTokenEncoder.generate_token(
            secret_key=key, count=count, value=value, token_type=kind,
            starting_code=code, extended_token=True)
    if roll < 0.06:
        return OpenPAYGOTokenEncoder.generate_token(
            secret_key=key, count=count, token_type=TokenType.DISABLE_PAYG, starting_code=code)
    if roll < 0.12:
        return OpenPAYGOTokenEncoder.generate_token(
            secret_key=key, count=count, token_type=TokenType.COUNTER_SYNC, starting_code=code)
    kind = TokenType.SET_TIME if roll < 0.25 else TokenType.ADD_TIME
    return OpenPAYGOTokenEncoder.generate_token(
        secret_key=key, count=count, value=rng.randrange(0, 996), token_type=kind,
        starting_code=code)


def scenario(seed, entries=18):
    """One meter: a random key and starting code, and a sequence of entries mixing in-order
    tokens, replays, out-of-order and old tokens, jumps around the maximum, wrong keys and
    random digits; each entry is [token, verdict, value, count] as the reference decides."""
    rng = random.Random(seed)
    key = "%032x" % rng.getrandbits(128)
    code = rng.randrange(1, 1000000000) if rng.random() < 0.7 else None
    extended = seed % 6 == 5
    device = ReferenceDevice(key, code)
    server = 1
    issued = []
    out = []
    for _ in range(entries):
        roll = rng.random()
        if roll < 0.45 or not issued:
            server, token = _token(key, code, server, rng, extended)
            issued.append(token)
        elif roll < 0.55:
            token = rng.choice(issued)  # a replay, or an older token typed late
        elif roll < 0.65:
            # a jump near the maximum forward jump (64 counts past the device's count)
            server = device.count + rng.choice((58, 61, 62, 63, 64, 65, 66, 70))
            server, token = _token(key, code, server, rng, extended)
            issued.append(token)
        elif roll < 0.75:
            # several tokens issued, typed in reverse: some inside the window, some below it
            batch = []
            for _ in range(rng.randrange(2, 12)):
                server, t = _token(key, code, server, rng, extended)
                batch.append(t)
            issued.extend(batch)
            token = batch[0]
            out.append([batch[-1]] + device.enter(batch[-1]))
        elif roll < 0.85:
            other = "%032x" % rng.getrandbits(128)  # another meter's key
            token = _token(other, code, server, rng, extended)[1]
        else:
            n = 12 if extended else rng.choice((9, 9, 9, 3, 6))
            token = "".join(rng.choice("0123456789") for _ in range(n))
        out.append([token] + device.enter(token))
    return {"seed": seed, "key": key, "code": code, "entries": out}


APP_KEY = "0123456789abcdef0123456789abcdef"
APP_CODE = 271828182


def app_tokens():
    """The tokens tests/firmware/test_openpaygo_app.py types (as constants there, since
    MicroPython cannot make them): ADD KES 10, 20, ... 120 at counts 2..24, then SET KES 250."""
    out = []
    count = 1
    for i in range(1, 13):
        count, token = OpenPAYGOTokenEncoder.generate_token(
            secret_key=APP_KEY, count=count, value=10 * i, token_type=TokenType.ADD_TIME,
            starting_code=APP_CODE)
        out.append((count, 10 * i, token))
    count, token = OpenPAYGOTokenEncoder.generate_token(
        secret_key=APP_KEY, count=count, value=250, token_type=TokenType.SET_TIME,
        starting_code=APP_CODE)
    return out, (count, 250, token)


def amount_tokens():
    """The tokens tests/firmware/test_openpaygo_amounts.py types: ADD KES 999 and 998 (12-digit
    extended tokens, as the cloud makes for more than KES 995), then ADD KES 10 (9 digits)."""
    out = []
    count = 1
    for kes in (999, 998, 10):
        count, token = OpenPAYGOTokenEncoder.generate_token(
            secret_key=APP_KEY, count=count, value=kes, token_type=TokenType.ADD_TIME,
            starting_code=APP_CODE, extended_token=kes > 995)
        out.append((count, kes, token))
    return out


def special_add_tokens():
    """9-digit ADD tokens of the values 999 and 998 after count 6, which only the reference's
    lower step makes (generate_token refuses a 9-digit value above 995, as a compliant server
    does): the standard's codes, which credit nothing."""
    key = OpenPAYGOTokenShared.load_secret_key_from_hex(APP_KEY)
    return [OpenPAYGOTokenEncoder.generate_standard_token(
        starting_code=APP_CODE, key=key, value=v, count=6, mode=TokenType.ADD_TIME) + (v,)
        for v in (999, 998)]


def render(seeds=SEEDS):
    return "".join(json.dumps(scenario(s), separators=(",", ":")) + "\n" for s in seeds)


if __name__ == "__main__":
    with open(PATH, "w", encoding="utf-8") as f:
        f.write(render())
    print("wrote", PATH)
