"""Reading attendance evidence from a classroom recording system's export (CSV or XLSX).

One row per receiving classroom of a lesson: the lesson (its number, or its date, start time, lead
school and lead classroom), the minutes the lead broadcast, the receiving classroom (学校/教室) and
the minutes it attended. A row with the lesson and lead minutes only is fine too. Same rules as every
import: every problem with its line (sheet and row for a workbook), nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from scheduler.csvimport import Directory, closest, parse_date, parse_time
from scheduler.model import Problem
from scheduler.sheets import CsvFormatError, Sheet, read_sheets

HEADERS: Mapping[str, tuple[str, ...]] = {
    "lesson_id": ("lesson_id", "lesson", "课程编号", "课程号"),
    "date": ("date", "日期", "上课日期"),
    "start": ("start", "start_time", "开始时间", "开始"),
    "lead_school": ("lead_school", "主讲学校"),
    "lead_classroom": ("lead_classroom", "主讲教室"),
    "lead_minutes": ("lead_minutes", "主讲时长", "主讲分钟", "主讲时长(分钟)", "主讲时长（分钟）"),
    "classroom": ("classroom", "receiving_classroom", "接收教室"),
    "minutes": ("minutes", "attended_minutes", "出勤时长", "出勤分钟", "出勤时长(分钟)", "出勤时长（分钟）"),
}
TEMPLATE_HEADER = (
    "课程编号",
    "日期",
    "开始时间",
    "主讲学校",
    "主讲教室",
    "主讲时长(分钟)",
    "接收教室",
    "出勤时长(分钟)",
)
MAX_MINUTES = 24 * 60


@dataclass(frozen=True)
class EvidenceRow:
    line: int
    lesson_id: int
    lead_minutes: float | None
    classroom_id: int | None
    minutes: float | None


@dataclass
class ParsedEvidence:
    rows: list[EvidenceRow]
    problems: list[Problem]
    sheet: str = ""


def _norm(h: str) -> str:
    return re.sub(r"\s+", "", h).lower()


def parse_evidence(
    data: bytes,
    directory: Directory,
    tz: ZoneInfo,
    lesson_at: Callable[[int, datetime], int | None],
) -> ParsedEvidence:
    """Rows of evidence with lesson and classroom ids; `lesson_at(lead classroom id, start)` finds a lesson
    named by its place and time."""
    sheets = read_sheets(data)
    spellings = {_norm(s): canon for canon, names in HEADERS.items() for s in names}
    chosen: Sheet | None = None
    columns: dict[str, int] = {}
    for sheet in sheets:
        found = {spellings[_norm(h)]: i for i, h in enumerate(sheet.header) if _norm(h) in spellings}
        by_place = all(c in found for c in ("date", "start", "lead_school", "lead_classroom"))
        if ("lesson_id" in found or by_place) and ("lead_minutes" in found or "minutes" in found):
            chosen, columns = sheet, found
            break
    if chosen is None:
        raise CsvFormatError(
            "no evidence header: the columns are 课程编号 (or 日期, 开始时间, 主讲学校, 主讲教室), "
            "主讲时长(分钟), 接收教室, 出勤时长(分钟)",
            "找不到证据表头：应有 课程编号（或 日期、开始时间、主讲学校、主讲教室）、"
            "主讲时长(分钟)、接收教室、出勤时长(分钟)",
        )
    rows: list[EvidenceRow] = []
    problems: list[Problem] = list(chosen.problems)
    school_names = list(directory.schools)
    for line, record in chosen.rows:

        def cell(name: str, record: list[str] = record) -> str:
            i = columns.get(name)
            return record[i].strip() if i is not None and i < len(record) else ""

        errs: list[tuple[str, str, str]] = []
        lesson_id: int | None = None
        if cell("lesson_id"):
            if cell("lesson_id").isdigit():
                lesson_id = int(cell("lesson_id"))
            else:
                errs.append(("bad_lesson", f"'{cell('lesson_id')}' is not a lesson number", "课程编号应为数字"))
        else:
            lesson_id = _by_place(cell, directory, school_names, tz, lesson_at, errs)
        numbers: dict[str, float | None] = {}
        for name, zh in (("lead_minutes", "主讲时长"), ("minutes", "出勤时长")):
            text = cell(name)
            numbers[name] = None
            if text:
                try:
                    value = float(text)
                except ValueError:
                    value = -1.0
                if not 0 <= value <= MAX_MINUTES:
                    errs.append(
                        (
                            "bad_minutes",
                            f"'{text}' is not minutes from 0 to 1440",
                            f"{zh}“{text}”应为 0 到 1440 的分钟数",
                        )
                    )
                else:
                    numbers[name] = value
        classroom_id = None
        if cell("classroom"):
            school_name, _, room_name = cell("classroom").replace("／", "/").rpartition("/")
            school = directory.schools.get(school_name.strip())
            if school is None:
                en, zh = closest(school_name.strip() or cell("classroom"), school_names)
                errs.append(
                    (
                        "unknown_school",
                        f"receiving classroom '{cell('classroom')}': unknown school{en} (write 学校/教室)",
                        f"接收教室“{cell('classroom')}”：没有这所学校{zh}（请写成 学校/教室）",
                    )
                )
            else:
                room = directory.classrooms.get((school.id, room_name.strip()))
                if room is None:
                    en, zh = closest(room_name.strip(), directory.room_names(school.id))
                    errs.append(
                        (
                            "unknown_classroom",
                            f"no classroom '{room_name.strip()}' at {school.name}{en}",
                            f"{school.name}没有教室“{room_name.strip()}”{zh}",
                        )
                    )
                else:
                    classroom_id = room.id
        if classroom_id is not None and numbers["minutes"] is None:
            errs.append(
                ("missing_value", "a receiving classroom without its attended minutes", "有接收教室但没有出勤时长")
            )
        if classroom_id is None and numbers["minutes"] is not None and not errs:
            errs.append(
                ("missing_value", "attended minutes without the receiving classroom", "有出勤时长但没有接收教室")
            )
        if errs or lesson_id is None:
            problems.extend(Problem(c, m, line=line, message_zh=z, sheet=chosen.name) for c, m, z in errs)
            continue
        rows.append(EvidenceRow(line, lesson_id, numbers["lead_minutes"], classroom_id, numbers["minutes"]))
    return ParsedEvidence(rows, problems, chosen.name)


def _by_place(
    cell: Callable[[str], str],
    directory: Directory,
    school_names: list[str],
    tz: ZoneInfo,
    lesson_at: Callable[[int, datetime], int | None],
    errs: list[tuple[str, str, str]],
) -> int | None:
    missing = [n for n in ("date", "start", "lead_school", "lead_classroom") if not cell(n)]
    if missing:
        errs.append(
            (
                "missing_value",
                "no lesson number, nor its date, start, lead school and classroom",
                "缺少课程编号（或日期、开始时间、主讲学校、主讲教室）",
            )
        )
        return None
    day: date | None = None
    start: time | None = None
    try:
        day = parse_date(cell("date"))
        start = parse_time(cell("start"))
    except ValueError as exc:
        errs.append(("bad_date", str(exc), f"日期或时间无法识别：{exc}"))
        return None
    school = directory.schools.get(cell("lead_school"))
    if school is None:
        en, zh = closest(cell("lead_school"), school_names)
        errs.append(
            ("unknown_school", f"unknown school '{cell('lead_school')}'{en}", f"没有学校“{cell('lead_school')}”{zh}")
        )
        return None
    room = directory.classrooms.get((school.id, cell("lead_classroom")))
    if room is None:
        en, zh = closest(cell("lead_classroom"), directory.room_names(school.id))
        errs.append(
            (
                "unknown_classroom",
                f"no classroom '{cell('lead_classroom')}' at {school.name}{en}",
                f"{school.name}没有教室“{cell('lead_classroom')}”{zh}",
            )
        )
        return None
    moment = datetime.combine(day, start, tz)
    found = lesson_at(room.id, moment)
    if found is None:
        errs.append(
            (
                "unknown_lesson",
                f"no lesson from {school.name} {room.name} at {day} {start:%H:%M}",
                f"{day} {start:%H:%M} {school.name}{room.name}没有课程",
            )
        )
    return found
