"""A simulated mita board on a pseudo-terminal, speaking MicroPython's raw REPL."""
