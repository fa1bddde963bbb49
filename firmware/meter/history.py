# Hourly consumption history: energy and billed cost per local hour, taken from the meter's
# running totals, kept in a small append-only flash file until the cloud acknowledges them.
#
# File: one JSON object a line. The first line is a header {"next": seq, "wh": W, "cents": C}
# written at each compaction (the next record number and the totals at the last closed hour);
# records are {"seq", "hour_start", "wh", "cost_cents", "end_wh", "end_cents"}. A line torn by a
# power cut is dropped at load; appends only ever add whole lines after that.
import json
import os
from micropython import const

from meter import calendar

_MIN_VALID_T = const(1704067200)  # 2024-01-01: an earlier clock has never been set
_COMPACT_ACKS = const(16)  # compact after this many acks, or when none is left pending


class HistoryError(ValueError):
    pass


class HistoryLog:
    def __init__(self, root, utc_offset_s=10800, max_records=336, name="history", log=None):
        self.path = (root + "/" if root else "") + name + ".jsonl"
        self.utc_offset_s = utc_offset_s
        self.max_records = max_records
        self.log = log
        self.dropped = 0  # records lost to the bound (oldest first)
        self.torn = 0  # lines found broken at load (power cut mid-append)
        self.written = 0
        self.next_seq = 1
        self.count = 0  # records in the file, acked or not
        self._acked = []  # acked seqs still in the file
        self._hour = None  # local hour start being accumulated
        self._base = None  # (wh, cents) totals at the last close
        self._load()

    # --- accumulation ------------------------------------------------------------------
    def hour_start(self, t):
        local = t + self.utc_offset_s
        return local - local % 3600 - self.utc_offset_s

    def sample(self, t, energy_wh, debited_cents):
        """Feed the meter's lifetime totals (Wh, cents debited) at time t, every tick or so.
        When t enters a later hour, the consumption since the last close becomes a record for
        the hour that ended; returns that record, else None."""
        if type(energy_wh) is not int or type(debited_cents) is not int:
            raise HistoryError("totals must be ints")
        if self._base is None:
            self._base = (energy_wh, debited_cents)
        wh = energy_wh - self._base[0]
        cents = debited_cents - self._base[1]
        if wh < 0 or cents < 0:
            # The totals went back (state restored from before the last close): start over
            # from here rather than report negative consumption.
            self._base = (energy_wh, debited_cents)
            return None
        if t < _MIN_VALID_T:
            return None  # keep accumulating until the clock is set
        hour = self.hour_start(t)
        if self._hour is None or hour <= self._hour:
            if self._hour is None or hour < self._hour:
                self._hour = hour  # a clock set backwards: what follows goes to this hour
            return None
        closed = self._hour
        self._hour = hour
        self._base = (energy_wh, debited_cents)
        if not wh and not cents:
            return None
        record = {"seq": self.next_seq, "hour_start": closed, "wh": wh, "cost_cents": cents,
                  "end_wh": energy_wh, "end_cents": debited_cents}
        self._append(record)
        return record

    def unclosed(self, energy_wh, debited_cents):
        """(Wh, cents) since the last closed hour: what the next record will hold so far."""
        if self._base is None:
            return 0, 0
        return energy_wh - self._base[0], debited_cents - self._base[1]

    # --- the file ----------------------------------------------------------------------
    def _load(self):
        found = {"header": None, "good": 0, "broken": 0}

        def visit(rec):
            if rec is None:
                found["broken"] += 1
            elif "next" in rec:
                found["header"] = rec
            else:
                found["good"] += 1
                self.next_seq = max(self.next_seq, rec["seq"] + 1)
                self._base = (rec["end_wh"], rec["end_cents"])

        self._scan(visit)
        header = found["header"]
        if header is not None:
            self.next_seq = max(self.next_seq, header["next"])
            if self._base is None:
                self._base = (header["wh"], header["cents"])
        self.count = found["good"]
        if found["broken"]:
            self.torn = found["broken"]
            self._log("warn", "history: dropped %d broken line(s)", self.torn)
            self._compact()

    def _scan(self, visit):
        """Call visit(record) for each line in order (None for a line that is not a whole
        record) until it returns True. A callback, not a generator: a generator left early
        would keep the file open on MicroPython, which has no finalisers to close it."""
        try:
            f = open(self.path, "r")
        except OSError:
            return
        try:
            while True:
                line = f.readline()
                if not line or visit(_parse(line)):
                    return
        finally:
            f.close()

    def _append(self, record):
        if self.count >= self.max_records:
            self._compact(drop_oldest=self.count - self.max_records + 1)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.next_seq += 1
        self.count += 1
        self.written += 1

    def _compact(self, drop_oldest=0):
        """Rewrite the file without acked, broken or dropped records, through a temporary file
        and a rename, so a power cut leaves either the old file or the new one."""
        tmp = self.path + ".tmp"
        base = self._base or (0, 0)
        todo = [drop_oldest, 0]  # records still to drop, records kept

        with open(tmp, "w") as out:
            out.write(json.dumps({"next": self.next_seq, "wh": base[0], "cents": base[1]}) + "\n")

            def visit(rec):
                if rec is None or "next" in rec or rec["seq"] in self._acked:
                    return False
                if todo[0]:
                    todo[0] -= 1
                    self.dropped += 1
                    return False
                out.write(json.dumps(rec) + "\n")
                todo[1] += 1
                return False

            self._scan(visit)
        os.rename(tmp, self.path)
        self.count = todo[1]
        self._acked = []

    # --- upload ------------------------------------------------------------------------
    def pending(self, limit=8, after=0):
        """Up to `limit` unacknowledged records with seq > after, oldest first."""
        out = []

        def visit(rec):
            if (rec is not None and "next" not in rec and rec["seq"] > after
                    and rec["seq"] not in self._acked):
                out.append(rec)
            return len(out) >= limit

        self._scan(visit)
        return out

    def unacked(self):
        return self.count - len(self._acked)

    def ack(self, seq):
        """The cloud stored record seq; True if it was pending here."""
        if type(seq) is not int or seq in self._acked or seq >= self.next_seq:
            return False
        found = []

        def visit(rec):
            if rec is not None and rec.get("seq") == seq:
                found.append(rec)
                return True
            return False

        self._scan(visit)
        if not found:
            return False
        self._acked.append(seq)
        if len(self._acked) >= _COMPACT_ACKS or len(self._acked) >= self.count:
            self._compact()
        return True

    def message(self, rec):
        """The protocol's history payload for a record (local date and hour added)."""
        parts = calendar.local_parts(rec["hour_start"], self.utc_offset_s)
        return {"v": 1, "seq": rec["seq"], "hour_start": rec["hour_start"],
                "date": "%04d-%02d-%02d" % (parts[0], parts[1], parts[2]),
                "hour": "%02d" % parts[3], "wh": rec["wh"], "cost_cents": rec["cost_cents"]}

    def _log(self, level, msg, *args):
        if self.log is not None:
            getattr(self.log, level)(msg, *args)


_RECORD_KEYS = ("seq", "hour_start", "wh", "cost_cents", "end_wh", "end_cents")
_HEADER_KEYS = ("next", "wh", "cents")


def _parse(line):
    if not line.endswith("\n"):
        return None  # the tail of an append a power cut interrupted
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if type(rec) is not dict:
        return None
    keys = _HEADER_KEYS if "next" in rec else _RECORD_KEYS
    for key in keys:
        if type(rec.get(key)) is not int:
            return None
    return rec
