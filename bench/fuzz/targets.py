"""The parsers mita feeds with bytes it did not make, as fuzz targets: each takes the raw input
and must either answer (a value, a refusal, a count) or raise one of the errors it documents for
bad input. Anything else escaping is a bug: the fuzzer reports it, and the input goes into
tests/fuzz_corpus/<target>/ as a regression (tests/test_fuzz_corpus.py replays every file).

Used by bench/fuzz_parsers.py (atheris, coverage-guided) and tests/test_fuzz_corpus.py (plain
CPython). Firmware targets run the firmware's own modules under CPython, on the test fakes."""
import json
import os
import struct
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
import simulator  # noqa: E402

simulator.install()
sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))

from meter import mqtt_packets as mp  # noqa: E402
from meter import storage  # noqa: E402
from meter import config as meter_config  # noqa: E402
from meter.drivers.pzem004t import Pzem004t  # noqa: E402
from meter.drivers.reading import SensorError  # noqa: E402
from meter.openpaygo import Decoder  # noqa: E402
from meter.token_counts import TokenCounts  # noqa: E402
from support import FakeUART  # noqa: E402

from cloud import callbacks  # noqa: E402
from cloud.link import payloads as lp  # noqa: E402


def _json(data):
    """The input as JSON if it is JSON, else None (the text-level parsers then see raw text)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def pzem_reply(data):
    """The PZEM-004T driver reading a measurement whose reply is these bytes."""
    sensor = Pzem004t(FakeUART([data]), retries=0)
    try:
        sensor.read()
    except SensorError:
        pass


def mqtt_packets(data):
    """The firmware MQTT client's decoder: split the stream into packets as the client's reader
    does, and parse each packet's body as every kind it could claim to be."""
    buf = bytes(data)
    while buf:
        try:
            found = mp.split(buf)
        except mp.PacketError:
            return
        if found is None:
            return  # an incomplete packet: the reader waits for more
        _, flags, body, rest = found
        assert len(rest) < len(buf)  # every packet takes at least its fixed header
        for parse in (mp.parse_connack, mp.parse_pid, mp.parse_suback):
            try:
                parse(body)
            except mp.PacketError:
                pass
        try:
            mp.parse_publish(flags, body)
        except mp.PacketError:
            pass
        buf = rest


def state_image(data):
    """A state slot's bytes on flash: decoded, or refused as torn/corrupt (None)."""
    got = storage.decode(data)
    assert got is None or (isinstance(got[0], int) and isinstance(got[1], dict))


def meter_config_file(data):
    """/config.json as a utility engineer (or a bit flip) left it."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(data)
        f.flush()
        try:
            cfg, problems = meter_config.load(f.name)
        except meter_config.ConfigError:
            return
    assert isinstance(cfg, dict) and isinstance(problems, list)


_LINK = []


def _linked():
    if not _LINK:
        from appfakes import linked_meter
        from support import tmpdir
        _LINK.append(linked_meter(tmpdir("fuzz_link"), "MTRFZ1", "127.0.0.1", 1, "pw", 5000))
    return _LINK[0]


def meter_commands(data):
    """What arrives on a meter's command topics: refused and counted, never applied unsigned."""
    app, link, _ = _linked()
    before = app.ledger.balance
    for sub in ("recharge", "tariff", "sync", "history/ack"):
        link.on_message(link.prefix + sub, data)
    assert app.ledger.balance == before  # nothing the fuzzer makes is signed with the key


def cloud_meter_messages(data):
    """What meters publish, as the cloud's bridge parses it."""
    try:
        msg = lp.decode(data)
    except lp.Malformed:
        return
    for parse in (lp.parse_status, lp.parse_telemetry, lp.parse_history,
                  lp.parse_recharge_ack, lp.parse_tariff_ack):
        try:
            parse(msg)
        except (lp.Malformed, lp.BadRecord):
            pass


def daraja_callbacks(data):
    """An STK callback and a C2B confirmation body, as Daraja (or anyone) might post them."""
    body = _json(data)
    for parse in (callbacks.parse_stk_callback, callbacks.parse_c2b):
        try:
            parse(body)
        except (callbacks.ParseError, callbacks.InvalidMeterNumber):
            pass


_KEY = bytes(range(16))
_DECODER = []


def token_entry(data):
    """Digits typed on the keypad (and anything else): a verdict, never an exception."""
    if not _DECODER:
        _DECODER.append(Decoder(_KEY, 123456789))
    text = data[:16].decode("latin-1")
    verdict, value, count = _DECODER[0].decode(text, TokenCounts(count=struct.unpack(
        "<H", (data[16:18] + b"\0\0")[:2])[0] % 5000))
    assert verdict is not None


def prepare():
    """Import and build what the targets make lazily (the linked meter pulls in meter.app,
    meter.link and the MQTT client): under atheris this runs while imports are instrumented."""
    _linked()
    token_entry(b"0")


TARGETS = {f.__name__: f for f in (pzem_reply, mqtt_packets, state_image, meter_config_file,
                                    meter_commands, cloud_meter_messages, daraja_callbacks,
                                    token_entry)}
