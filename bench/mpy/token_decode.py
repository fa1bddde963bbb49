# Cost of one OpenPAYGo token decode on MicroPython (meter.openpaygo), timed with ticks_us.
# argv: a JSON file of cases [label, key, code, last_count, token, repeats]; prints one JSON
# line per case: label, the verdict, and the per-decode microseconds (min, median, max).
import json
import sys
import time

from meter.openpaygo import Decoder
from meter.token_counts import TokenCounts


def main(path):
    with open(path) as f:
        cases = json.load(f)
    for label, key, code, last, token, repeats in cases:
        decoder = Decoder(key, code)
        counts = TokenCounts(last)
        times = []
        verdict = None
        for _ in range(repeats):
            t0 = time.ticks_us()
            verdict = decoder.decode(token, counts)[0]
            times.append(time.ticks_diff(time.ticks_us(), t0))
        times.sort()
        print(json.dumps({"label": label, "verdict": verdict, "min_us": times[0],
                          "median_us": times[len(times) // 2], "max_us": times[-1]}))


main(sys.argv[1])
