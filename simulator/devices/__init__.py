# Pure models of the meter's devices (PZEM, LCD, S0, flash, keypad); MicroPython-compatible.
