# Signed commands (docs/protocol.md "Signed commands"): the cloud signs every recharge, tariff
# and sync with a key only it and this meter hold, so neither the broker, nor a leaked broker
# password, nor another meter's recorded message can credit a meter. The cloud runs this same
# source (cloud/firmware_source.py), so both sides sign and check one way.
#
# Wire form: the JSON object's exact bytes, a newline, then the HMAC-SHA256 of those bytes in
# lowercase hex. The signature covers the bytes as sent: nothing is re-serialised to check it.
# The key: HMAC-SHA256(device key, context + meter id), so the device key itself (which signs
# the meter's HTTP requests and derives its broker password) never travels.
import hashlib

from micropython import const

_BLOCK = const(64)
_SIG_HEX = const(64)
_CONTEXT = b"mita command key v1\n"


def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def _hex(data):
    digits = "0123456789abcdef"
    return "".join(digits[b >> 4] + digits[b & 15] for b in data)


def command_key(device_key, meter_id):
    """The per-meter key commands are signed with; b"" when the meter has no device key."""
    if not device_key:
        return b""
    return hmac_sha256(device_key.encode(), _CONTEXT + meter_id.encode())


def sign(key, body):
    """body: the JSON bytes of one command; returns the payload to publish."""
    return body + b"\n" + _hex(hmac_sha256(key, body)).encode()


def _same(a, b):
    # Constant time: how much of a guessed signature matched must not show in the timing.
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def opened(key, payload):
    """The signed JSON bytes of `payload` if its signature is good under `key`, else None
    (unsigned, mis-signed, truncated, or no key to check with)."""
    if not key or not isinstance(payload, (bytes, bytearray)):
        return None
    cut = len(payload) - _SIG_HEX - 1
    if cut < 0 or payload[cut] != 0x0A:  # b"\n"
        return None
    body = bytes(payload[:cut])
    if not _same(_hex(hmac_sha256(key, body)).encode(), bytes(payload[cut + 1:])):
        return None
    return body
