from meter.drivers.modbus import crc16, with_crc, crc_ok


def _bitwise_crc(buf):
    # The textbook definition, to check the table against.
    crc = 0xFFFF
    for b in buf:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def test_crc16_matches_the_catalogue_check_value():
    assert crc16(b"123456789") == 0x4B37


def test_crc16_of_nothing_is_the_initial_value():
    assert crc16(b"") == 0xFFFF


def test_table_agrees_with_the_bitwise_definition_on_every_byte_value():
    for b in range(256):
        assert crc16(bytes((b,))) == _bitwise_crc(bytes((b,)))
    data = bytes(range(256))
    assert crc16(data) == _bitwise_crc(data)
    assert crc16(bytearray(data)) == crc16(data)
    assert crc16(memoryview(data)) == crc16(data)


def test_end_limits_the_bytes_covered():
    assert crc16(b"123456789xyz", 9) == 0x4B37


def test_with_crc_appends_low_byte_first():
    assert with_crc(bytes((0x01, 0x04, 0x00, 0x00, 0x00, 0x0A))) == bytes(
        (0x01, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x70, 0x0D))
    assert with_crc(b"\xf8\x42") == b"\xf8\x42\xc2\x41"


def test_crc_ok_accepts_good_frames_and_rejects_damage():
    frame = with_crc(b"\x01\x04\x14" + bytes(range(20)))
    assert crc_ok(frame)
    assert crc_ok(bytearray(frame))
    for i in range(len(frame)):
        damaged = bytearray(frame)
        damaged[i] ^= 0x01
        assert not crc_ok(damaged)
    swapped = frame[:-2] + frame[-1:] + frame[-2:-1]
    assert not crc_ok(swapped)
    assert not crc_ok(frame[:-1])


def test_crc_ok_rejects_too_short_input():
    assert not crc_ok(b"")
    assert not crc_ok(b"\xff")
    assert not crc_ok(b"\xff\xff")
