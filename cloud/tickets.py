"""Short-lived tickets for the dashboard's event stream. A browser's EventSource cannot send
an Authorization header, and an API key in a URL would end up in proxies' logs and the
browser's history; so the page trades its bearer credentials for a ticket (an authenticated
POST) and opens the stream with that. A ticket names the principal, lives 60 s, is signed
with a key this process made at start (a restarted cloud refuses old ones: the page just asks
again) and opens one stream only."""

import base64
import hashlib
import hmac
import json
import secrets
import time

from cloud.auth import AuthError, Principal

TICKET_TTL_S = 60


class Tickets:
    def __init__(self, clock=time.time, ttl_s=TICKET_TTL_S):
        self._key = secrets.token_bytes(32)
        self.clock = clock
        self.ttl_s = ttl_s
        self._used = {}  # nonce -> expiry, until it expires

    def _sign(self, body):
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def issue(self, principal):
        claims = {"u": principal.user_id, "r": principal.role,
                  "e": int(self.clock()) + self.ttl_s, "n": secrets.token_hex(8)}
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return body.decode("ascii") + "." + self._sign(body)

    def redeem(self, ticket):
        """The Principal a valid, unexpired, unused ticket names; AuthError otherwise."""
        ticket = ticket or ""
        body, _, signature = ticket.partition(".")
        # compare_digest raises on non-ASCII text: anything but ASCII is refused first
        if not body or len(ticket) > 512 or not ticket.isascii() or not hmac.compare_digest(
                self._sign(body.encode("ascii")), signature):
            raise AuthError("unknown or expired ticket")
        claims = json.loads(base64.urlsafe_b64decode(body.encode("ascii")))
        now = self.clock()
        if claims["e"] < now or claims["n"] in self._used:
            raise AuthError("unknown or expired ticket")
        self._forget_expired(now)
        self._used[claims["n"]] = claims["e"]
        return Principal(claims["u"], claims["r"])

    def _forget_expired(self, now):
        for nonce, expiry in list(self._used.items()):
            if expiry < now:
                del self._used[nonce]
