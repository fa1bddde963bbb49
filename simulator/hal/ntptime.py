# The `ntptime` module for the simulator: sets the board's RTC from the virtual wall clock,
# but only when the board's WiFi is up (as the real one needs the network).
try:
    from simulator import board_context as _ctx
except ImportError:  # MicroPython
    import board_context as _ctx

host = "pool.ntp.org"
timeout = 1


def time():
    board = _ctx.current()
    if not board.station.connected(board.clock.now_ms()):
        raise OSError(116)  # ETIMEDOUT: the query never got an answer
    return board.clock.epoch_ms() // 1000


def settime():
    board = _ctx.current()
    seconds = time()
    board.rtc_set_epoch_ms(seconds * 1000)
