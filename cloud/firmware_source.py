"""The firmware's own pure modules run in the cloud, so the two sides cannot drift: the tariff
validator, the protocol's constants. Each module runs in a private namespace; its imports are
`micropython.const` and `from meter.<module> import ...` of other pure firmware modules, both
supplied by a private __import__, so nothing goes into sys.modules (the simulator installs its
own fake micropython and the firmware's own `meter` package there)."""

import builtins
import pathlib
import types

FIRMWARE_METER = pathlib.Path(__file__).resolve().parents[1] / "firmware" / "meter"


def load_firmware_module(name, folder=FIRMWARE_METER):
    """The namespace of firmware/meter/<name>.py, or None when the source is not shipped."""
    path = folder / (name + ".py")
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        return None
    stub = types.ModuleType("micropython")
    stub.const = lambda value: value  # type: ignore[attr-defined]
    real_import = builtins.__import__

    def private_import(name, *args, **kwargs):
        if name == "micropython":
            return stub
        if name.startswith("meter.") and args[2:3] and args[2]:  # from meter.x import names
            loaded = load_firmware_module(name[len("meter."):], folder)
            if loaded is None:
                raise ImportError("firmware module %s is not shipped" % name)
            return types.SimpleNamespace(**loaded)
        return real_import(name, *args, **kwargs)
    namespace = {"__builtins__": dict(vars(builtins), __import__=private_import),
                 "__name__": "mita_firmware_" + name}
    exec(compile(source, str(path), "exec"), namespace)  # our own repository's source
    return namespace
