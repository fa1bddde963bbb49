# Hourly consumption history (meter.history): hour closing, local hours, flash file through
# power cuts, acknowledgements, the bound.
import os

from meter import calendar
from meter.history import HistoryError, HistoryLog
from support import raises, tmpdir

EAT = 10800
T10 = calendar.epoch(2026, 11, 26, 10, 0, 0, EAT)  # 10:00 local time, Nairobi


def test_consumption_since_the_last_close_goes_to_the_hour_that_ended():
    h = HistoryLog(tmpdir("hist_close"), EAT)
    assert h.sample(T10 + 5, 1000, 5000) is None
    assert h.sample(T10 + 1800, 1100, 5250) is None
    rec = h.sample(T10 + 3601, 1150, 5375)
    assert (rec["seq"], rec["hour_start"], rec["wh"], rec["cost_cents"]) == (1, T10, 150, 375)
    msg = h.message(rec)
    assert msg == {"v": 1, "seq": 1, "hour_start": T10, "date": "2026-11-26", "hour": "10",
                   "wh": 150, "cost_cents": 375}
    assert h.pending() == [rec]


def test_an_hour_without_consumption_makes_no_record():
    h = HistoryLog(tmpdir("hist_zero"), EAT)
    h.sample(T10, 10, 10)
    h.sample(T10 + 3600, 20, 30)
    assert h.sample(T10 + 7200, 20, 30) is None
    assert h.sample(T10 + 3 * 3600, 25, 40)["hour_start"] == T10 + 7200
    assert [r["seq"] for r in h.pending()] == [1, 2]


def test_hours_follow_the_local_clock_even_half_hour_offsets():
    india = 19800  # +5:30: a local hour starts at :30 UTC
    h = HistoryLog(tmpdir("hist_offset"), india)
    start = calendar.epoch(2026, 1, 1, 23, 0, 0, india)
    h.sample(start + 10, 0, 0)
    h.sample(start + 3599, 7, 9)
    assert h.sample(start + 3600, 8, 10)["hour_start"] == start
    msg = h.message(h.pending()[0])
    assert (msg["date"], msg["hour"]) == ("2026-01-01", "23")


def test_records_survive_a_reboot_and_numbers_are_never_reused():
    root = tmpdir("hist_reboot")
    h = HistoryLog(root, EAT)
    h.sample(T10, 0, 0)
    h.sample(T10 + 3600, 100, 200)
    h.sample(T10 + 7200, 150, 300)
    again = HistoryLog(root, EAT)
    assert [r["seq"] for r in again.pending()] == [1, 2]
    assert again.ack(1) and again.ack(2)  # all acked: the file is compacted to its header
    third = HistoryLog(root, EAT)
    assert third.pending() == [] and third.next_seq == 3


def test_consumption_before_a_power_cut_is_not_lost_from_history():
    root = tmpdir("hist_cut")
    h = HistoryLog(root, EAT)
    h.sample(T10, 1000, 0)
    h.sample(T10 + 3600, 1100, 100)  # closes 10:00 at totals 1100 Wh
    # Power cut at 11:20 with 1180 Wh; the meter restarts at 12:10 (state persisted at 1180).
    after = HistoryLog(root, EAT)
    after.sample(T10 + 7800, 1180, 180)
    rec = after.sample(T10 + 3 * 3600, 1200, 200)
    assert (rec["hour_start"], rec["wh"], rec["cost_cents"]) == (T10 + 7200, 100, 100)


def test_totals_going_backwards_never_make_a_negative_record():
    h = HistoryLog(tmpdir("hist_back"), EAT)
    h.sample(T10, 500, 500)
    h.sample(T10 + 60, 400, 450)  # state restored from before the last close
    rec = h.sample(T10 + 3600, 430, 480)
    assert (rec["wh"], rec["cost_cents"]) == (30, 30)


def test_unset_clock_accumulates_into_the_first_hour_with_a_valid_clock():
    h = HistoryLog(tmpdir("hist_clock"), EAT)
    h.sample(946684800, 0, 0)  # the ESP32 RTC at power-up: 2000-01-01
    h.sample(946684800 + 7200, 40, 60)
    h.sample(T10 + 100, 50, 70)  # NTP set the clock
    rec = h.sample(T10 + 3600, 60, 80)
    assert (rec["hour_start"], rec["wh"], rec["cost_cents"]) == (T10, 60, 80)


def test_a_clock_set_backwards_does_not_close_an_hour():
    h = HistoryLog(tmpdir("hist_backclock"), EAT)
    h.sample(T10 + 7200, 0, 0)
    assert h.sample(T10 + 100, 10, 10) is None
    assert h.sample(T10 + 3600, 20, 20)["hour_start"] == T10


def test_a_torn_append_is_dropped_at_load_and_later_appends_stay_readable():
    root = tmpdir("hist_torn")
    h = HistoryLog(root, EAT)
    h.sample(T10, 0, 0)
    h.sample(T10 + 3600, 10, 20)
    with open(h.path, "a") as f:
        f.write('{"seq": 2, "hour_st')  # the power went mid-write
    again = HistoryLog(root, EAT)
    assert again.torn == 1 and [r["seq"] for r in again.pending()] == [1]
    again.sample(T10 + 7200, 30, 40)
    again.sample(T10 + 3 * 3600, 31, 41)
    third = HistoryLog(root, EAT)
    assert third.torn == 0
    assert [(r["seq"], r["wh"]) for r in third.pending()] == [(1, 10), (2, 21)]


def test_garbage_lines_are_dropped_and_counted():
    root = tmpdir("hist_garbage")
    path = root + "/history.jsonl"
    with open(path, "w") as f:
        f.write('{"next": 5, "wh": 10, "cents": 20}\n')
        f.write("not json\n[1, 2]\n")
        f.write('{"seq": true, "hour_start": 1, "wh": 1, "cost_cents": 1, "end_wh": 1,'
                ' "end_cents": 1}\n')
        f.write('{"seq": 5, "hour_start": %d, "wh": 3, "cost_cents": 4, "end_wh": 13,'
                ' "end_cents": 24}\n' % T10)
        f.write("\xff\xfe\n")
    h = HistoryLog(root, EAT)
    assert h.torn == 4
    assert [r["seq"] for r in h.pending()] == [5] and h.next_seq == 6


def test_acks_remove_records_in_any_order_and_bad_acks_change_nothing():
    h = HistoryLog(tmpdir("hist_ack"), EAT)
    h.sample(T10, 0, 0)
    for i in range(1, 5):
        h.sample(T10 + i * 3600, i * 10, i * 10)
    assert [r["seq"] for r in h.pending()] == [1, 2, 3, 4]
    assert h.ack(3) and not h.ack(3)
    for bad in (True, 0, 99, "2", None, -1):
        assert not h.ack(bad)
    assert [r["seq"] for r in h.pending()] == [1, 2, 4]
    assert [r["seq"] for r in h.pending(limit=2, after=1)] == [2, 4]
    assert h.unacked() == 3


def test_the_file_is_bounded_and_drops_the_oldest_first():
    root = tmpdir("hist_bound")
    h = HistoryLog(root, EAT, max_records=3)
    h.sample(T10, 0, 0)
    for i in range(1, 6):
        h.sample(T10 + i * 3600, i, i)
    assert h.dropped == 2
    assert [r["seq"] for r in h.pending()] == [3, 4, 5]
    assert [r["seq"] for r in HistoryLog(root, EAT, max_records=3).pending()] == [3, 4, 5]


def test_a_compaction_cut_by_power_leaves_the_old_file():
    root = tmpdir("hist_compact_cut")
    h = HistoryLog(root, EAT)
    h.sample(T10, 0, 0)
    h.sample(T10 + 3600, 5, 5)
    with open(h.path + ".tmp", "w") as f:
        f.write('{"next": 1')  # the new file never got renamed into place
    assert [r["seq"] for r in HistoryLog(root, EAT).pending()] == [1]
    assert os.stat(h.path)[6] > 0


def test_totals_must_be_ints():
    h = HistoryLog(tmpdir("hist_types"), EAT)
    raises(HistoryError, h.sample, T10, True, 0)
    raises(HistoryError, h.sample, T10, 1.5, 0)
