"""The hardware-in-the-loop suite and its simulated board (see docs/hil.md)."""
