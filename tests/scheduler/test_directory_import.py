"""The directory from Excel, as a new district administrator brings it: one workbook, or CSV files."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from scheduler.config import SchedulerConfig
from scheduler.db import Database
from scheduler.model import Level
from scheduler.templates import template_xlsx
from scheduler.timetable import Timetable
from tests.scheduler.helpers import Clock

SHEETS: dict[str, list[list[Any]]] = {
    "区县": [["地区", "市", "区县", "折算系数", "标准课时长度"], ["宁夏回族自治区", "中卫市", "沙坡头区", 1.5, 40]],
    "学校": [
        ["学校", "区县", "角色", "带宽"],
        ["中卫市第一小学", "沙坡头区", "主讲", 1000],
        ["迎水桥镇中心小学", "沙坡头区", "接收", 100],
        [None, None, None, None],  # an empty row in the middle
        ["香山乡红泉教学点", "沙坡头区", "接收、教学点", 200],
    ],
    "教室": [
        ["学校", "教室"],
        ["中卫市第一小学", "录播教室1"],
        ["迎水桥镇中心小学", "三年级1班"],
        ["香山乡红泉教学点", "复式教室"],
    ],
    "教师": [
        ["教师", "学校", "骨干级别", "学科"],
        ["马丽", "中卫市第一小学", "塞上名师", "英语"],
        ["王芳", "中卫市第一小学", "city", "音乐、美术"],
        ["张伟", "中卫市第一小学", "县级", ""],
    ],
    "研修共同体": [
        ["研修共同体", "区县", "成员"],
        ["小学英语研修共同体", "沙坡头区", "中卫市第一小学/马丽；中卫市第一小学/王芳"],
    ],
    "学期": [["学期", "开始日期", "结束日期"], ["2026秋季学期", "2026-09-01", 46402]],  # Excel serial: 2027-01-15
    "假期": [
        ["学期", "假期", "开始日期", "结束日期", "类型"],
        ["2026秋季学期", "国庆节", "2026-10-01", "2026-10-07", "假期"],
        ["2026秋季学期", "国庆调休", "2026-09-27", "", "调休"],
    ],
}


def workbook(sheets: dict[str, list[list[Any]]] = SHEETS) -> Workbook:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for r in rows:
            ws.append(r)
    return book


def xlsx(book: Workbook) -> bytes:
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def changed(sheet: str, row: int, col: int, value: Any) -> dict[str, list[list[Any]]]:
    out = {k: [list(r) for r in v] for k, v in SHEETS.items()}
    out[sheet][row][col] = value
    return out


def appended(sheet: str, row: list[Any]) -> dict[str, list[list[Any]]]:
    out = {k: [list(r) for r in v] for k, v in SHEETS.items()}
    out[sheet].append(row)
    return out


def staffed(rows: list[list[Any]]) -> dict[str, list[list[Any]]]:
    out = {k: [list(r) for r in v] for k, v in SHEETS.items()}
    out["教师"] = [["教师", "学校", "骨干级别", "学科", "工号"], *rows]
    out["研修共同体"] = [out["研修共同体"][0]]
    return out


@pytest.fixture
def t(tmp_path: Path) -> Timetable:
    return Timetable(Database(tmp_path / "db.sqlite3"), SchedulerConfig(), clock=Clock())


def test_a_whole_county_imports_from_one_workbook_and_again_changes_nothing(t: Timetable) -> None:
    result = t.import_directory(xlsx(workbook()), "名册.xlsx", "admin-token")
    assert result.ok, result.errors
    assert {s.name for s in t.repo.schools()} == {"中卫市第一小学", "迎水桥镇中心小学", "香山乡红泉教学点"}
    point = next(s for s in t.repo.schools() if s.name == "香山乡红泉教学点")
    assert point.is_receiving and point.is_teaching_point and point.bandwidth_mbps == 200
    levels = {x.name: (x.level, x.subjects) for x in t.repo.teachers()}
    assert levels["马丽"] == (Level.REGION, ("英语",)) and levels["王芳"] == (Level.CITY, ("音乐", "美术"))
    assert levels["张伟"] == (Level.COUNTY, ())
    (semester,) = t.repo.semesters()
    assert str(semester.end) == "2027-01-15" and len(semester.holidays) == 7 and len(semester.makeup_days) == 1
    assert len(t.repo.communities()[0].member_teacher_ids) == 2
    again = t.import_directory(xlsx(workbook()), "名册.xlsx", "admin-token")
    assert again.ok and again.added == 0 and again.changed == 0 and again.unchanged == result.added
    # the timetable can use it at once
    from tests.scheduler.helpers import HEADER

    row = "2026-09-07,08:00,08:40,专递课堂,英语,三年级,中卫市第一小学,马丽,录播教室1,迎水桥镇中心小学/三年级1班,,"
    assert t.import_csv(("\ufeff" + HEADER + row + "\n").encode(), "课表.csv", "admin").ok


def test_a_changed_row_updates_and_a_promotion_shows(t: Timetable) -> None:
    assert t.import_directory(xlsx(workbook()), "名册.xlsx", "admin").ok
    result = t.import_directory(xlsx(workbook(changed("教师", 3, 2, "市级"))), "名册.xlsx", "admin")
    assert result.ok and result.changed == 1
    assert next(x for x in t.repo.teachers() if x.name == "张伟").level == Level.CITY


@pytest.mark.parametrize(
    ("sheets", "sheet", "line", "code", "hint"),
    [
        (changed("学校", 1, 2, "主讲端学校"), "学校", 2, "unknown_role", "主讲"),
        (changed("教师", 2, 0, "马丽"), "教师", 3, "duplicate_name", "第 2 行"),
        (
            staffed([["马丽", "中卫市第一小学", "无", "", "T01"], ["马丽", "迎水桥镇中心小学", "无", "", "T01"]]),
            "教师",
            3,
            "teacher_in_two_schools",
            "工号 T01",
        ),
        (changed("教师", 1, 2, "特级"), "教师", 2, "unknown_level", None),
        (changed("教室", 1, 0, "中卫市第一小"), "教室", 2, "unknown_school", "中卫市第一小学"),
        (changed("研修共同体", 1, 2, "中卫市第一小学/马莉"), "研修共同体", 2, "unknown_teacher", "马丽"),
        (changed("假期", 1, 3, "2027-03-01"), "假期", 2, "bad_date", None),
        (changed("区县", 1, 3, 1.2), "区县", 2, "bad_factor", "1.5"),
        (changed("学期", 1, 1, "九月一日"), "学期", 2, "bad_date", None),
    ],
)
def test_bad_rows_are_refused_by_sheet_and_row_and_nothing_is_written(
    t: Timetable, sheets: dict[str, list[list[Any]]], sheet: str, line: int, code: str, hint: str | None
) -> None:
    result = t.import_directory(xlsx(workbook(sheets)), "名册.xlsx", "admin")
    assert not result.ok
    found = [(p.sheet, p.line, p.code) for p in result.errors]
    assert (sheet, line, code) in found, found
    if hint is not None:
        assert any(hint in (p.message_zh or p.message) for p in result.errors)
    assert t.repo.schools() == [] and t.repo.counties() == []


def test_merged_cells_and_formulas_are_refused(t: Timetable) -> None:
    book = workbook()
    ws = book["教室"]
    ws.merge_cells("A2:A3")
    book["教师"]["D2"] = '=UPPER("english")'
    result = t.import_directory(xlsx(book), "名册.xlsx", "admin")
    codes = {(p.sheet, p.line, p.code) for p in result.errors}
    assert ("教室", 2, "merged_cells") in codes and ("教师", 2, "formula") in codes
    assert t.repo.schools() == []


def test_csv_files_one_table_each_in_gbk_or_utf8(t: Timetable) -> None:
    counties = "地区,市,区县\n宁夏回族自治区,中卫市,沙坡头区\n".encode("gbk")
    schools = "\ufeffschool,county,roles,bandwidth_mbps\n第一小学,沙坡头区,lead,1000\n第一小学,沙坡头区,lead,1000\n"
    assert t.import_directory(counties, "区县.csv", "admin").ok
    result = t.import_directory(schools.encode(), "schools.csv", "admin")
    assert [(p.line, p.code) for p in result.errors] == [(3, "duplicate_name")]
    assert "line 3" in result.errors[0].message or result.errors[0].line == 3


def test_concurrent_imports_are_serialised_and_each_all_or_nothing(t: Timetable) -> None:
    data = xlsx(workbook())
    results = []

    def run() -> None:
        results.append(t.import_directory(data, "名册.xlsx", "admin"))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(r.ok for r in results)
    assert sorted(r.added for r in results)[:2] == [0, 0]  # one import wrote, the others found it all there
    assert len(t.repo.schools()) == 3


def test_the_template_has_the_chinese_headers_the_import_reads(t: Timetable) -> None:
    book = load_workbook(io.BytesIO(template_xlsx("directory")))
    assert book.sheetnames[:7] == ["区县", "学校", "教室", "教师", "研修共同体", "学期", "假期"]
    assert [c.value for c in book["学校"][1]] == ["学校", "区县", "角色", "带宽"]
    result = t.import_directory(template_xlsx("directory"), "模板.xlsx", "admin")  # empty: nothing to do
    assert result.ok and result.added == 0


def test_the_command_line_imports_a_directory_and_names_bad_rows(tmp_path: Path) -> None:
    import subprocess
    import sys

    def classroom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "classroom.cli", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )

    (tmp_path / "bad.xlsx").write_bytes(xlsx(workbook(changed("学校", 1, 2, "主讲端学校"))))
    out = classroom("directory", "bad.xlsx", "--lang", "zh")
    assert out.returncode == 1 and "sheet 学校 row 2: error: 未知的学校角色“主讲端学校”" in out.stdout
    assert "REFUSED, nothing imported" in out.stdout
    (tmp_path / "名册.xlsx").write_bytes(xlsx(workbook()))
    out = classroom("directory", "名册.xlsx")
    assert out.returncode == 0 and "0 updated" in out.stdout, out.stdout + out.stderr
    out = classroom("template", "timetable", "-o", "课表模板.xlsx")
    assert out.returncode == 0 and load_workbook(tmp_path / "课表模板.xlsx")["课表"]["A1"].value == "日期"


def test_namesakes_at_two_schools_are_two_teachers(t: Timetable) -> None:
    sheets = appended("教师", ["马丽", "迎水桥镇中心小学", "无", "数学"])
    result = t.import_directory(xlsx(workbook(sheets)), "名册.xlsx", "admin")
    assert result.ok, result.errors
    assert sorted(x.school_id for x in t.repo.teachers() if x.name == "马丽") == [1, 2]


def test_a_failure_in_the_middle_of_writing_leaves_nothing_half_written(
    t: Timetable, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = t.repo.add_teacher

    def failing(conn: Any, teacher: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:  # the process dies here, as with kill -9 after some rows are written
            raise RuntimeError("killed")
        return original(conn, teacher)

    monkeypatch.setattr(t.repo, "add_teacher", failing)
    with pytest.raises(RuntimeError, match="killed"):
        t.import_directory(xlsx(workbook()), "名册.xlsx", "admin")
    assert t.repo.schools() == [] and t.repo.teachers() == [] and t.repo.counties() == []
    monkeypatch.undo()
    assert t.import_directory(xlsx(workbook()), "名册.xlsx", "admin").ok  # and the retry imports it all
