"""Limits on starting STK pushes: a prompt already waiting on a phone is not sent twice (a
double tap would otherwise charge twice), and nobody can flood a phone with prompts.

The counts live in the store (Store.take_rate_slot), so every instance of the service and every
restart sees the same ones: a phone gets at most `per_phone` prompts per window whoever asks
(push-bombing a stranger through many accounts), a meter at most `per_meter`, a customer at
most `per_customer` a minute and an operator (a leaked operator key) `per_operator`. The
same-prompt check stays in process memory: it only spares a double tap, the store decides
whether the earlier prompt is still pending."""

import math

PER_PHONE = (3, 600)         # prompts to one phone per 10 minutes, whoever asks
PER_METER = (6, 600)         # prompts for one meter per 10 minutes
PER_CUSTOMER = (5, 60)       # pushes one customer may start per minute
PER_OPERATOR = (30, 60)      # pushes one operator may start per minute
_SAME_PROMPT_S = 60.0        # a pending prompt for the same meter, phone and amount blocks a new one
_MAX_TRACKED = 10_000


class TooManyPushes(Exception):
    """Too many STK pushes recently for a phone, meter or caller (HTTP 429, Retry-After)."""

    def __init__(self, message, retry_after_s):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PromptAlreadyWaiting(Exception):
    """The same payment prompt is already on the phone (HTTP 409)."""


class PushGuard:
    """`clock` gives seconds; `counters` (a dict) gets push_limited_<what> for each refusal."""

    def __init__(self, clock, counters=None, per_phone=PER_PHONE, per_meter=PER_METER,
                 per_customer=PER_CUSTOMER, per_operator=PER_OPERATOR,
                 same_prompt_s=_SAME_PROMPT_S):
        self.clock = clock
        self.counters = counters if counters is not None else {}
        self.limits = {"phone": per_phone, "meter": per_meter, "customer": per_customer,
                       "operator": per_operator}
        for what in self.limits:
            self.counters.setdefault("push_limited_" + what, 0)
        self.same_prompt_s = same_prompt_s
        self._prompts = {}    # (meter_no, phone, amount) -> (time, checkout id or None)

    async def reserve(self, store, principal, meter_no, phone, amount_kes):
        """Refuse or book a push; returns the key to pass to `sent` or `failed`."""
        now = self.clock()
        key = (meter_no, phone, amount_kes)
        held = self._prompts.get(key)
        if held is not None and now - held[0] < self.same_prompt_s:
            when, checkout = held
            waiting = checkout is None  # another request is sending it right now
            if checkout is not None:
                stk = await store.get_stk_request(checkout)
                waiting = stk is not None and stk["status"] == "pending"
            if waiting:
                raise PromptAlreadyWaiting("the same payment prompt is already on that phone"
                                           + (f" ({checkout})" if checkout else ""))
        # Booked before the store is asked: a double tap arriving meanwhile sees it waiting.
        self._prompts[key] = (now, None)
        try:
            await self._count(store, principal, meter_no, phone, now)
        except BaseException:
            self._prompts.pop(key, None)
            raise
        self._forget_old(now)
        return key

    async def _count(self, store, principal, meter_no, phone, now):
        caller = "operator" if principal.is_operator else "customer"
        named = (("phone", phone), ("meter", meter_no), (caller, principal.user_id))
        limits = [(f"stk:{what}:{name}", self.limits[what][0], self.limits[what][1] * 1000)
                  for what, name in named]
        wait_ms, refused = await store.take_rate_slot(limits, int(now * 1000))
        if refused is None:
            return
        full = next(what for (what, _), limit in zip(named, limits) if limit[0] == refused)
        self.counters["push_limited_" + full] += 1
        most, window = self.limits[full]
        # Which limit refused is said, so a customer knows whether waiting helps them.
        raise TooManyPushes(f"at most {most} payment prompts per {window} s for this {full}; "
                            "try again later", max(1, math.ceil(wait_ms / 1000)))

    def sent(self, key, checkout):
        self._prompts[key] = (self._prompts.get(key, (self.clock(),))[0], checkout)

    def failed(self, key):
        self._prompts.pop(key, None)

    def _forget_old(self, now):
        if len(self._prompts) > _MAX_TRACKED:
            for key, (when, _) in list(self._prompts.items()):
                if now - when >= self.same_prompt_s:
                    del self._prompts[key]
