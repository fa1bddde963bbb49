# Tariff configuration as pushed from the cloud: validation with a clear reason for every
# refusal, and the way back to the same dict. The cost arithmetic lives in meter.tariff.
from micropython import const

from meter.digits import ascii_digits

_WH_PER_KWH = const(1000)
_BP = const(10000)
_MINUTES_PER_DAY = const(1440)
_MAX_FACTOR_BP = const(100000)  # 10x: a larger time-of-use factor is a typo, not a tariff
KENYA_OFFSET_MIN = const(180)  # EAT, UTC+3, no daylight saving
# Upper bounds that no real tariff comes near, so a pushed typo is refused rather than billed:
# KES 1,000 per kWh (Kenya's rates are tens of shillings), bands up to 100 MWh a month, and a
# version or date small enough that one bad push cannot outrank every tariff after it.
_MAX_RATE = const(100000)
_MAX_UPTO_KWH = const(100000)
_MAX_VERSION = const(0x7FFFFFFF)
_MAX_EFFECTIVE_FROM = 4102444800  # 2100-01-01; a big int on the ESP32, so no const()

_TOP_KEYS = ("version", "effective_from", "utc_offset_min", "bands", "tou", "passthrough",
             "levies", "percent_levies", "vat_bp")
_RATE_KEYS = ("name", "rate", "vat")
_PERCENT_KEYS = ("name", "bp", "vat")


class TariffError(ValueError):
    pass


def _int(d, key, where, low=0, high=None, default=None):
    value = d.get(key, default)
    if value is None:
        raise TariffError("%s: missing %s" % (where, key))
    # bool is an int subclass, and true is never a rate.
    if type(value) is not int:
        raise TariffError("%s: %s must be an integer, got %r" % (where, key, value))
    if value < low or (high is not None and value > high):
        raise TariffError("%s: %s=%d out of range" % (where, key, value))
    return value


def _list(d, key, required=False):
    value = d.get(key)
    if value is None:
        if required:
            raise TariffError("missing %s" % key)
        return []
    if type(value) is not list:
        raise TariffError("%s must be a list" % key)
    return value


def _item(value, where, allowed):
    if type(value) is not dict:
        raise TariffError("%s must be an object" % where)
    for key in value:
        if key not in allowed:
            raise TariffError("%s: unknown field %r" % (where, key))
    return value


def _minutes(text, where):
    """'HH:MM' as minutes since midnight."""
    if (type(text) is not str or len(text) != 5 or text[2] != ":"
            or not ascii_digits(text[:2] + text[3:])):
        raise TariffError("%s: time %r is not HH:MM" % (where, text))
    hh = int(text[:2])
    mm = int(text[3:])
    if hh > 23 or mm > 59:
        raise TariffError("%s: no such time %r" % (where, text))
    return hh * 60 + mm


def _hhmm(minutes):
    return "%02d:%02d" % (minutes // 60, minutes % 60)


def _parse_bands(raw):
    bands = []
    previous = 0
    for i in range(len(raw)):
        where = "bands[%d]" % i
        band = _item(raw[i], where, ("upto_kwh", "rate"))
        rate = _int(band, "rate", where, 0, _MAX_RATE)
        last = i == len(raw) - 1
        if "upto_kwh" not in band:
            if not last:
                raise TariffError("%s: only the last band may be open-ended" % where)
            bands.append((None, rate))
            continue
        if last:
            raise TariffError("%s: the last band must be open-ended (no upto_kwh)" % where)
        upto = _int(band, "upto_kwh", where, 1, _MAX_UPTO_KWH)
        if upto <= previous:
            raise TariffError("%s: bands must be sorted, upto_kwh %d after %d"
                              % (where, upto, previous))
        previous = upto
        bands.append((upto * _WH_PER_KWH, rate))
    if not bands:
        raise TariffError("bands: at least one band is needed")
    return bands


def _parse_tou(raw):
    windows = []
    spans = []  # windows split at midnight, to find overlaps
    for i in range(len(raw)):
        where = "tou[%d]" % i
        item = _item(raw[i], where, ("from", "to", "factor_bp"))
        start = _minutes(item.get("from"), where)
        end = _minutes(item.get("to"), where)
        if start == end:
            raise TariffError("%s: empty window (from == to)" % where)
        factor = _int(item, "factor_bp", where, 0, _MAX_FACTOR_BP)
        windows.append((start, end, factor))
        if start < end:
            spans.append((start, end))
        else:
            spans.append((start, _MINUTES_PER_DAY))
            if end > 0:
                spans.append((0, end))
    spans.sort()
    for i in range(1, len(spans)):
        if spans[i][0] < spans[i - 1][1]:
            raise TariffError("tou: windows overlap at %s" % _hhmm(spans[i][0]))
    return windows


def _parse_charges(raw, key, amount_key, vat_default):
    charges = []
    names = []
    for i in range(len(raw)):
        where = "%s[%d]" % (key, i)
        item = _item(raw[i], where, _PERCENT_KEYS if amount_key == "bp" else _RATE_KEYS)
        name = item.get("name")
        if type(name) is not str or not name:
            raise TariffError("%s: missing name" % where)
        if name in names:
            raise TariffError("%s: duplicate name %r" % (where, name))
        names.append(name)
        vat = item.get("vat", vat_default)
        if type(vat) is not bool:
            raise TariffError("%s: vat must be true or false" % where)
        high = _BP if amount_key == "bp" else _MAX_RATE
        charges.append((name, _int(item, amount_key, where, 0, high), vat))
    return charges


def parse_tariff(d):
    """The validated fields of a tariff dict, in Tariff's constructor order."""
    if type(d) is not dict:
        raise TariffError("a tariff must be an object")
    _item(d, "tariff", _TOP_KEYS)
    return (
        _int(d, "version", "tariff", 0, _MAX_VERSION),
        _int(d, "effective_from", "tariff", 0, _MAX_EFFECTIVE_FROM, default=0),
        _int(d, "utc_offset_min", "tariff", -720, 840, default=KENYA_OFFSET_MIN),
        _parse_bands(_list(d, "bands", True)),
        _parse_tou(_list(d, "tou")),
        _parse_charges(_list(d, "passthrough"), "passthrough", "rate", True),
        _parse_charges(_list(d, "levies"), "levies", "rate", False),
        _parse_charges(_list(d, "percent_levies"), "percent_levies", "bp", False),
        _int(d, "vat_bp", "tariff", 0, _BP, default=0),
    )


def tariff_to_dict(tariff):
    bands = []
    for upto, rate in tariff.bands:
        if upto is None:
            bands.append({"rate": rate})
        else:
            bands.append({"upto_kwh": upto // _WH_PER_KWH, "rate": rate})
    return {
        "version": tariff.version, "effective_from": tariff.effective_from,
        "utc_offset_min": tariff.utc_offset_min, "bands": bands,
        "tou": [{"from": _hhmm(a), "to": _hhmm(b), "factor_bp": f} for a, b, f in tariff.tou],
        "passthrough": _charges_to_list(tariff.passthrough, "rate", True),
        "levies": _charges_to_list(tariff.levies, "rate", False),
        "percent_levies": _charges_to_list(tariff.percent_levies, "bp", False),
        "vat_bp": tariff.vat_bp,
    }


def _charges_to_list(charges, amount_key, vat_default):
    out = []
    for name, amount, vat in charges:
        item = {"name": name, amount_key: amount}
        if vat != vat_default:
            item["vat"] = vat
        out.append(item)
    return out
