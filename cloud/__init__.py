"""mita cloud: M-Pesa payments in, recharges out, records in SQLite or Firebase."""
