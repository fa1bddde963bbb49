"""Record keeping: one interface (base.Store), two backends (SQLite, Firebase RTDB)."""

import pathlib

from .base import Conflict, InvalidRecord, NotFound, Store, StoreError

__all__ = ["open_store", "Store", "StoreError", "NotFound", "Conflict", "InvalidRecord"]


async def open_store(kind_or_config="sqlite", **options):
    """The configured backend, opened.

    open_store(config): a Config-like object; its `store` ("sqlite" | "firebase") picks the
    backend, `sqlite_path` or `firebase_database_url` (+ credentials fields) configure it.
    open_store("sqlite", path=...) / open_store("firebase", database_url=..., **options).
    """
    if isinstance(kind_or_config, str):
        kind, config = kind_or_config, None
    else:
        kind, config = getattr(kind_or_config, "store", "sqlite"), kind_or_config
    if kind == "sqlite":
        from .sqlite import SqliteStore
        path = options.pop("path", None) or getattr(config, "sqlite_path", None)
        if not path:
            raise StoreError("the sqlite store needs a path")
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)  # the default is var/...
        return await SqliteStore.open(path)
    if kind == "firebase":
        from .firebase import FirebaseStore  # firebase-admin only when asked for
        if config is not None:
            return await FirebaseStore.open(config, **options)
        return await FirebaseStore.open(options.pop("database_url", None), **options)
    raise StoreError("unknown store %r (expected sqlite or firebase)" % (kind,))
