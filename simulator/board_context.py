# Which simulated meter is "this board": the fake machine/network modules ask here. On CPython
# a ContextVar set for each meter's asyncio tasks keeps a fleet apart in one process; on
# MicroPython (one meter per process) a single default board is enough.
try:
    import contextvars
    _current = contextvars.ContextVar("mita_board", default=None)
except ImportError:
    contextvars = None
    _current = None

_default = [None]


class NoBoard(Exception):
    """A fake hardware module was used with no simulated board selected."""


def current_or_none():
    if _current is not None:
        board = _current.get()
        if board is not None:
            return board
    return _default[0]


def current():
    board = current_or_none()
    if board is None:
        raise NoBoard("no simulated board: use board_context.activate(board) or set_default(board)")
    return board


def set_default(board):
    """The board used where no context names one (the only board under MicroPython)."""
    _default[0] = board


def activate(board):
    """Make `board` current in the running context; returns a token for deactivate()."""
    if _current is None:
        set_default(board)
        return None
    return _current.set(board)


def deactivate(token):
    if _current is not None and token is not None:
        _current.reset(token)


def run_in(board, fn, *args, **kwargs):
    """Call fn with `board` current, leaving the caller's context untouched."""
    if contextvars is None:
        set_default(board)
        return fn(*args, **kwargs)
    ctx = contextvars.copy_context()
    ctx.run(_current.set, board)
    return ctx.run(fn, *args, **kwargs)


def create_task(board, coro, loop=None, name=None):
    """An asyncio task (and every task it creates) that sees `board` as its hardware."""
    import asyncio
    loop = loop or asyncio.get_event_loop()
    ctx = contextvars.copy_context()
    ctx.run(_current.set, board)
    return loop.create_task(coro, name=name, context=ctx)
