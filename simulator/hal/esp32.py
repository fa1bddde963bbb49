# The `esp32` module for the simulator: the few ESP32 extras a meter firmware might touch,
# NVS kept per board in memory (its flash folder holds the firmware's own files).
try:
    from simulator import board_context as _ctx
except ImportError:  # MicroPython
    import board_context as _ctx

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True
HEAP_DATA = 4
HEAP_EXEC = 1


def mcu_temperature():
    return 45


def raw_temperature():
    return 113


def idf_heap_info(capabilities):
    return [(110000, 60000, 40000, 55000)]


def wake_on_ext0(pin, level):
    return None


def wake_on_ext1(pins, level):
    return None


class NVS:
    def __init__(self, namespace):
        board = _ctx.current()
        store = getattr(board, "nvs", None)
        if store is None:
            store = board.nvs = {}
        self._ns = store.setdefault(namespace, {})
        self._pending = {}

    def set_i32(self, key, value):
        self._pending[key] = int(value)

    def get_i32(self, key):
        if key not in self._ns:
            raise OSError(-4354)  # ESP_ERR_NVS_NOT_FOUND
        return self._ns[key]

    def set_blob(self, key, value):
        self._pending[key] = bytes(value)

    def get_blob(self, key, buffer):
        if key not in self._ns:
            raise OSError(-4354)
        data = self._ns[key]
        buffer[:len(data)] = data
        return len(data)

    def erase_key(self, key):
        if key not in self._ns:
            raise OSError(-4354)
        del self._ns[key]

    def commit(self):
        # Values become durable only at commit, as on the chip.
        self._ns.update(self._pending)
        self._pending = {}
