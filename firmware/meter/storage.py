"""Power-safe persistence of the meter's state dict in two alternating slot files.

Slot image: header (b"MITA", u16 format version, u32 sequence, u32 payload length), the JSON
payload, then a u32 CRC32 over header + payload; all little-endian. save() always writes the
slot that does NOT hold the newest good state, so a write cut at any byte leaves the previous
good state intact; load() takes the valid slot with the newest sequence.
"""
import binascii
import io
import json
import os
import struct

from micropython import const

MAGIC = b"MITA"
VERSION = const(1)
_HEADER = "<4sHII"
_HEADER_LEN = const(14)
_CRC_LEN = const(4)
# A state is about a kilobyte. The cap keeps a garbage file from exhausting the heap on boot;
# save() never holds the image whole: see _SlotWriter.
MAX_IMAGE = const(4096)
_SEQ_MASK = const(0xFFFFFFFF)
_CHUNK = const(128)  # bytes save() hands the flash at a time
_HALF = const(0x80000000)


class StorageError(OSError):
    """The state could not be written (or is too big to write). An OSError, so callers that
    already guard flash access with `except OSError` catch it too."""


def _header(seq, length):
    return struct.pack(_HEADER, MAGIC, VERSION, seq & _SEQ_MASK, length)


def encode(state, seq):
    """The complete slot image for `state` with sequence number `seq` (what save() writes)."""
    payload = json.dumps(state).encode()
    header = _header(seq, len(payload))
    crc = binascii.crc32(payload, binascii.crc32(header)) & _SEQ_MASK
    return b"".join((header, payload, struct.pack("<I", crc)))


class _PayloadSize(io.IOBase):
    """json.dump's target for save()'s first pass: counts the payload's bytes, keeps none."""

    def __init__(self):
        self.size = 0

    def write(self, data):
        if isinstance(data, str):  # CPython's json writes str chunks; MicroPython's bytes
            data = data.encode()
        self.size += len(data)
        return len(data)


class _SlotWriter(io.IOBase):
    """json.dump's target for the second pass: the payload goes to the slot file through one
    fixed buffer, CRC'd on the way. No copy of the image (a kilobyte, every minute) is ever
    whole in RAM: on a 32-bit heap that ran for days, a free block that size is what runs out
    first (docs/benchmarks.md)."""

    def __init__(self, f, crc, buf):
        self.f = f
        self.crc = crc
        self.size = 0
        self.written = 0
        self._buf = buf  # the store's, allocated once: not a new block every minute
        self._used = 0

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        view = memoryview(data)
        n = len(view)
        i = 0
        while i < n:
            k = min(n - i, _CHUNK - self._used)
            self._buf[self._used:self._used + k] = view[i:i + k]
            self._used += k
            i += k
            if self._used == _CHUNK:
                self.drain()
        self.size += n
        return n

    def drain(self):
        if self._used:
            chunk = memoryview(self._buf)[:self._used]
            self.crc = binascii.crc32(chunk, self.crc)
            self.written += self.f.write(chunk) or 0
            self._used = 0


def decode(image):
    """(seq, state dict) from a slot image, or None if it is torn, corrupt or not ours.

    Bytes after the CRC are ignored: a filesystem that tears a rewrite can leave the old
    file's tail behind a complete new image, and the CRC already vouches for what counts.
    """
    if len(image) < _HEADER_LEN + _CRC_LEN:
        return None
    magic, version, seq, length = struct.unpack(_HEADER, image[:_HEADER_LEN])
    if magic != MAGIC or version != VERSION:
        return None
    end = _HEADER_LEN + length
    if end + _CRC_LEN > len(image):
        return None
    mv = memoryview(image)
    crc = binascii.crc32(mv[_HEADER_LEN:end], binascii.crc32(mv[:_HEADER_LEN])) & _SEQ_MASK
    if struct.unpack("<I", image[end:end + _CRC_LEN])[0] != crc:
        return None
    try:
        state = json.loads(bytes(mv[_HEADER_LEN:end]).decode())
    except ValueError:  # includes UnicodeError on both interpreters
        return None
    if not isinstance(state, dict):
        return None
    return seq, state


def newer(a, b):
    """True if sequence a is newer than b, in serial-number arithmetic, so the u32 wrap from
    0xFFFFFFFF to 0 (thousands of years away at one save a minute) still orders correctly."""
    diff = (a - b) & _SEQ_MASK
    if diff == _HALF:
        return a > b
    return 0 < diff < _HALF


def _accepted(accept, state):
    if accept is None:
        return True
    try:
        return bool(accept(state))
    except (ValueError, KeyError, TypeError):
        return False


class StateStore:
    def __init__(self, root, name="state", log=None, max_bytes=MAX_IMAGE):
        self.root = root
        self.max_bytes = max_bytes
        self.name = name
        self.log = log
        self.status = None
        self.fallback = False
        self.seq = None  # sequence of the newest good state, None if there is none
        self.writes = 0
        self._newest = None  # index (0 = a, 1 = b) of the slot holding the newest good state
        self._scanned = False
        self._chunk = bytearray(_CHUNK)  # save()'s one write buffer, for the store's life

    def slot_paths(self):
        base = self.root + "/" + self.name
        return base + ".a", base + ".b"

    def _read_slot(self, path):
        """(exists, decoded or None) for one slot file."""
        try:
            size = os.stat(path)[6]
        except OSError:
            return False, None
        if size > self.max_bytes:
            return True, None
        try:
            with open(path, "rb") as f:
                image = f.read(size)  # one allocation of the known size, no growing buffer
        except OSError:
            return True, None
        return True, decode(image)

    def load(self, accept=None):
        """The newest valid state dict, or None (status "fresh" or "corrupt").

        accept(state), if given, is the app's own check of a state's shape: a slot whose
        state it refuses (returns False or raises ValueError, KeyError or TypeError) counts
        as corrupt, so a well-formed image the firmware cannot use falls back to the other
        slot instead of stopping the boot.

        On "corrupt" the app must start safe: zero credit, relay open, an alert. Never
        treat unreadable state as a reason to grant credit.
        """
        existing = 0
        valid = 0
        best = None  # (slot index, seq, state) of the newest valid slot
        for i, path in enumerate(self.slot_paths()):
            exists, got = self._read_slot(path)
            if exists:
                existing += 1
            if got is None or not _accepted(accept, got[1]):
                continue
            valid += 1
            if best is None or newer(got[0], best[1]):
                best = (i, got[0], got[1])
        self._scanned = True
        self.fallback = False
        if best is None:
            self._newest = None
            self.seq = None
            self.status = "corrupt" if existing else "fresh"
            if existing and self.log:
                self.log.error("both state slots corrupt: starting without credit")
            return None
        self._newest, self.seq, state = best
        if valid < existing:
            self.status = "fallback"
            self.fallback = True
            if self.log:
                self.log.warn("one state slot corrupt: using seq %d", self.seq)
        else:
            self.status = "ok"
        return state

    def save(self, state):
        """Write state into the slot not holding the newest good state; return its seq."""
        if not self._scanned:
            # find out which slot must be spared, without disturbing the app's status
            status, fallback = self.status, self.fallback
            self.load()
            self.status, self.fallback = status, fallback
        seq = 1 if self.seq is None else (self.seq + 1) & _SEQ_MASK
        # Two passes over the state: its length first (the header precedes the payload), then
        # header, payload and CRC straight into the slot file: byte for byte what encode()
        # makes, without ever holding it.
        measure = _PayloadSize()
        json.dump(state, measure)
        size = _HEADER_LEN + measure.size + _CRC_LEN
        if size > self.max_bytes:
            raise StorageError("state of %d bytes is over %d" % (size, self.max_bytes))
        header = _header(seq, measure.size)
        target = 1 if self._newest == 0 else 0
        path = self.slot_paths()[target]
        try:
            with open(path, "wb") as f:
                written = f.write(header) or 0
                out = _SlotWriter(f, binascii.crc32(header), self._chunk)
                json.dump(state, out)
                out.drain()
                written += out.written + (f.write(struct.pack("<I", out.crc & _SEQ_MASK)) or 0)
                f.flush()
        except OSError as exc:
            # the newest good slot was not touched; it is still what load() will find
            raise StorageError("writing %s failed: %s" % (path, exc))
        if out.size != measure.size:  # the state changed between the passes: never valid
            raise StorageError("state changed while %s was written" % path)
        if written != size:
            raise StorageError("short write to %s: %s of %d bytes" % (path, written, size))
        self.writes += 1
        self._newest = target
        self.seq = seq
        return seq
