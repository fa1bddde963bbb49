# StateStore: two CRC'd slots; a write cut at any byte leaves the previous good state loadable.
import json

from meter.log import Logger
from meter.storage import StateStore, StorageError, encode, decode, newer
from support import raises, tmpdir


def realistic_state(balance=123456, energy=987654):
    """A meter's state of the size the app will save (~300-600 bytes): the shapes of
    Ledger.to_dict() and Recharger.state() plus energy, relay, tariff and month-to-date."""
    recent = []
    for seq in (1, 2, 3, 5, 9):
        recent.append(["QKX%07d" % seq, 5000 * seq, 1700000000 + seq])
    return {
        "v": 1,
        "ledger": {"balance_cents": balance, "total_credited": 100000, "total_debited": 0,
                   "recent": recent},
        "recharge": {"cloud": [3, 34], "token": [0, 0]},
        "energy_wh": energy,
        "energy_rem_mwh": 417,
        "cents_rem": 73,
        "relay": {"closed": True, "reason": "credit"},
        "tariff": {"id": "KPLC-DC-2026-01", "cents_per_kwh": 2310, "fixed_cents": 0},
        "month": {"key": "2026-11", "wh": 41230, "cents": 95241},
    }


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def test_realistic_state_is_a_realistic_size():
    n = len(encode(realistic_state(), 1))
    assert 300 <= n <= 600, n


def test_encode_decode_round_trip_and_layout():
    state = {"a": 1, "b": [1, 2], "c": "x"}
    image = encode(state, 7)
    assert image[:4] == b"MITA"
    assert decode(image) == (7, state)
    # header 14 bytes + payload + 4-byte CRC
    payload_len = len(json.dumps(state).encode())
    assert len(image) == 14 + payload_len + 4


def test_fresh_when_no_files_then_save_and_load():
    store = StateStore(tmpdir("st_fresh"))
    assert store.load() is None
    assert store.status == "fresh" and store.fallback is False
    assert store.save({"x": 1}) == 1
    again = StateStore(store.root)
    assert again.load() == {"x": 1}
    assert again.status == "ok" and again.seq == 1


def test_saves_alternate_slots_and_never_touch_the_newest():
    store = StateStore(tmpdir("st_alt"))
    a, b = store.slot_paths()
    assert a.endswith("/state.a") and b.endswith("/state.b")
    store.load()
    store.save({"n": 1})
    img_a = read_file(a)
    store.save({"n": 2})
    assert read_file(a) == img_a  # the newest (a) was spared
    img_b = read_file(b)
    store.save({"n": 3})
    assert read_file(b) == img_b
    assert decode(read_file(a)) == (3, {"n": 3})
    assert store.writes == 3
    fresh = StateStore(store.root)
    assert fresh.load() == {"n": 3} and fresh.seq == 3


def test_save_without_load_still_spares_the_newest_slot():
    root = tmpdir("st_noload")
    first = StateStore(root)
    first.save({"n": 1})
    first.save({"n": 2})  # newest is in slot b
    later = StateStore(root)
    assert later.save({"n": 3}) == 3  # no load() first: it must still find the right slot
    assert decode(read_file(later.slot_paths()[1])) == (2, {"n": 2})
    assert later.status is None  # the app's view of boot status was not invented


def test_torn_write_at_every_offset_loads_previous_state():
    root = tmpdir("st_torn")
    store = StateStore(root)
    store.load()
    # slot a, seq 1: the older state, longer than the new one so its tail can be left behind
    store.save(realistic_state(balance=1000000001))
    store.save(realistic_state(balance=2))  # slot b, seq 2: the previous good state
    a_path = store.slot_paths()[0]
    old_image = read_file(a_path)
    good = realistic_state(balance=2)
    new_state = realistic_state(balance=3, energy=987999)
    new_image = encode(new_state, 3)
    assert len(old_image) > len(new_image)
    probe = StateStore(root)
    for cut in range(len(new_image)):
        for torn in (new_image[:cut], new_image[:cut] + old_image[cut:]):
            write_file(a_path, torn)
            assert probe.load() == good, cut
            assert probe.seq == 2
            assert probe.status in ("ok", "fallback")
    # the complete write, with or without the old tail behind it, is the new state
    for whole in (new_image, new_image + old_image[len(new_image):]):
        write_file(a_path, whole)
        assert probe.load() == new_state and probe.seq == 3 and probe.status == "ok"


def test_a_real_save_writes_the_image_the_torn_test_cuts():
    # ties the torn-write test above to what save() really puts on flash
    store = StateStore(tmpdir("st_same"))
    store.save(realistic_state(balance=1000000001))
    store.save(realistic_state(balance=2))
    store.save(realistic_state(balance=3, energy=987999))
    assert read_file(store.slot_paths()[0]) == encode(realistic_state(3, 987999), 3)


def test_after_a_torn_write_the_next_save_heals_the_torn_slot():
    root = tmpdir("st_heal")
    store = StateStore(root)
    store.save({"n": 1})
    store.save({"n": 2})
    a_path, b_path = store.slot_paths()
    write_file(a_path, encode({"n": 3}, 3)[:20])  # power cut while writing seq 3
    boot = StateStore(root)
    assert boot.load() == {"n": 2}
    assert boot.status == "fallback" and boot.fallback is True
    good_b = read_file(b_path)
    assert boot.save({"n": 3}) == 3
    assert read_file(b_path) == good_b  # healed into a, b untouched
    again = StateStore(root)
    assert again.load() == {"n": 3} and again.status == "ok"


def test_both_slots_corrupt_is_corrupt_and_none():
    root = tmpdir("st_corrupt")
    store = StateStore(root)
    a, b = store.slot_paths()
    write_file(a, b"\xff" * 64)
    write_file(b, b"")
    lines = []
    store = StateStore(root, log=Logger("m", sink=lines.append))
    assert store.load() is None
    assert store.status == "corrupt" and store.fallback is False
    assert len(lines) == 1 and lines[0].startswith("ERROR")
    # a new start from a safe state is written over the garbage, as seq 1
    assert store.save({"balance_cents": 0}) == 1
    assert StateStore(root).load() == {"balance_cents": 0}


def test_one_slot_corrupt_falls_back_to_the_other_whichever_it_is():
    for bad_index in (0, 1):
        root = tmpdir("st_fb%d" % bad_index)
        store = StateStore(root)
        paths = store.slot_paths()
        write_file(paths[1 - bad_index], encode({"ok": bad_index}, 5))
        write_file(paths[bad_index], b"MITA garbage")
        assert store.load() == {"ok": bad_index}
        assert store.status == "fallback" and store.fallback is True and store.seq == 5


def test_one_slot_missing_and_other_good_is_ok_not_fallback():
    root = tmpdir("st_onlyb")
    store = StateStore(root)
    write_file(store.slot_paths()[1], encode({"n": 9}, 9))
    assert store.load() == {"n": 9}
    assert store.status == "ok" and store.fallback is False


def test_only_slot_is_garbage_or_empty_is_corrupt():
    for junk in (b"", b"\x00", b"MITA", b"\x00" * 40, b"not a state at all, just text\n"):
        root = tmpdir("st_junk")
        store = StateStore(root)
        write_file(store.slot_paths()[0], junk)
        assert store.load() is None and store.status == "corrupt", junk


def test_decode_rejects_every_kind_of_damage():
    image = bytearray(encode({"k": 42}, 3))
    assert decode(bytes(image)) == (3, {"k": 42})
    for i in range(len(image)):  # any single flipped byte is caught
        image[i] ^= 0x5A
        assert decode(bytes(image)) is None, i
        image[i] ^= 0x5A
    assert decode(b"") is None
    assert decode(b"MATI" + bytes(image[4:])) is None
    v2 = bytearray(image)
    v2[4] = 2  # a future format version is not guessed at
    assert decode(bytes(v2)) is None


def test_valid_crc_around_bad_json_or_non_dict_is_corrupt():
    import binascii
    import struct

    def hand_made(payload, seq=4):
        header = struct.pack("<4sHII", b"MITA", 1, seq, len(payload))
        crc = binascii.crc32(header + payload) & 0xFFFFFFFF
        return header + payload + struct.pack("<I", crc)

    assert decode(hand_made(b'{"ok": 1}')) == (4, {"ok": 1})  # the helper is right
    for payload in (b"{not json", b"[1, 2, 3]", b"42", b'"text"', b"null", b"\xff\xfe\xfd"):
        assert decode(hand_made(payload)) is None, payload
    root = tmpdir("st_crcjson")
    store = StateStore(root)
    a, b = store.slot_paths()
    write_file(a, hand_made(b"[1]", seq=8))  # newer seq, but not a dict
    write_file(b, encode({"n": 7}, 7))
    assert store.load() == {"n": 7} and store.status == "fallback"


def test_higher_seq_wins_regardless_of_slot():
    root = tmpdir("st_order")
    store = StateStore(root)
    a, b = store.slot_paths()
    write_file(a, encode({"n": 11}, 11))
    write_file(b, encode({"n": 10}, 10))
    assert store.load() == {"n": 11}
    store.save({"n": 12})
    assert decode(read_file(b)) == (12, {"n": 12})  # spared a, the newest
    assert decode(read_file(a)) == (11, {"n": 11})


def test_sequence_wrap_orders_zero_after_max():
    assert newer(0, 0xFFFFFFFF) and not newer(0xFFFFFFFF, 0)
    assert newer(5, 4) and not newer(4, 5) and not newer(4, 4)
    assert newer(0x80000000, 0) != newer(0, 0x80000000)  # the half-way case is still decided
    root = tmpdir("st_wrap")
    store = StateStore(root)
    a, b = store.slot_paths()
    write_file(a, encode({"n": "max"}, 0xFFFFFFFF))
    assert store.load() == {"n": "max"}
    assert store.save({"n": "wrapped"}) == 0
    again = StateStore(root)
    assert again.load() == {"n": "wrapped"} and again.seq == 0
    assert again.save({"n": "next"}) == 1
    assert decode(read_file(b)) == (0, {"n": "wrapped"}) or decode(read_file(a))[0] == 1


def test_oversized_file_is_not_read_and_oversized_state_not_written():
    root = tmpdir("st_big")
    store = StateStore(root, max_bytes=100)
    a, b = store.slot_paths()
    # a valid image, but bigger than this store will read into its heap
    write_file(a, encode({"n": 2, "pad": "p" * 100}, 2))
    write_file(b, encode({"n": 1}, 1))
    assert store.load() == {"n": 1} and store.status == "fallback"
    raises(StorageError, store.save, {"blob": "y" * 100})
    assert store.writes == 0
    assert StateStore(root, max_bytes=100).load() == {"n": 1}  # b was not overwritten


def test_failed_write_leaves_the_newest_slot_and_counters_alone():
    root = tmpdir("st_fail")
    store = StateStore(root)
    store.save({"n": 1})
    store.root = root + "/missing-dir"  # opening the target fails like a dead flash would
    exc = raises(StorageError, store.save, {"n": 2})
    assert isinstance(exc, OSError)  # the app guards persist() with `except OSError`
    assert store.writes == 1 and store.seq == 1
    store.root = root
    assert store.save({"n": 2}) == 2
    assert StateStore(root).load() == {"n": 2}


def test_a_state_the_app_refuses_falls_back_to_the_other_slot():
    # A CRC-valid image whose contents the firmware cannot use (a bug, a state written by
    # other firmware) must not stop the boot: the older slot is used, as for a torn one.
    root = tmpdir("st_accept")
    store = StateStore(root)
    store.save({"ledger": {"balance_cents": 700}})
    store.save({"ledger": "garbage"})

    def usable(state):
        return state["ledger"]["balance_cents"] >= 0  # raises TypeError on "garbage"

    boot = StateStore(root)
    assert boot.load(accept=usable) == {"ledger": {"balance_cents": 700}}
    assert boot.status == "fallback" and boot.seq == 1
    assert boot.save({"ledger": {"balance_cents": 650}}) == 2  # over the refused slot
    assert StateStore(root).load(accept=usable) == {"ledger": {"balance_cents": 650}}
    # refused everywhere: corrupt, never a crash and never the refused state
    for path in StateStore(root).slot_paths():
        write_file(path, encode({"ledger": None}, 9))
    again = StateStore(root)
    assert again.load(accept=usable) is None and again.status == "corrupt"
    assert again.load(accept=lambda s: False) is None
    assert again.load() == {"ledger": None}  # without a check, a valid image is valid
