"""The data folder of a real `classroom serve`: owner-only, and a clear warning where it was not."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from classroom.permissions import too_open


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_folder_and_its_database_are_owner_only(server_factory: Any, tmp_path: Path) -> None:
    old = os.umask(0o022)  # what a default shell gives: the server must not rely on it
    try:
        srv = server_factory("--media", "local", data_dir=tmp_path / "fresh")
    finally:
        os.umask(old)
    data = srv.data_dir
    assert srv.json("GET", "/api/v1/schools")[0] == 200  # the database is in use: -wal and -shm exist
    assert _mode(data) == 0o700
    for name in ("classroom.sqlite3", "classroom.sqlite3-wal", "classroom.sqlite3-shm", "signing-key",
                 "admin-token"):
        assert _mode(data / name) == 0o600, name
    # (the test fixture makes the folder itself beforehand, with the 022 umask: that one is tightened)
    assert "classroom.sqlite3 was" not in srv.log and "could not be changed" not in srv.log


def test_an_open_data_folder_is_tightened_with_a_clear_warning(server_factory: Any, tmp_path: Path) -> None:
    data = tmp_path / "open"
    data.mkdir()
    os.chmod(data, 0o755)
    db = data / "classroom.sqlite3"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)
    srv = server_factory("--media", "local", data_dir=data)
    assert srv.json("GET", "/api/v1/schools")[0] == 200
    assert _mode(data) == 0o700
    assert {_mode(data / n) for n in ("classroom.sqlite3", "classroom.sqlite3-wal", "classroom.sqlite3-shm")} == {
        0o600}
    log = srv.log
    assert f"{data} was 0755, readable by other local users" in log
    assert f"{db} was 0644, readable by other local users" in log


def test_the_rule() -> None:
    assert too_open(0o100644) and too_open(0o40755) and too_open(0o640) and too_open(0o604)
    assert not too_open(0o600) and not too_open(0o700) and not too_open(0o400)


def test_a_database_folder_outside_the_data_folder_is_only_warned_about(tmp_path: Path) -> None:
    from classroom.permissions import data_files, secure_data

    data, shared = tmp_path / "data", tmp_path / "shared"
    data.mkdir(mode=0o700)
    shared.mkdir()
    os.chmod(shared, 0o755)
    db = shared / "classroom.sqlite3"
    db.write_bytes(b"")
    os.chmod(db, 0o644)
    warnings = secure_data(data_files(data, db))
    assert _mode(shared) == 0o755 and _mode(db) == 0o600
    assert any("the database's folder" in w for w in warnings) and any("was 0644" in w for w in warnings)
