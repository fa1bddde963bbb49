# The simulated board's `os`: MicroPython's own, with the flash folder mounted as "/" by
# VfsPosix, and two repairs a real board does not need. VfsPosix with a root renames both
# names into one shared path buffer (rename fails), so rename goes to a rootless VfsPosix with
# host paths; and its ilistdir has no sizes, which ESP32's FAT and LittleFS give (`mpremote ls`).
# A Python VFS object would do the same, but imports through it swallow Ctrl-C as "not found".
from uos import *  # noqa: F401,F403
import uos

_flash_root = [None]
_host = uos.VfsPosix()


def use_flash(root):
    _flash_root[0] = root.rstrip("/")


def _host_path(path):
    if not path.startswith("/"):
        path = uos.getcwd().rstrip("/") + "/" + path
    return _flash_root[0] + path


def rename(old, new):
    if _flash_root[0] is None:
        return uos.rename(old, new)
    _host.rename(_host_path(old), _host_path(new))
    return None


def ilistdir(path=""):
    base = (path or uos.getcwd()).rstrip("/")
    for entry in uos.ilistdir(path):
        size = 0
        if entry[1] == 0x8000:
            size = uos.stat(base + "/" + entry[0])[6]
        yield (entry[0], entry[1], 0, size)
