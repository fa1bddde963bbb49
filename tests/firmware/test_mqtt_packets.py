# MQTT 3.1.1 packets byte for byte (meter.mqtt_packets), under CPython and MicroPython.
from meter import mqtt_packets as p
from support import raises


def test_remaining_length_edges_from_the_spec():
    cases = [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
             (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
             (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f")]
    for n, encoded in cases:
        assert p.encode_length(n) == encoded, n
        assert p.decode_length(b"\x30" + encoded) == (n, 1 + len(encoded))


def test_remaining_length_out_of_range_or_too_long():
    raises(p.PacketError, p.encode_length, 268435456)
    raises(p.PacketError, p.encode_length, -1)
    raises(p.PacketError, p.decode_length, b"\x30\xff\xff\xff\xff\x01")


def test_remaining_length_cut_short_is_incomplete_not_an_error():
    assert p.decode_length(b"\x30") is None
    assert p.decode_length(b"\x30\x80\x80") is None


def test_connect_with_credentials_will_and_persistent_session():
    pkt = p.connect("m1", "m1", "pw", keepalive_s=60, clean=False,
                    will=("meters/m1/status", b"off", 1, True))
    body = (b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04]) + b"\x00\x3c"
            + b"\x00\x02m1" + b"\x00\x10meters/m1/status" + b"\x00\x03off"
            + b"\x00\x02m1" + b"\x00\x02pw")
    assert pkt == b"\x10" + bytes([len(body)]) + body


def test_connect_minimal_clean_session_no_credentials():
    assert p.connect("c", clean=True, keepalive_s=0) == (
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01c")


def test_connect_refuses_a_keepalive_that_does_not_fit():
    raises(p.PacketError, p.connect, "c", keepalive_s=65536)


def test_publish_qos0_has_no_packet_id_and_never_dup():
    assert p.publish("a/b", b"hi") == b"\x30\x07\x00\x03a/bhi"
    assert p.publish("a/b", "hi", dup=True) == b"\x30\x07\x00\x03a/bhi"


def test_publish_qos1_retain_dup_flags_and_packet_id():
    assert p.publish("t", b"x", qos=1, pid=258) == b"\x32\x06\x00\x01t\x01\x02x"
    assert p.publish("t", b"x", qos=1, retain=True, dup=True, pid=1) == (
        b"\x3b\x06\x00\x01t\x00\x01x")


def test_publish_refuses_bad_packet_ids_and_qos2():
    raises(p.PacketError, p.publish, "t", b"", 1, False, False, 0)
    raises(p.PacketError, p.publish, "t", b"", 1, False, False, 65536)
    raises(p.PacketError, p.publish, "t", b"", 2, False, False, 1)


def test_publish_long_payload_uses_a_two_byte_length():
    pkt = p.publish("t", b"z" * 200)
    assert pkt[:3] == b"\x30\xcb\x01"
    assert len(pkt) == 3 + 203


def test_publish_parts_are_the_packet_in_two_pieces_with_the_payload_uncopied():
    payload = b"{\"v\": 1, \"balance_cents\": 1500}" * 9  # past one length byte
    for qos, pid in ((0, 0), (1, 513)):
        head, body = p.publish_parts("meters/M1/telemetry", payload, qos, True, False, pid)
        assert body is payload  # the client writes the caller's bytes as they are
        assert head + body == p.publish("meters/M1/telemetry", payload, qos, True, False, pid)
        assert p.decode_length(head)[0] == len(head) + len(body) - p.decode_length(head)[1]
    head, body = p.publish_parts("t", "\u00e9", 0)  # a str payload is sent as UTF-8
    assert head + body == b"\x30\x05\x00\x01t\xc3\xa9"


def test_puback_subscribe_ping_disconnect_bytes():
    assert p.puback(0x1234) == b"\x40\x02\x12\x34"
    assert p.subscribe(7, [("a/#", 1), ("b", 0)]) == (
        b"\x82\x0c\x00\x07\x00\x03a/#\x01\x00\x01b\x00")
    assert p.PINGREQ_PACKET == b"\xc0\x00"
    assert p.DISCONNECT_PACKET == b"\xe0\x00"
    raises(p.PacketError, p.subscribe, 1, [])


def test_split_takes_one_whole_packet_and_returns_the_rest():
    two = p.puback(5) + b"\xd0\x00"
    kind, flags, body, rest = p.split(two)
    assert (kind, flags, body) == (p.PUBACK, 0, b"\x00\x05")
    assert p.split(rest) == (p.PINGRESP, 0, b"", b"")


def test_split_waits_for_the_rest_of_a_packet_cut_anywhere():
    pkt = p.publish("meters/m/recharge", b'{"v":1}', qos=1, pid=9)
    for cut in range(len(pkt)):
        assert p.split(pkt[:cut]) is None, cut
    assert p.split(pkt)[0] == p.PUBLISH


def test_parse_publish_round_trips_every_flag():
    for qos in (0, 1):
        for retain in (False, True):
            for dup in (False, True):
                pkt = p.publish("x/y", b"\x00\xffdata", qos, retain, dup, 77 if qos else 0)
                kind, flags, body, rest = p.split(pkt)
                topic, payload, q, r, d, pid = p.parse_publish(flags, body)
                assert (topic, payload, q, r) == (b"x/y", b"\x00\xffdata", qos, retain)
                assert d == (dup and qos == 1)
                assert pid == (77 if qos else 0)


def test_parse_publish_rejects_truncated_bodies():
    raises(p.PacketError, p.parse_publish, 0, b"\x00")
    raises(p.PacketError, p.parse_publish, 0, b"\x00\x09abc")
    raises(p.PacketError, p.parse_publish, 2, b"\x00\x01t\x00")
    raises(p.PacketError, p.parse_publish, 6, b"\x00\x01t\x00\x01")


def test_parse_connack_suback_and_pid():
    assert p.parse_connack(b"\x01\x00") == (True, 0)
    assert p.parse_connack(b"\x00\x05") == (False, 5)
    raises(p.PacketError, p.parse_connack, b"\x02\x00")
    raises(p.PacketError, p.parse_connack, b"\x00")
    assert p.parse_suback(b"\x00\x07\x01\x80") == (7, [1, 0x80])
    raises(p.PacketError, p.parse_suback, b"\x00\x07")
    assert p.parse_pid(b"\x01\x00") == 256
    raises(p.PacketError, p.parse_pid, b"\x01")


def test_garbage_bytes_never_escape_as_other_errors():
    # Whatever arrives, the parsers answer with a packet or PacketError, never IndexError.
    junk = [b"", b"\xff", b"\x00\x00\x00", b"\xff" * 9, b"\x00\xff\xff", bytes(range(40))]
    for data in junk:
        for fn in (p.parse_connack, p.parse_pid, p.parse_suback):
            try:
                fn(data)
            except p.PacketError:
                pass
        for flags in (0, 2, 6, 9):
            try:
                p.parse_publish(flags, data)
            except p.PacketError:
                pass
        try:
            p.split(data)
        except p.PacketError:
            pass
