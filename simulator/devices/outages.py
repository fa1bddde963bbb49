# A schedule of cuts on virtual monotonic time, shared by the mains and the WiFi access point.


class Outages:
    """Spans [start_ms, end_ms] in which something is down; an end of None lasts until
    restore() is called."""

    def __init__(self):
        self.spans = []

    def __len__(self):
        return len(self.spans)

    def schedule(self, start_ms, duration_ms=None):
        self.spans.append([start_ms, None if duration_ms is None else start_ms + duration_ms])

    def down(self, t):
        for start, end in self.spans:
            if start <= t and (end is None or t < end):
                return True
        return False

    def restore(self, t):
        """End at t every cut under way at t (open-ended or not)."""
        for span in self.spans:
            if span[0] <= t and (span[1] is None or span[1] > t):
                span[1] = t

    def last_end(self, t):
        """When the last cut ended at or before t (0 if none had)."""
        best = 0
        for start, end in self.spans:
            if end is not None and end <= t and end > best:
                best = end
        return best

    def next_change(self, t):
        """The first start or end after t, or None."""
        best = None
        for start, end in self.spans:
            for edge in (start, end):
                if edge is not None and edge > t and (best is None or edge < best):
                    best = edge
        return best
