"""Tariff validation for the API: the cloud accepts exactly what a meter will accept, by running
the firmware's own validator (firmware/meter/tariff_config.py) in a private namespace."""

import builtins
import logging
import pathlib
import types

log = logging.getLogger("mita.tariff")

_FIRMWARE_VALIDATOR = (pathlib.Path(__file__).resolve().parents[1]
                       / "firmware" / "meter" / "tariff_config.py")
_TOP_KEYS = ("version", "effective_from", "utc_offset_min", "bands", "tou", "passthrough",
             "levies", "percent_levies", "vat_bp")


class InvalidTariff(ValueError):
    """A meter would refuse this tariff."""


def _load_firmware_validator(path=_FIRMWARE_VALIDATOR):
    """The firmware module's namespace, or None when the source is not shipped alongside.

    Its only import is `micropython.const`; a private __import__ supplies it, so nothing is
    put into sys.modules (the simulator installs its own fake micropython there).
    """
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        return None
    stub = types.ModuleType("micropython")
    stub.const = lambda value: value  # type: ignore[attr-defined]
    real_import = builtins.__import__

    def private_import(name, *args, **kwargs):
        return stub if name == "micropython" else real_import(name, *args, **kwargs)
    namespace = {"__builtins__": dict(vars(builtins), __import__=private_import),
                 "__name__": "mita_firmware_tariff_config"}
    exec(compile(source, str(path), "exec"), namespace)  # our own repository's source
    return namespace


_VALIDATOR = _load_firmware_validator()
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
