# The `micropython` module for CPython, with the signatures of the real one. Under the
# MicroPython unix port the interpreter's built-in module wins and this file is not used.


def const(value):
    return value


def native(fn):
    return fn


def viper(fn):
    return fn


def alloc_emergency_exception_buf(size):
    return None


def schedule(fn, arg):
    # Hardware schedules fn to run soon on the main thread; on CPython the interrupt source
    # already runs on the main thread, so running it now has the same observable effect.
    fn(arg)
    return None


def mem_info(*args):
    return None


def opt_level(*args):
    return 0


def heap_lock():
    return 0


def heap_unlock():
    return 0


def kbd_intr(chr):
    return None


def stack_use():
    return 0


def qstr_info(*args):
    return None
