"""`make cloud` leaves nothing to commit (issue #14 part 7): the default SQLite file and its
WAL/SHM companions live under var/, which git ignores, and the folder is made on open."""

import pathlib
import subprocess

from cloud.config import Config, config_from_mapping
from cloud.store import open_store

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_default_database_is_under_var_and_ignored():
    assert Config().sqlite_path == config_from_mapping({}).sqlite_path == "var/mita.sqlite3"
    names = ["var/mita.sqlite3", "var/mita.sqlite3-wal", "var/mita.sqlite3-shm",
             "mita.sqlite3", "mita.sqlite3-wal", "mita.sqlite3-shm"]  # files from before
    done = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.stdout.split() == names


async def test_opening_the_default_store_makes_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = await open_store(Config())
    try:
        assert (tmp_path / "var" / "mita.sqlite3").is_file()
        assert not (tmp_path / "mita.sqlite3").exists()
    finally:
        await store.close()
