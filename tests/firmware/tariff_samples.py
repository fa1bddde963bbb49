# A sample tariff configuration for the tariff tests. Its own module, not support.py: every
# firmware test imports support under a capped MicroPython heap, and only two need this.


def kenya_dict():
    """Shaped like Kenya Power's domestic tariff: three bands, a night window, pass-through
    charges, levies and VAT. A fresh dict each call: tests change it."""
    return {"version": 3, "effective_from": 1767225600, "utc_offset_min": 180,
            "bands": [{"upto_kwh": 30, "rate": 1223}, {"upto_kwh": 100, "rate": 1650},
                      {"rate": 1950}],
            "tou": [{"from": "22:00", "to": "06:00", "factor_bp": 7000}],
            "passthrough": [{"name": "fuel", "rate": 367}, {"name": "forex", "rate": 133},
                            {"name": "inflation", "rate": 45}],
            "levies": [{"name": "erc", "rate": 8}, {"name": "wra", "rate": 5}],
            "percent_levies": [{"name": "rep", "bp": 500}],
            "vat_bp": 1600}
