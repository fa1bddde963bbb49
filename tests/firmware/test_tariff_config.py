# Tariff configurations: the round trip to a dict, and every malformed one refused with its reason.
import json

from meter.tariff import Tariff, TariffError
from meter.tariff_config import parse_tariff
from support import raises
from tariff_samples import kenya_dict

_DROP = object()  # as a value below: remove the key instead of setting it


def test_config_round_trips_through_to_dict():
    d = kenya_dict()
    assert Tariff.from_dict(d).to_dict() == d
    d["levies"].append({"name": "odd", "rate": 7, "vat": True})
    d["percent_levies"][0]["vat"] = True
    d["tou"].append({"from": "18:00", "to": "21:00", "factor_bp": 13333})
    again = Tariff.from_dict(json.loads(json.dumps(Tariff.from_dict(d).to_dict())))
    assert again.to_dict() == d
    flat = Tariff.flat(1500, version=4)
    assert flat.to_dict()["bands"] == [{"rate": 1500}] and flat.version == 4
    assert flat.utc_offset_min == 180 and flat.tou == [] and flat.vat_bp == 0


def test_optional_parts_default_to_nothing():
    fields = parse_tariff({"version": 0, "bands": [{"rate": 0}]})
    assert fields == (0, 0, 180, [(None, 0)], [], [], [], [], 0)


# (where in the kenya dict, new value or _DROP, part of the reason expected)
_BAD = [
    (("version",), _DROP, "missing version"),
    (("bands",), _DROP, "missing bands"),
    (("bands",), [], "at least one band"),
    (("version",), True, "version must be an integer"),
    (("version",), "3", "version must be an integer"),
    (("effective_from",), -1, "out of range"),
    (("bands", 0, "rate"), -5, "rate=-5 out of range"),
    (("bands", 1, "rate"), 16.5, "rate must be an integer"),
    (("bands", 1, "rate"), _DROP, "bands[1]: missing rate"),
    (("bands", 1, "upto_kwh"), 30, "bands must be sorted"),
    (("bands", 1, "upto_kwh"), 20, "bands must be sorted"),
    (("bands", 0, "upto_kwh"), 0, "out of range"),
    (("bands", 2, "upto_kwh"), 200, "last band must be open-ended"),
    (("bands", 0, "upto_kwh"), _DROP, "only the last band"),
    (("bands", 0, "upto_kWh"), 30, "unknown field"),
    (("bands", 1), 1650, "bands[1] must be an object"),
    (("tou", 0, "to"), "22:00", "empty window"),
    (("tou", 0, "from"), "25:00", "no such time"),
    (("tou", 0, "to"), "06:60", "no such time"),
    (("tou", 0, "from"), "6:00", "not HH:MM"),
    (("tou", 0, "from"), "ab:cd", "not HH:MM"),
    (("tou", 0, "from"), "\u00b2\u00b2:00", "not HH:MM"),  # Unicode digits (found by fuzzing)
    (("tou", 0, "from"), 2200, "not HH:MM"),
    (("tou", 0, "factor_bp"), _DROP, "missing factor_bp"),
    (("tou", 0, "factor_bp"), 100001, "out of range"),
    (("passthrough", 1, "name"), "fuel", "duplicate name"),
    (("levies", 0, "name"), _DROP, "missing name"),
    (("levies", 0, "name"), "", "missing name"),
    (("levies", 0, "vat"), 1, "vat must be true or false"),
    (("levies", 0, "rate"), -1, "out of range"),
    (("percent_levies", 0, "bp"), -1, "out of range"),
    (("percent_levies", 0, "rate"), 500, "unknown field"),
    (("vat_bp",), 10001, "out of range"),
    (("utc_offset_min",), 900, "out of range"),
    (("levies",), "erc", "levies must be a list"),
    (("surprise",), 1, "unknown field 'surprise'"),
    # nonsense a push could carry: refused, never billed
    (("bands", 0, "rate"), 100001, "rate=100001 out of range"),
    (("bands", 2, "rate"), 10 ** 20, "out of range"),
    (("bands", 1, "upto_kwh"), 100001, "out of range"),
    (("passthrough", 0, "rate"), 100001, "out of range"),
    (("levies", 0, "rate"), 10 ** 12, "out of range"),
    (("percent_levies", 0, "bp"), 10001, "out of range"),
    (("version",), 0x80000000, "out of range"),
    (("effective_from",), 4102444801, "out of range"),
]


def _changed(path, value):
    d = kenya_dict()
    target = d
    for step in path[:-1]:
        target = target[step]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


def test_invalid_configs_are_refused_with_a_reason():
    for path, value, reason in _BAD:
        got = str(raises(TariffError, Tariff.from_dict, _changed(path, value)))
        assert reason in got, (path, reason, got)
    assert str(raises(TariffError, Tariff.from_dict, [1])) == "a tariff must be an object"


def test_overlapping_time_of_use_windows_are_refused():
    d = kenya_dict()
    d["tou"].append({"from": "05:00", "to": "07:00", "factor_bp": 9000})
    assert "overlap at 05:00" in str(raises(TariffError, Tariff.from_dict, d))
    d["tou"][1] = {"from": "21:00", "to": "23:00", "factor_bp": 9000}
    assert "overlap at 22:00" in str(raises(TariffError, Tariff.from_dict, d))
    # Touching windows are fine: [06:00, 22:00) and [22:00, 06:00) cover the day once.
    d["tou"][1] = {"from": "06:00", "to": "22:00", "factor_bp": 9000}
    tariff = Tariff.from_dict(d)
    assert tariff.factor_bp_at(1767225600) == 7000  # 03:00 in Kenya
    assert tariff.factor_bp_at(1767225600 + 4 * 3600) == 9000  # 07:00


def test_the_largest_accepted_values_still_bill_exactly():
    d = kenya_dict()
    d["version"] = 0x7FFFFFFF
    d["effective_from"] = 4102444800
    d["bands"] = [{"upto_kwh": 100000, "rate": 100000}, {"rate": 100000}]
    d["percent_levies"][0]["bp"] = 10000
    tariff = Tariff.from_dict(d)
    assert tariff.to_dict() == d
