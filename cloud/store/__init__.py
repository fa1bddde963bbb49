"""Record keeping: one interface (base.Store), two backends (SQLite, Firebase RTDB)."""
