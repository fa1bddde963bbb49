"""OpenPAYGo Token on the cloud side: a meter's token key, and tokens made with EnAccess's
reference encoder (PyPI `openpaygo`), never a hand-written one.

The token key is derived from the meter's device key (HMAC-SHA256 with a context of its own
and the meter number), as its broker password is: made at registration with the device key,
recomputed whenever a token is made, rotated with it, and never stored or logged apart from
it. The starting code is the standard's own derivation from the key (config starting_code 0),
so any compliant server holding the key issues tokens the meter takes.

Value unit (firmware/meter/token_counts.py): 1 token unit = KES 1 = 100 cents. A 9-digit
token carries up to KES 995; larger amounts get a 12-digit extended token, including KES 998
and 999, which in an extended token are amounts, not the standard's PAYG-disable and
counter-sync codes (meter.token_counts.special_value).

Every payment the cloud credits gets the meter's next count and its token (`mint`, called by
the store inside the credit's own write, so a duplicate callback never mints a second one;
cloud/token_mint.py makes it ahead, off the store's writer, for long-paid meters);
the MQTT recharge carries the count, and the meter credits whichever arrives first.
"""
import hashlib
import hmac

import openpaygo.token_shared
import openpaygo.token_shared_extended
import siphash24
from openpaygo import OpenPAYGOTokenEncoder, TokenType

UNIT_CENTS = 100
MAX_STANDARD_UNITS = 995
MAX_EXTENDED_UNITS = 999999
_KEY_CONTEXT = b"mita openpaygo token key v1\n"


class _SipHash_2_4:
    """The `siphash` package's interface (SipHash_2_4(key, data).hash() -> the 64-bit value as
    an int), computed by PyPI `siphash24`'s C code. The reference encoder hashes once for every
    count up to the new one, and the pure-Python package it imports takes 8.6 us a hash against
    0.46 here: the encoder stays the reference's, only its hash function is faster.
    tests/cloud/test_tokens.py checks the two agree and the tokens still decode on the meter."""

    __slots__ = ("_value",)

    def __init__(self, key, data):
        # intdigest() is signed (a 64-bit C integer); the siphash package's value is not
        self._value = siphash24.siphash24(data, key=key).intdigest() & 0xFFFF_FFFF_FFFF_FFFF

    def hash(self):
        return self._value


class _CSipHash:
    SipHash_2_4 = _SipHash_2_4


for _module in (openpaygo.token_shared, openpaygo.token_shared_extended):
    _module.siphash = _CSipHash


class TokenIssueError(ValueError):
    """An amount no token can carry (not whole shillings, zero, or too large)."""


def token_key(meter_no, device_key):
    """The meter's 16-byte token key, as the 32 hex digits config["token"]["key"] holds."""
    mac = hmac.new(device_key.encode("utf-8"), _KEY_CONTEXT + meter_no.encode("utf-8"),
                   hashlib.sha256)
    return mac.hexdigest()[:32]


def token_config(meter_no, device_key):
    """What provisioning writes into the meter's config.json under "token"."""
    return {"key": token_key(meter_no, device_key), "starting_code": 0}


def issue(key_hex, last_count, amount_cents):
    """(count, token digits) of the ADD token crediting amount_cents after the meter's token
    count `last_count` (the count of the previous token issued, 1 for a new meter)."""
    if type(amount_cents) is not int or amount_cents <= 0 or amount_cents % UNIT_CENTS:
        raise TokenIssueError("a token carries whole shillings: %r cents" % (amount_cents,))
    units = amount_cents // UNIT_CENTS
    if units > MAX_EXTENDED_UNITS:
        raise TokenIssueError("KES %d is more than a token carries" % units)
    return OpenPAYGOTokenEncoder.generate_token(
        secret_key=key_hex, count=last_count, value=units, token_type=TokenType.ADD_TIME,
        extended_token=units > MAX_STANDARD_UNITS)


def carries(amount_cents):
    """True if a token can credit exactly this amount."""
    return (type(amount_cents) is int and amount_cents > 0 and amount_cents % UNIT_CENTS == 0
            and amount_cents // UNIT_CENTS <= MAX_EXTENDED_UNITS)


def mint(meter_no, device_key, last_count, amount_cents):
    """(count, digits) of the token for a payment of amount_cents to a meter whose last issued
    count is last_count, or None when no token can carry it (or the meter has no key)."""
    if not device_key or not carries(amount_cents):
        return None
    return issue(token_key(meter_no, device_key), last_count, amount_cents)


def display(digits):
    """The token as the customer types it: groups of three digits ("123 456 789")."""
    if digits is None:
        return None
    return " ".join(digits[i:i + 3] for i in range(0, len(digits), 3))
