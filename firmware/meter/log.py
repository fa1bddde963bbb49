# The firmware's one tiny logger: levels, a name, print(). No global state: each part of the
# meter is handed a Logger (or makes a child of one), so a fleet in one process stays apart.
from micropython import const

DEBUG = const(10)
INFO = const(20)
WARN = const(30)
ERROR = const(40)

_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARN: "WARN", ERROR: "ERROR"}


class Logger:
    def __init__(self, name="mita", level=INFO, sink=None):
        self.name = name
        self.level = level
        # sink(line) receives each formatted line; print by default. The simulator and tests
        # pass their own to keep a meter's log apart.
        self.sink = sink

    def child(self, name):
        return Logger(self.name + "." + name, self.level, self.sink)

    def log(self, level, msg, *args):
        if level < self.level:
            return
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                # A log line with the wrong arguments must not take the tick down with it.
                msg = "%s %r" % (msg, args)
        line = "%s %s: %s" % (_NAMES.get(level, str(level)), self.name, msg)
        if self.sink is None:
            print(line)
        else:
            self.sink(line)

    def debug(self, msg, *args):
        self.log(DEBUG, msg, *args)

    def info(self, msg, *args):
        self.log(INFO, msg, *args)

    def warn(self, msg, *args):
        self.log(WARN, msg, *args)

    def error(self, msg, *args):
        self.log(ERROR, msg, *args)
