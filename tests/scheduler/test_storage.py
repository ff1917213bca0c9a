"""The database file: migrations, a newer schema, a corrupt or locked file, and configuration errors."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from classroom.config import ConfigError, describe, load_config
from scheduler.db import Database, StorageError
from scheduler.schema import SCHEMA_VERSION


def test_a_new_database_is_migrated_to_the_current_version(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.sqlite3")
    assert db.version == SCHEMA_VERSION
    db.close()
    assert Database(tmp_path / "x.sqlite3").version == SCHEMA_VERSION  # reopening changes nothing


def test_a_database_from_a_newer_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    Database(path).close()
    with sqlite3.connect(path) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer than this program"):
        Database(path)


def test_a_corrupt_file_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="corrupt or not an SQLite database"):
        Database(path)


def test_a_locked_database_gets_a_clear_error_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    Database(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        db = Database(path, busy_timeout_s=0.2)
    except StorageError as exc:
        assert "locked" in str(exc)
    else:
        with pytest.raises(StorageError, match="locked"), db.write() as c:
            c.execute("INSERT INTO region(name) VALUES ('x')")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT count(*) FROM region").fetchone()[0] == 0


def test_the_cli_reports_a_corrupt_database_and_exits_nonzero(tmp_path: Path) -> None:
    (tmp_path / "classroom.sqlite3").write_bytes(b"garbage" * 1000)
    out = subprocess.run(
        [sys.executable, "-m", "classroom.cli", "report", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "corrupt" in out.stderr


def test_config_file_and_environment_overrides_with_secrets_masked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9000\nadmin_token = "s3cret"\n[scheduler]\nwindow_open_before_min = 5\n')
    config = load_config(
        path, env={"CLASSROOM_SERVER__PORT": "9100", "CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1"}
    )
    assert config.server.port == 9100 and config.scheduler.window_open_before_min == 5
    assert config.media.announced_addresses == ("127.0.0.1",)
    text = describe(config)
    assert "s3cret" not in text and 'admin_token = "********"' in text


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[scheduler]\ndefault_workload_factor = 1.2\n", "below the policy minimum"),
        ("[server]\nport = 'eighty'\n", "must be int"),
        ("[nonsense]\nx = 1\n", "unknown section"),
        ("[server]\nprot = 1\n", "unknown key"),
        ("[server\n", "c.toml"),
    ],
)
def test_bad_configuration_is_refused_with_the_reason(tmp_path: Path, toml: str, fragment: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path, env={})


def test_reads_do_not_wait_for_a_long_write_on_another_thread(tmp_path: Path) -> None:
    import threading
    import time

    db = Database(tmp_path / "x.sqlite3")
    inside, release = threading.Event(), threading.Event()

    def long_import() -> None:
        with db.write() as c:
            c.execute("INSERT INTO region(name) VALUES ('uncommitted')")
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=long_import)
    worker.start()
    assert inside.wait(10)
    started = time.monotonic()
    with db.read() as c:
        names = [r[0] for r in c.execute("SELECT name FROM region")]
    waited = time.monotonic() - started
    release.set()
    worker.join()
    assert names == [] and waited < 5  # it saw the committed state without waiting for the writer
    with db.read() as c:
        assert [r[0] for r in c.execute("SELECT name FROM region")] == ["uncommitted"]


def test_config_masks_secrets_but_not_settings_that_merely_contain_key() -> None:
    env = {"CLASSROOM_MEDIA__TURN_PASSWORD": "pw", "CLASSROOM_SERVER__ADMIN_TOKEN": "t"}
    text = describe(load_config(None, env=env))
    lines = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    assert lines["keyframe_request_interval"] != '"********"' and "*" not in lines["keyframe_request_interval"]
    assert "*" not in lines["keyframe_cpu_budget"] and "*" not in lines["keyframe_retry_interval"]
    assert lines["turn_password"] == '"********"' and lines["admin_token"] == '"********"'


def test_a_version_4_database_with_a_settled_semester_is_migrated_without_losing_a_number(tmp_path: Path) -> None:
    from scheduler.db import _statements
    from scheduler.schema import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:4]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.executescript(
        """
        PRAGMA user_version = 4;
        INSERT INTO region VALUES (1, '宁夏'); INSERT INTO city VALUES (1, 1, '中卫市');
        INSERT INTO county(id, city_id, name, workload_factor) VALUES (1, 1, '沙坡头区', 1.8);
        INSERT INTO school(id, county_id, name, is_lead) VALUES (1, 1, '第一小学', 1);
        INSERT INTO school(id, county_id, name, is_receiving) VALUES (2, 1, '迎水桥小学', 1);
        INSERT INTO classroom VALUES (1, 1, '录播教室1'); INSERT INTO classroom VALUES (2, 2, '三年级1班');
        INSERT INTO teacher(id, school_id, name, level) VALUES (1, 1, '马丽', 'region');
        INSERT INTO lesson(id, kind, subject, lead_teacher_id, lead_classroom_id, start_utc, end_utc, status,
            lesson_key, created_at, updated_at) VALUES (1, 'specialised', '英语', 1, 1, 1000, 6400, 'delivered',
            '1:1:1000', 900, 7000);
        INSERT INTO lesson_receiver VALUES (1, 2, 1000);
        INSERT INTO attendance VALUES (1, 2, 80.0, 6000);
        INSERT INTO ledger(lesson_id, entry_type, teacher_id, school_id, base_hours, factor, weighted_hours,
            created_at, actor, reason) VALUES (1, 'teacher_workload', 1, 1, 1, 1.8, 1.8, 7000, 'system', 'x');
        """
    )
    conn.close()
    db = Database(path)
    assert db.version == SCHEMA_VERSION
    with db.read() as c:
        lesson = c.execute("SELECT status, hours, settled_at FROM lesson WHERE id = 1").fetchone()
        assert tuple(lesson) == ("delivered", 2, 7000)  # 90 minutes at 40: 2 课时
        assert c.execute("SELECT count(*) FROM receiver_credit WHERE lesson_id = 1").fetchone()[0] == 1
        assert c.execute("SELECT factor FROM county_factor WHERE county_id = 1").fetchone()[0] == 1.8
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError), db.write() as c:
        c.execute("INSERT INTO lesson_receiver VALUES (99, 2, 1000)")  # references are enforced again
    db.close()
