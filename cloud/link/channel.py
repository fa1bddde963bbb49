"""What the bridge knows about one meter between messages. Nothing here is the truth (the
store is): it is what lets the bridge skip a store write that changes nothing, and not send a
recharge twice while the first copy may still be on its way."""


class MeterChannel:
    __slots__ = ("online", "online_at", "alerts", "floor", "synced", "sent_ms", "attention",
                 "held", "retry", "delivering", "again", "inbox", "command_key",
                 "reports")

    def __init__(self):
        self.online = None      # the last status said online (None: never heard)
        self.online_at = 0      # ms of its last online status: its session may be new since
        self.alerts = None      # {alert: bool} last written
        self.floor = None       # the recharge floor the last delivery pass computed
        self.synced = None      # the floor last sent in a sync
        self.sent_ms = {}       # seq -> when this process last sent that recharge
        self.attention = False  # pending recharges or unresolved seq gaps: resend passes visit
        self.held = False       # recharges held back past the meter's window
        self.retry = set()      # seqs the meter refused "not now": send at the next pass
        self.delivering = None  # the running delivery task (one at a time)
        self.again = False      # the delivery must run once more when this one ends
        self.inbox = None       # the newest message task (a meter's messages run in order)
        self.command_key = None  # what commands to it are signed with; read again at online
        self.reports = 0        # telemetry messages read (orders an ack's balance against them)

    def last_sent(self, recharge):
        """When the recharge last went out: the store's record or this process's own."""
        return max(recharge.get("sent_at") or 0, self.sent_ms.get(recharge["seq"], 0)) or None
