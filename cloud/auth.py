"""Who is asking: customers and operators (API keys or Firebase ID tokens), and meters
(HMAC-signed requests with a timestamp, a nonce and a replay window)."""

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

OPERATOR = "operator"
CUSTOMER = "customer"
METER_HEADER = "X-Mita-Meter"
TIMESTAMP_HEADER = "X-Mita-Timestamp"
NONCE_HEADER = "X-Mita-Nonce"
SIGNATURE_HEADER = "X-Mita-Signature"
_MAX_NONCES_PER_METER = 4096
_HEX_DIGITS = "0123456789abcdef"
_BAD_SIGNATURE = "unknown meter or bad signature"


class AuthError(Exception):
    """No valid credentials (HTTP 401)."""


class Forbidden(Exception):
    """Valid credentials, but not for this resource (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str

    @property
    def is_operator(self):
        return self.role == OPERATOR


def new_secret(prefix):
    """An unguessable key to hand out once (API key, device key)."""
    return prefix + secrets.token_urlsafe(32)


def hash_key(key):
    """API keys are stored as their sha256: a leaked store does not leak working keys."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_token(header):
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 4096:
        raise AuthError("expected Authorization: Bearer <token>")
    return token


class UserAuthenticator:
    """Turns a bearer token into a Principal.

    Embedded mode: an API key (looked up by hash) or the bootstrap operator key.
    Firebase mode: an ID token checked by `verify_id_token` (a blocking call: run off the loop);
    the role comes from the `role` custom claim or the user's stored record.
    """

    def __init__(self, store, mode, operator_key="", verify_id_token=None):
        self.store = store
        self.mode = mode
        self.operator_key = operator_key
        self.verify_id_token = verify_id_token

    async def authenticate(self, authorization_header):
        token = bearer_token(authorization_header)
        if self.operator_key and hmac.compare_digest(token.encode(), self.operator_key.encode()):
            return Principal(OPERATOR, OPERATOR)
        if self.mode == "firebase":
            return await self._firebase(token)
        user = await self.store.find_user_by_api_key_hash(hash_key(token))
        if user is None:
            raise AuthError("unknown API key")
        return Principal(user["user_id"], user.get("role") or CUSTOMER)

    async def _firebase(self, token):
        if self.verify_id_token is None:
            raise AuthError("ID tokens are not configured")
        try:
            claims = await asyncio.to_thread(self.verify_id_token, token)
        except Exception as e:  # firebase_admin raises several unrelated classes
            raise AuthError(f"invalid ID token ({type(e).__name__})") from None
        uid = claims.get("uid") if isinstance(claims, dict) else None
        if not isinstance(uid, str) or not uid:
            raise AuthError("ID token has no uid")
        if claims.get("role") == OPERATOR:
            return Principal(uid, OPERATOR)
        user = await self.store.get_user(uid)
        return Principal(uid, (user or {}).get("role") or CUSTOMER)


def require_operator(principal):
    if not principal.is_operator:
        raise Forbidden("operators only")


def require_user_access(principal, user_id):
    if not principal.is_operator and principal.user_id != user_id:
        raise Forbidden("not your account")


def require_meter_access(principal, meter):
    if not principal.is_operator and meter.get("user_id") != principal.user_id:
        raise Forbidden("not your meter")


# -- meters: signed requests ---------------------------------------------------------------

def signing_string(method, path, timestamp, nonce, body):
    """What a meter signs: method, path with query, timestamp, nonce and the body's sha256."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path, str(timestamp), nonce, digest)).encode("utf-8")


def sign_request(device_key, method, path, timestamp, nonce, body=b""):
    return hmac.new(device_key.encode("utf-8"), signing_string(method, path, timestamp, nonce, body),
                    hashlib.sha256).hexdigest()


def signed_headers(meter_no, device_key, method, path, body=b"", timestamp=None, nonce=None):
    """Headers for a signed meter request (tests, simulator and tools use this)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(8)
    return {METER_HEADER: meter_no, TIMESTAMP_HEADER: str(timestamp), NONCE_HEADER: nonce,
            SIGNATURE_HEADER: sign_request(device_key, method, path, timestamp, nonce, body)}


class MeterVerifier:
    """Checks a meter's signature and refuses replays inside the window."""

    def __init__(self, store, window_s=300, clock=time.time):
        self.store = store
        self.window_s = window_s
        self.clock = clock

    async def verify(self, meter_no, method, path, headers, body):
        if headers.get(METER_HEADER) != meter_no:
            raise AuthError(f"{METER_HEADER} must name the meter in the path")
        timestamp, nonce, signature = self._parse(headers)
        now = self.clock()
        if abs(now - timestamp) > self.window_s:
            raise AuthError("request timestamp outside the replay window (check the clock)")
        key = await self.store.get_device_key(meter_no)
        # One answer for both, so a caller without a key cannot list which meters exist.
        expected = sign_request(key or "", method, path, timestamp, nonce, body)
        if not hmac.compare_digest(expected, signature) or not key:
            raise AuthError(_BAD_SIGNATURE)
        # Claimed in the store, so a request replayed to another cloud process is refused too.
        answer = await self.store.claim_nonce(meter_no, nonce, timestamp, self.window_s, now,
                                              _MAX_NONCES_PER_METER)
        if answer == "replayed":
            raise AuthError("replayed request")
        if answer != "ok":
            raise AuthError("too many requests in the replay window")

    def _parse(self, headers):
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "").lower()
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise AuthError(f"{TIMESTAMP_HEADER} must be Unix seconds")
        if not (8 <= len(nonce) <= 64 and nonce.isascii() and nonce.isalnum()):
            raise AuthError(f"{NONCE_HEADER} must be 8..64 letters/digits")
        # compare_digest raises TypeError on non-ASCII text: refuse anything but hex first.
        if len(signature) != 64 or signature.strip(_HEX_DIGITS):
            raise AuthError(f"{SIGNATURE_HEADER} must be a hex HMAC-SHA256")
        return int(timestamp), nonce, signature
