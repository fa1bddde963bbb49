"""mita simulator: fake MicroPython hardware, the physical world and a virtual clock."""
