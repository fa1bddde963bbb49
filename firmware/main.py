# Device entry point: MicroPython runs /main.py after boot.py. Ctrl-C on the REPL stops the
# loop and leaves `app` here for inspection (app.snapshot, app.apply_recharge(...)).
import asyncio

from meter import boot

app = boot.start()
try:
    asyncio.run(boot.run(app))
except KeyboardInterrupt:
    print("mita stopped; `app` is the running meter")
