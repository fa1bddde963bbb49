"""Tariff validation for the API: the cloud accepts exactly what a meter will accept, by running
the firmware's own validator (firmware/meter/tariff_config.py) in a private namespace."""

import logging
import types

from cloud.firmware_source import load_firmware_module

log = logging.getLogger("mita.tariff")

_TOP_KEYS = ("version", "effective_from", "utc_offset_min", "bands", "tou", "passthrough",
             "levies", "percent_levies", "vat_bp")


class InvalidTariff(ValueError):
    """A meter would refuse this tariff."""


_VALIDATOR = load_firmware_module("tariff_config")
if _VALIDATOR is None:
    log.warning("firmware tariff validator not found; only the tariff's shape is checked")


def validate_tariff(tariff):
    """Return the tariff as it will be stored and sent to meters, or raise InvalidTariff."""
    if not isinstance(tariff, dict):
        raise InvalidTariff("a tariff must be an object")
    unknown = sorted(set(tariff) - set(_TOP_KEYS))
    if unknown:
        raise InvalidTariff("unknown tariff fields: " + ", ".join(unknown))
    version = tariff.get("version")
    if type(version) is not int or version < 1:
        raise InvalidTariff("version must be a positive whole number")
    if _VALIDATOR is not None:
        try:
            parsed = _VALIDATOR["parse_tariff"](tariff)
        except ValueError as e:  # TariffError
            raise InvalidTariff(str(e)) from None
        return _to_dict(parsed)
    if not isinstance(tariff.get("bands"), list) or not tariff["bands"]:
        raise InvalidTariff("bands: at least one band is needed")
    return dict(tariff)


def _to_dict(parsed):
    """The validator's canonical dict (defaults filled in), via the firmware's own writer."""
    version, effective_from, offset, bands, tou, passthrough, levies, percent, vat = parsed
    holder = types.SimpleNamespace(
        version=version, effective_from=effective_from, utc_offset_min=offset, bands=bands,
        tou=tou, passthrough=passthrough, levies=levies, percent_levies=percent, vat_bp=vat)
    return _VALIDATOR["tariff_to_dict"](holder)
