# Device entry point: MicroPython runs /main.py after boot.py. Ctrl-C on the REPL stops the
# loop and leaves `app` here for inspection (app.snapshot, app.apply_recharge(...)).
import asyncio
import sys

from meter import boot

try:
    app = boot.start()
except Exception as exc:  # a meter that cannot boot must retry, not sit at the REPL for ever
    sys.print_exception(exc)
    from meter import board
    board.reset_after(10000)
try:
    asyncio.run(boot.run(app))
except KeyboardInterrupt:
    print("mita stopped; `app` is the running meter")
