"""Timetable import as an administrator meets it: line-numbered errors, all or nothing, re-import safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler.model import LessonStatus
from scheduler.timetable import Timetable
from tests.scheduler.helpers import GOOD, HEADER, csv_bytes, small_county


@pytest.fixture
def t(tmp_path: Path) -> Timetable:
    return small_county(tmp_path / "db.sqlite3")


def lesson_count(t: Timetable) -> int:
    with t.db.read() as c:
        return int(c.execute("SELECT count(*) FROM lesson").fetchone()[0])


def codes(result: object) -> list[tuple[int | None, str]]:
    return [(p.line, p.code) for p in result.errors]  # type: ignore[attr-defined]


def test_a_good_file_imports_and_the_lessons_are_stored_in_utc(t: Timetable) -> None:
    result = t.import_csv(csv_bytes(GOOD), "a.csv", "admin")
    assert result.ok and result.lessons_added == 1
    (lesson,) = t.repo.lessons()
    assert lesson.start.isoformat() == "2026-09-07T00:00:00+00:00"  # 08:00 in Shanghai
    assert len(lesson.receiving_classroom_ids) == 2 and lesson.status == LessonStatus.SCHEDULED


def test_reimporting_the_same_file_changes_nothing(t: Timetable) -> None:
    data = csv_bytes(GOOD, GOOD.replace("2026-09-07", "2026-09-08"))
    assert t.import_csv(data, "a.csv", "admin").lessons_added == 2
    again = t.import_csv(data, "a.csv", "admin")
    assert again.ok and again.lessons_added == 0 and again.lessons_unchanged == 2
    assert lesson_count(t) == 2


def test_one_bad_row_imports_nothing_and_every_error_has_its_line(t: Timetable) -> None:
    data = csv_bytes(
        GOOD,
        GOOD.replace("马丽", "马莉"),  # line 3: unknown teacher, close to 马丽
        GOOD.replace("2026-09-07", "2026-09-09").replace("迎水桥小学", "迎水小学"),  # line 4: unknown school
        GOOD.replace("08:00", "8点"),  # line 5: not a time
    )
    result = t.import_csv(data, "bad.csv", "admin")
    assert not result.ok
    assert (3, "unknown_teacher") in codes(result)
    assert (4, "unknown_school") in codes(result)
    assert (5, "bad_time") in codes(result)
    hint = next(p.message for p in result.errors if p.line == 3)
    assert "did you mean '马丽'" in hint
    hint_zh = next(p.message_zh for p in result.errors if p.line == 3)
    assert hint_zh == "第一小学没有教师“马莉”，是不是“马丽”？"  # what the Chinese admin page shows
    assert "迎水桥小学" in next(p.message for p in result.errors if p.line == 4)
    assert lesson_count(t) == 0


def test_english_headers_and_gbk_files_from_excel_are_read(t: Timetable) -> None:
    english = (
        "date,start,end,kind,subject,grade,lead_school,lead_teacher,lead_classroom,receiving_classrooms\n"
        "2026/9/7,08:00,08:40,specialised,English,3,第一小学,马丽,录播教室1,迎水桥小学/三年级1班\n"
    ).encode()
    assert t.import_csv(english, "en.csv", "admin").lessons_added == 1
    gbk = csv_bytes(GOOD.replace("2026-09-07", "2026-09-08"), bom=False, encoding="gbk")
    assert t.import_csv(gbk, "gbk.csv", "admin").lessons_added == 1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"\x00\x01PK\x03\x04binary", "not a text CSV"),
        ("名字,年龄\n张三,3\n".encode(), "lacks the columns"),
        (b"\xff\xfe\xfa\xfb\xfc" * 10, "neither UTF-8 nor GBK"),
    ],
)
def test_unreadable_files_get_one_clear_error(t: Timetable, data: bytes, fragment: str) -> None:
    result = t.import_csv(data, "x.csv", "admin")
    assert not result.ok and fragment in result.errors[0].message
    assert lesson_count(t) == 0


def test_a_time_without_a_date_is_refused(t: Timetable) -> None:
    result = t.import_csv(csv_bytes(GOOD.replace("2026-09-07", "")), "a.csv", "admin")
    assert codes(result) == [(2, "time_without_date")]


def test_duplicate_and_overlapping_rows_are_refused(t: Timetable) -> None:
    overlapping = GOOD.replace("08:00,08:40", "08:20,09:00").replace("录播教室1", "录播教室2")
    result = t.import_csv(csv_bytes(GOOD, GOOD, overlapping), "a.csv", "admin")
    found = codes(result)
    assert (3, "duplicate_lesson") in found
    assert (4, "teacher_busy") in found  # 马丽 cannot teach two rooms at once
    assert (4, "classroom_busy") in found  # the receiving classrooms are taken too
    assert lesson_count(t) == 0


def test_conflicts_with_lessons_already_stored_are_found(t: Timetable) -> None:
    assert t.import_csv(csv_bytes(GOOD), "a.csv", "admin").ok
    other = "2026-09-07,08:30,09:10,专递课堂,数学,五年级,第三中学,张伟,录播教室1,迎水桥小学/三年级1班,,"
    result = t.import_csv(csv_bytes(other), "b.csv", "admin")
    assert codes(result) == [(2, "classroom_busy")]
    assert "08:00" in result.errors[0].message  # shown in local time


def test_holidays_outside_semester_and_wrong_roles_are_refused(t: Timetable) -> None:
    result = t.import_csv(
        csv_bytes(
            GOOD.replace("2026-09-07", "2026-10-02"),  # National Day
            GOOD.replace("2026-09-07", "2026-08-20"),  # before the semester
            GOOD.replace("2026-09-07", "2026-09-12"),  # a Saturday
            "2026-09-09,08:00,08:40,专递课堂,英语,三年级,迎水桥小学,马丽,三年级1班,香山小学/三年级1班,,",
        ),
        "a.csv",
        "admin",
    )
    found = codes(result)
    assert (2, "on_holiday") in found and (3, "outside_semester") in found and (4, "on_holiday") in found
    assert (5, "unknown_teacher") in found  # 马丽 does not teach at a receiving school


def test_weekly_rows_skip_holidays_and_say_so(t: Timetable) -> None:
    weekly = GOOD.replace(",,", ",,2026-10-12")  # every Monday from 09-07 to 10-12; 10-05 is National Day
    result = t.import_csv(csv_bytes(weekly), "w.csv", "admin")
    assert result.ok and result.lessons_added == 5
    assert [p.code for p in result.warnings] == ["holiday_skipped"]
    assert len({x.series_id for x in t.repo.lessons()}) == 1


def test_too_many_receivers_for_the_kind_is_refused(tmp_path: Path) -> None:
    t = small_county(tmp_path / "db.sqlite3", max_receivers_specialised=1)
    result = t.import_csv(csv_bytes(GOOD), "a.csv", "admin")
    assert codes(result) == [(2, "too_many_receivers")]


def test_dry_run_reports_but_writes_nothing(t: Timetable) -> None:
    result = t.import_csv(csv_bytes(GOOD), "a.csv", "admin", dry_run=True)
    assert result.ok and result.lessons_added == 1 and lesson_count(t) == 0


def test_bandwidth_overload_is_a_warning_not_a_refusal(tmp_path: Path) -> None:
    t = small_county(tmp_path / "db.sqlite3", stream_mbps=60.0)  # two streams into a 100 Mbit/s school at 50 %
    rows = [
        GOOD.replace("迎水桥小学/三年级1班;香山小学/三年级1班", "迎水桥小学/三年级1班"),
        "2026-09-07,08:00,08:40,专递课堂,数学,五年级,第三中学,张伟,录播教室1,迎水桥小学/五年级1班,,",
    ]
    result = t.import_csv(csv_bytes(*rows), "a.csv", "admin")
    assert result.ok and result.lessons_added == 2
    assert [p.code for p in result.warnings] == ["over_bandwidth"]


def test_concurrent_imports_are_serialised(t: Timetable) -> None:
    import threading

    rows = [GOOD.replace("2026-09-07", f"2026-09-{d:02d}") for d in (7, 8, 9, 10, 11)]
    results = []

    def run() -> None:
        results.append(t.import_csv(csv_bytes(*rows), "a.csv", "admin"))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert lesson_count(t) == 5
    assert sum(r.lessons_added for r in results if r.ok) == 5


def _workbook(rows: list[list[object]], title: str = "课表") -> Any:
    from openpyxl import Workbook

    book = Workbook()
    ws = book.active
    ws.title = title
    ws.append([*HEADER.strip().split(","), "课时"])
    for r in rows:
        ws.append(r)
    return book


def _xlsx_bytes(book: Any) -> bytes:
    import io

    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_the_timetable_imports_from_an_xlsx_workbook_with_excel_dates_and_times(t: Timetable) -> None:
    from datetime import date, time

    fields: list[object] = GOOD.split(",")
    as_excel = [date(2026, 9, 7), time(8, 0), time(8, 40), *fields[3:]]
    serial = [46273, 0.3333333333, "08:40", *fields[3:]]  # 2026-09-08 as Excel's serial day number, 08:00
    book = _workbook([as_excel, [None] * 12, serial])
    result = t.import_csv(_xlsx_bytes(book), "课表.xlsx", "admin")
    assert result.ok, result.errors
    assert [x.start.isoformat() for x in t.repo.lessons()] == ["2026-09-07T00:00:00+00:00", "2026-09-08T00:00:00+00:00"]
    again = t.import_csv(_xlsx_bytes(book), "课表.xlsx", "admin")
    assert again.ok and again.lessons_added == 0 and again.lessons_unchanged == 2


def test_a_workbook_with_merged_cells_or_formulas_is_refused_by_sheet_and_row(t: Timetable) -> None:
    fields: list[object] = GOOD.split(",")
    book = _workbook([fields, [*fields[:6], *fields[6:]]])
    ws = book.active
    ws["A3"] = "2026-09-08"
    ws["B3"] = '=TEXT(8/24,"hh:mm")'
    ws["G4"] = "第一小学"
    ws.merge_cells("G3:G4")
    result = t.import_csv(_xlsx_bytes(book), "课表.xlsx", "admin")
    assert not result.ok and t.repo.lessons() == []
    codes = {(p.code, p.sheet, p.line) for p in result.errors}
    assert ("formula", "课表", 3) in codes and ("merged_cells", "课表", 3) in codes
    assert any("B3" in p.message and "粘贴为数值" in p.message_zh for p in result.errors)
