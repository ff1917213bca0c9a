"""The `classroom` command as an administrator runs it: check, import, report, with clear failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from openpyxl import load_workbook

from tests.scheduler.helpers import GOOD, csv_bytes, small_county


def classroom(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "classroom.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_check_import_and_report_from_the_command_line(tmp_path: Path) -> None:
    small_county(tmp_path / "data" / "classroom.sqlite3").db.close()
    good = tmp_path / "课表.csv"
    good.write_bytes(csv_bytes(GOOD, GOOD.replace("2026-09-07", "2026-09-08")))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes(GOOD, GOOD.replace("马丽", "马莉")))

    out = classroom("check", str(bad), "--lang", "zh", cwd=tmp_path)
    assert out.returncode == 1
    assert "line 3: error: 第一小学没有教师“马莉”，是不是“马丽”？ [unknown_teacher]" in out.stdout
    assert "REFUSED, nothing imported" in out.stdout

    out = classroom("check", str(good), cwd=tmp_path)
    assert out.returncode == 0 and "would add 2 lessons" in out.stdout
    out = classroom("import", str(good), "--json", cwd=tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)["lessons_added"] == 2
    out = classroom("import", str(good), cwd=tmp_path)
    assert out.returncode == 0 and "added 0 lessons, 2 unchanged" in out.stdout

    out = classroom("report", "--as-of", "2026-09-30", "--section", "teachers", "--format", "json", cwd=tmp_path)
    teachers = json.loads(out.stdout)["teachers"]
    assert {t["teacher"] for t in teachers} == {"马丽", "王芳", "张伟"}  # the backbone teachers
    out = classroom("report", "--as-of", "2026-09-30", "--format", "xlsx", "-o", "r.xlsx", cwd=tmp_path)
    assert out.returncode == 0 and "teachers" in load_workbook(tmp_path / "r.xlsx").sheetnames
    out = classroom("report", "--section", "teachers", "--format", "csv", cwd=tmp_path)
    assert out.stdout.startswith("\ufeff教师编号")
    out = classroom("report", "--section", "everything", cwd=tmp_path)
    assert out.returncode == 2 and "unknown section" in out.stderr
    out = classroom("import", str(tmp_path / "missing.csv"), cwd=tmp_path)
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_report_as_of_a_past_date_shows_what_was_known_then(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tests.scheduler.helpers import Clock

    clock = Clock()
    t = small_county(tmp_path / "data" / "classroom.sqlite3", clock)
    assert t.import_csv(csv_bytes(GOOD, GOOD.replace("2026-09-07", "2026-09-21")), "a.csv", "admin").ok
    for lesson in t.repo.lessons():
        clock.now = lesson.end
        t.record_evidence(lesson.id, 40.0, {lesson.receiving_classroom_ids[0]: 40.0}, "sfu")
        clock.now = t.window(lesson)[1]
        t.settle(lesson.id, clock.now)
    clock.now = datetime(2026, 12, 1, tzinfo=UTC)
    t.db.close()

    def delivered(day: str) -> int:
        out = classroom("report", "--as-of", day, "--section", "teachers", "--format", "json", cwd=tmp_path)
        return next(r["delivered"] for r in json.loads(out.stdout)["teachers"] if r["teacher"] == "马丽")

    assert (delivered("2026-09-10"), delivered("2026-09-30")) == (1, 2)  # the lesson of the 21st came later
