# A meter's flash as a folder on the host, where power can fail in the middle of a write:
# either armed to cut after N more bytes written (CPython: through a hook on open()), or torn
# after the fact ("the newest file, cut at byte k").
import os

TRUNCATE = "truncate"  # the file holds only the bytes that reached it (FAT-like)
MIXED = "mixed"  # new bytes up to the cut, then the old file's bytes beyond it
KEEP_OLD = "keep_old"  # the write never happened (LittleFS-like copy-on-write)
MODES = (TRUNCATE, MIXED, KEEP_OLD)


class PowerLost(BaseException):
    """Raised inside a write when the simulated power fails; BaseException so that firmware
    `except Exception` blocks cannot swallow the power cut."""


class FlashError(Exception):
    pass


def _is_dir(path):
    return (os.stat(path)[0] & 0x4000) != 0


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _torn(written, old, mode):
    if mode == TRUNCATE:
        return written
    if mode == MIXED:
        old = old or b""
        return written + old[len(written):]
    return old


def _make_dirs(path):
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        sub = "/".join(parts[:i])
        if sub:
            try:
                os.mkdir(sub)
            except OSError:
                pass


class FlashFolder:
    def __init__(self, root, mode=TRUNCATE):
        if mode not in MODES:
            raise FlashError("unknown tear mode %r" % (mode,))
        self.root = root.rstrip("/") or "/"
        self.mode = mode
        _make_dirs(self.root)
        self._budget = None  # bytes left before the armed power cut
        self._on_cut = None
        self.cuts = 0
        self.last_torn = None  # (relative name, bytes kept from the new write)
        self._checkpoint = {}
        self.dead = False

    # --- looking at it ---------------------------------------------------------------------

    def files(self):
        """{relative name: bytes} for every file under the root."""
        out = {}
        self._walk(self.root, "", out)
        return out

    def _walk(self, path, prefix, out):
        for name in sorted(os.listdir(path)):
            full = path + "/" + name
            if _is_dir(full):
                self._walk(full, prefix + name + "/", out)
            else:
                out[prefix + name] = _read(full)

    def path(self, name):
        return self.root + "/" + name

    def newest(self):
        """The most recently modified file's relative name (ties broken by name)."""
        best = None
        for name in self.files():
            st = os.stat(self.path(name))
            key = (st[8], name)
            if best is None or key > best[0]:
                best = (key, name)
        return None if best is None else best[1]

    # --- tearing after the fact ------------------------------------------------------------

    def checkpoint(self):
        """Remember every file's content: the "old" side of a later tear()."""
        self._checkpoint = self.files()

    def tear(self, name, keep_bytes, mode=None):
        """As if power failed after keep_bytes of name's current content reached the flash."""
        mode = mode or self.mode
        if mode not in MODES:
            raise FlashError("unknown tear mode %r" % (mode,))
        new = _read(self.path(name))
        if new is None:
            raise FlashError("no file %r to tear" % (name,))
        self._store(name, _torn(new[:keep_bytes], self._checkpoint.get(name), mode))
        self.last_torn = (name, min(keep_bytes, len(new)))

    def tear_newest(self, keep_bytes, mode=None):
        name = self.newest()
        if name is None:
            raise FlashError("flash is empty")
        self.tear(name, keep_bytes, mode)
        return name

    def _store(self, name, content):
        full = self.path(name)
        if content is None:
            try:
                os.remove(full)
            except OSError:
                pass
            return
        with open(full, "wb") as f:
            f.write(content)

    # --- tearing a write in flight -----------------------------------------------------------

    def arm_power_cut(self, after_bytes, on_cut=None, mode=None):
        """Power fails once after_bytes more bytes have been written to files under the root.

        CPython only: the writes are seen through a hook on open(). on_cut() runs at the cut
        (the board uses it to switch its mains off); the writer then gets PowerLost.
        """
        if mode is not None:
            if mode not in MODES:
                raise FlashError("unknown tear mode %r" % (mode,))
            self.mode = mode
        self._budget = after_bytes
        self._on_cut = on_cut
        _install_hook(self)

    def disarm(self):
        self._budget = None
        self.dead = False
        _remove_hook(self)

    def power_down(self):
        """No power: every later open() for writing under the root raises PowerLost at once
        (a cancelled firmware task's cleanup must not write to a flash that has no power)."""
        self.dead = True
        _install_hook(self)

    def _cut(self):
        self._budget = None
        self.cuts += 1
        _remove_hook(self)
        if self._on_cut is not None:
            self._on_cut()


class _TearingFile:
    """A file opened for writing under an armed flash root: counts bytes to the cut."""

    def __init__(self, flash, name, raw, old):
        self._flash = flash
        self._name = name
        self._raw = raw
        self._old = old
        self._written = 0

    def write(self, data):
        flash = self._flash
        budget = flash._budget
        if budget is None or len(data) <= budget:
            n = self._raw.write(data)
            self._written += len(data)
            if budget is not None:
                flash._budget = budget - len(data)
            return n
        self._raw.write(data[:budget])
        self._raw.flush()
        self._raw.close()
        flash._budget = None
        _remove_hook(flash)  # before rewriting the file, which goes through open() too
        now = _read(flash.path(self._name)) or b""
        flash._store(self._name, _torn(now, self._old, flash.mode))
        flash.last_torn = (self._name, self._written + budget)
        flash._cut()
        raise PowerLost("power failed writing %s" % self._name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._raw.closed:
            self._raw.close()
        return False

    def __iter__(self):
        return iter(self._raw)

    def __getattr__(self, attr):
        return getattr(self._raw, attr)


_ARMED = []
_real_open = [None]


def _install_hook(flash):
    if flash not in _ARMED:
        _ARMED.append(flash)
    if _real_open[0] is not None:
        return
    import builtins
    _real_open[0] = builtins.open
    builtins.open = _hooked_open


def _remove_hook(flash):
    if flash in _ARMED:
        _ARMED.remove(flash)
    if not _ARMED and _real_open[0] is not None:
        import builtins
        builtins.open = _real_open[0]
        _real_open[0] = None


def _hooked_open(file, mode="r", *args, **kwargs):
    real = _real_open[0]
    if isinstance(file, int) or not any(c in mode for c in "wax+"):
        return real(file, mode, *args, **kwargs)
    full = os.path.abspath(os.fspath(file))
    for flash in _ARMED:
        root = os.path.abspath(flash.root)
        if full.startswith(root + os.sep):
            if flash.dead:
                raise PowerLost("no power writing %s" % full)
            old = _read_with(real, full)
            raw = real(file, mode, *args, **kwargs)
            return _TearingFile(flash, full[len(root) + 1:], raw, old)
    return real(file, mode, *args, **kwargs)


def _read_with(real, path):
    try:
        with real(path, "rb") as f:
            return f.read()
    except OSError:
        return None
