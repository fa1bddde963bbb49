"""Abuse-limit counts on Firebase RTDB: `rate_limits/<key>` holds {event token: ms} for the
events still inside the key's window, each key changed by its own ETag transaction.

RTDB has no transaction across nodes, so "all keys or none" is done by taking the keys one
after another and taking back the events already counted when a later key refuses. Two
concurrent callers may then both be refused where one of them would have fitted; never both
counted past a limit. Keys no one asks about again keep their last events (a few bytes each);
the next take on the key prunes them. `ref_at(*parts)` gives a db.Reference; this blocks.
"""

import uuid

from .base import safe_key
from .firebase_credit import Abort, run_transaction


def take_rate_slot(ref_at, limits, now_ms, count=True):
    token = uuid.uuid4().hex if count else None
    taken = []
    for key, limit, window in limits:
        ref = ref_at("rate_limits", safe_key(key))
        answer = run_transaction(ref, lambda cur, most=limit, span=window:
                                 _count(cur, token, now_ms, most, span))
        if type(answer) is int and answer > 0:  # refused: the ms to wait
            for done in taken:
                run_transaction(done, lambda cur: _uncount(cur, token))
            return answer, key
        taken.append(ref)
    return 0, None


def _count(current, token, now_ms, limit, window):
    events = {k: v for k, v in (current or {}).items()
              if isinstance(v, int) and v > now_ms - window}
    if len(events) >= limit:
        oldest_that_fills = sorted(events.values())[len(events) - limit]
        raise Abort(oldest_that_fills + window - now_ms)
    if token is None:
        raise Abort(0)  # only asked: room, nothing counted
    events[token] = now_ms
    return events


def _uncount(current, token):
    if not current or token not in current:
        raise Abort(None)
    return {k: v for k, v in current.items() if k != token} or None
