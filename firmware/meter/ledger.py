# The prepaid balance in integer cents: credits in, metered debits out, low/critical alerts.
# Pure logic: no hardware, no clock (credit times are passed in).


class LedgerError(ValueError):
    """An amount or a stored ledger that the meter must not accept."""


def _is_int(x):
    # bool is an int subclass; True must never be taken for one cent
    return type(x) is int


class Ledger:
    """Balance may go negative: debt run up in friendly hours is taken from the next credit
    simply because a credit adds to whatever the balance is."""

    def __init__(self, balance_cents=0, low_cents=10000, critical_cents=2000, keep=5):
        for name, value in (("balance_cents", balance_cents), ("low_cents", low_cents),
                            ("critical_cents", critical_cents), ("keep", keep)):
            if not _is_int(value):
                raise LedgerError("%s must be an int" % name)
        if keep < 0:
            raise LedgerError("keep must be >= 0")
        self.balance = balance_cents
        self.low_cents = low_cents
        self.critical_cents = critical_cents
        self.keep = keep
        self.total_credited = 0
        self.total_debited = 0
        # (ref, amount_cents, t), newest last, at most `keep` long
        self.recent = []

    def credit(self, amount_cents, ref, t):
        if not _is_int(amount_cents) or amount_cents <= 0:
            raise LedgerError("credit must be a positive int of cents")
        if not isinstance(ref, str):
            raise LedgerError("credit ref must be a str")
        if not _is_int(t):
            raise LedgerError("credit time must be an int")
        self.balance += amount_cents
        self.total_credited += amount_cents
        self._remember(ref, amount_cents, t)
        return self.balance

    def set_balance(self, cents, ref, t):
        """An operator's SET token: the balance becomes `cents`. The totals count money paid
        in and energy billed out, so neither takes the adjustment; recent shows it."""
        if not _is_int(cents) or cents < 0:
            raise LedgerError("a set balance must be a non-negative int of cents")
        if not isinstance(ref, str) or not _is_int(t):
            raise LedgerError("set needs a str ref and an int time")
        delta = cents - self.balance
        self.balance = cents
        self._remember(ref, delta, t)
        return self.balance

    def debit(self, cents):
        if not _is_int(cents) or cents < 0:
            raise LedgerError("debit must be a non-negative int of cents")
        self.balance -= cents
        self.total_debited += cents
        return self.balance

    def _remember(self, ref, amount_cents, t):
        if self.keep == 0:
            return
        self.recent.append((ref, amount_cents, t))
        if len(self.recent) > self.keep:
            # MicroPython lists have no deque; keep is small, so slicing is cheap
            self.recent = self.recent[-self.keep:]

    def alerts(self):
        # Derived from the balance alone, so they are raised by the debit that crosses a
        # threshold and cleared by the credit that lifts the balance above it, and survive a
        # reboot without being stored.
        return {
            "low_balance": self.balance <= self.low_cents,
            "critical_balance": self.balance <= self.critical_cents,
        }

    def to_dict(self):
        return {
            "balance_cents": self.balance,
            "total_credited": self.total_credited,
            "total_debited": self.total_debited,
            "recent": [[ref, amount, t] for ref, amount, t in self.recent],
        }

    @classmethod
    def from_dict(cls, d, low_cents=10000, critical_cents=2000, keep=5):
        """Rebuild a ledger saved by to_dict(); thresholds are configuration, not state."""
        if not isinstance(d, dict):
            raise LedgerError("ledger state must be a dict")
        try:
            balance = d["balance_cents"]
            credited = d["total_credited"]
            debited = d["total_debited"]
            recent = d["recent"]
        except KeyError as exc:
            raise LedgerError("ledger state lacks %s" % exc)
        ledger = cls(balance, low_cents, critical_cents, keep)
        if not _is_int(credited) or not _is_int(debited) or credited < 0 or debited < 0:
            raise LedgerError("ledger totals must be non-negative ints")
        if not isinstance(recent, list):
            raise LedgerError("ledger recent must be a list")
        ledger.total_credited = credited
        ledger.total_debited = debited
        for entry in recent:
            if (not isinstance(entry, (list, tuple)) or len(entry) != 3
                    or not isinstance(entry[0], str) or not _is_int(entry[1])
                    or not _is_int(entry[2])):
                raise LedgerError("bad ledger recent entry")
            ledger._remember(entry[0], entry[1], entry[2])
        return ledger
