"""The demo's walk on one simulated meter joined to a running cloud: the balance drains, the
low-balance alert shows, the relay opens at zero, an M-Pesa STK push is paid and the relay
closes. With a live panel in a terminal (`m` pays), or as a plain log."""
import asyncio
import time

from sim_meter import meter_state

PAY_KES = 50


class WalkFailed(Exception):
    """The meter did not come back on after the payment in the time allowed."""


def money(cents):
    if cents is None:
        return "--"
    sign = "-" if cents < 0 else ""
    return "KES %s%d.%02d" % (sign, abs(cents) // 100, abs(cents) % 100)


class Walk:
    """Watches one meter and tells its story; pays through the cloud API as its customer.

    HTTP calls run on a worker thread: the event loop here runs on the meter's accelerated
    clock, so a timeout inside it would be `speed` times too short."""

    def __init__(self, meter, api, registration, speed, out=None, scripted=True,
                 pay_kes=PAY_KES):
        self.meter = meter
        self.api = api
        self.registration = registration
        self.speed = speed
        self.out = out  # print-like, or None to keep the lines for a panel
        self.scripted = scripted
        self.pay_kes = pay_kes
        self.lines = []
        self.started = time.monotonic()
        self.last = {}
        self.opened = False      # the relay has opened for want of credit
        self.paid = False        # a payment succeeded at the cloud
        self.back_on = False     # the relay closed again after that payment
        self.paying = None       # the running payment task
        self.failures = []

    # -- telling -------------------------------------------------------------------------------

    def note(self, text):
        virtual = self.meter.clock.now_ms() // 1000
        line = "[%5.1fs | meter %02d:%02d:%02d] %s" % (
            time.monotonic() - self.started, virtual // 3600, virtual // 60 % 60, virtual % 60,
            text)
        self.lines.append(line)
        if self.out is not None:
            self.out(line)

    def observe(self):
        """Compare the meter's state with the last look and tell what changed."""
        st = meter_state(self.meter)
        was = self.last
        self.last = st
        if st["online"] and not was.get("online"):
            self.note("meter online: connected to the cloud's MQTT broker")
        if was.get("online") and not st["online"]:
            self.note("meter offline")
        alerts, old = set(st["alerts"]), set(was.get("alerts", ()))
        for name in sorted(alerts - old):
            self.note("alert: %s (balance %s)" % (name.replace("_", " "),
                                                  money(st["balance_cents"])))
        if was and was.get("relay_closed") and not st["relay_closed"]:
            self.opened = True
            self.note("relay OPEN: credit ran out, the load is cut (balance %s)"
                      % money(st["balance_cents"]))
            if self.scripted and self.paying is None:
                self.note("the customer pays KES %d with M-Pesa (scripted; press m to pay "
                          "again)" % self.pay_kes)
                self.pay()
        elif was and not was.get("relay_closed") and st["relay_closed"]:
            self.note("relay CLOSED: the load is %s (balance %s)" % (
                "back on" if self.opened else "on", money(st["balance_cents"])))
        # The relay may close before the status poll hears of the payment: judge by state.
        if self.paid and self.opened and st["relay_closed"] and not self.back_on:
            self.back_on = True
            self.note("the meter came back on after the payment")
        if was and st["credited_cents"] is not None and was.get("credited_cents") is not None \
                and st["credited_cents"] > was["credited_cents"]:
            self.note("meter applied a recharge of %s" % money(
                st["credited_cents"] - was["credited_cents"]))
        return st

    # -- paying --------------------------------------------------------------------------------

    def pay(self, kes=None):
        """Start an STK push payment (the panel's m key and the scripted step)."""
        if self.paying is not None and not self.paying.done():
            self.note("a payment is already waiting for the customer's PIN")
            return
        self.paying = asyncio.ensure_future(self._pay(kes or self.pay_kes))

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _wall_sleep(self, seconds):
        await asyncio.sleep(seconds * self.speed)  # the loop's clock runs `speed` times faster

    async def _pay(self, kes):
        meter_no = self.registration["meter_no"]
        status, push = await self._in_thread(lambda: self.api.api(
            "POST", "/api/payments/stkpush", {"meter_no": meter_no, "phone": "0712345678",
                                              "amount": kes},
            key=self.registration["api_key"]))
        if status != 201:
            self.note("STK push refused: %s %s" % (status, push))
            return
        checkout = push["checkout_request_id"]
        self.note("STK push sent (CheckoutRequestID %s): the phone shows the M-Pesa prompt"
                  % checkout)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            request = await self._in_thread(self.api.stk_status, checkout)
            if request["status"] == "success":
                self.paid = True
                self.note("M-Pesa confirmed KES %d (transaction %s): the cloud credits the meter "
                          "over MQTT" % (kes, request["transaction_id"]))
                return
            if request["status"] == "failed":
                self.note("payment failed: %s" % (request.get("reason")
                                                  or request.get("result_desc")))
                return
            await self._wall_sleep(0.1)
        self.note("no answer from M-Pesa within 30 s")


async def run_plain(walk, deadline_s, every_s=0.1):
    """The walk without a panel: returns once the meter is back on after a payment."""
    end = time.monotonic() + deadline_s
    while not walk.back_on:
        walk.observe()
        if time.monotonic() > end:
            raise WalkFailed("the meter was not back on after a payment within %d s" % deadline_s)
        await asyncio.sleep(every_s * walk.speed)
    walk.observe()


async def run_panel(walk, extra_help, refresh_s=0.25):
    """The live panel (simulator/panel.py's view and keys) plus the walk's story and `m`;
    runs until q. The simulator's `r` (a recharge handed to the meter directly) pays KES 100
    through M-Pesa here instead: a local recharge's numbering would collide with the cloud's,
    and the meter would take the cloud's next credit for a duplicate."""
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text
    from simulator.panel import Controls, Keys, render
    loop = asyncio.get_running_loop()
    controls = Controls(walk.meter)

    def on_key(ch):
        if ch in "mM":
            walk.note("you pressed m: the customer pays KES %d with M-Pesa" % walk.pay_kes)
            walk.pay()
        elif ch in "rR":
            walk.note("you pressed r: the customer pays KES 100 with M-Pesa")
            walk.pay(100)
        else:
            controls.key(ch)

    def view():
        # The story and the keys first: a short terminal crops the bottom of a live view.
        story = Text("\n".join(walk.lines[-6:]) or "(starting)", no_wrap=True,
                     overflow="ellipsis")
        return Group(Text("m pay KES %d with M-Pesa   r pay KES 100   q quit   (%s)"
                          % (walk.pay_kes, extra_help), style="bold"), story,
                     render(walk.meter, "x%g" % walk.speed, controls.extra_w))

    with Keys(loop, on_key), Live(view(), auto_refresh=False, screen=False) as live:
        while not controls.quit:
            walk.observe()
            live.update(view(), refresh=True)
            await asyncio.sleep(refresh_s * walk.speed)
