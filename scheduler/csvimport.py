"""Reading a timetable CSV as Excel writes it, into lesson drafts or line-numbered problems.

Accepted: UTF-8 with or without BOM ("CSV UTF-8"), or GB18030/GBK (plain "CSV" on a Chinese Windows);
Chinese or English headers in any order; dates as 2026-09-07 or 2026/9/7; times as 08:00. A row with a
`repeat_until` date stands for the same lesson every week up to that date, holidays skipped.
Nothing here touches the database: names are resolved against a `Directory` the caller builds.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduler.model import Classroom, Community, Kind, LessonDraft, Problem, School, Semester, Teacher
from scheduler.rules.calendar import is_teaching_day
from scheduler.rules.hours import MAX_GIVEN_HOURS
from scheduler.rules.replay import ReplaySource, replay_draft, replay_source_problem
from scheduler.sheets import MAX_BYTES, CsvFormatError, Sheet, decode, read_sheets

__all__ = ["MAX_BYTES", "CsvFormatError", "decode"]  # kept here for the callers that import them from this module

# canonical column -> accepted header spellings (compared case-insensitively, spaces ignored)
HEADERS: Mapping[str, tuple[str, ...]] = {
    "date": ("date", "日期", "上课日期"),
    "start": ("start", "start_time", "开始时间", "开始"),
    "end": ("end", "end_time", "结束时间", "结束"),
    "kind": ("kind", "type", "类型", "课堂类型"),
    "subject": ("subject", "学科", "科目"),
    "grade": ("grade", "年级"),
    "lead_school": ("lead_school", "主讲学校"),
    "lead_teacher": ("lead_teacher", "teacher", "主讲教师", "教师"),
    "lead_classroom": ("lead_classroom", "主讲教室"),
    "receiving_classrooms": ("receiving_classrooms", "receivers", "接收教室", "接收端"),
    "community": ("community", "研修共同体", "共同体"),
    "repeat_until": ("repeat_until", "weekly_until", "每周重复至", "重复至"),
    "hours": ("hours", "lesson_hours", "课时", "课时数"),  # optional: else from duration and the county's standard
    # optional: 直播/live (the default), or 录播:N / replay:N, a replay of lesson N's approved recording
    "delivery": ("delivery", "delivery_mode", "授课方式", "上课方式"),
}
# the header row the program writes (demo, benchmark): each column's Chinese spelling, in HEADERS' order
CHINESE_HEADER: tuple[str, ...] = tuple(next(n for n in names if not n.isascii()) for names in HEADERS.values())
REQUIRED = ("date", "start", "end", "kind", "subject", "lead_school", "lead_teacher", "lead_classroom")
# a replay row takes its kind, subject and lead from the recorded lesson: only these need a value
REPLAY_REQUIRED = ("date", "start", "end", "receiving_classrooms")
LIVE_NAMES = frozenset({"", "live", "直播", "在线", "同步"})
REPLAY_VALUE = re.compile(r"(?:replay|录播)\s*[:：#＃]?\s*(\S*)", re.IGNORECASE)
KIND_NAMES: Mapping[str, Kind] = {
    "specialised": Kind.SPECIALISED,
    "specialized": Kind.SPECIALISED,
    "专递课堂": Kind.SPECIALISED,
    "专递": Kind.SPECIALISED,
    "master": Kind.MASTER,
    "名师课堂": Kind.MASTER,
    "名师": Kind.MASTER,
    "famous_school": Kind.FAMOUS_SCHOOL,
    "名校网络课堂": Kind.FAMOUS_SCHOOL,
    "名校": Kind.FAMOUS_SCHOOL,
}
RECEIVER_SEPARATORS = re.compile(r"[;；、|\n]")


@dataclass
class Directory:
    """Names the timetable may use, resolved to ids. Built once per import from the database."""

    schools: Mapping[str, School]
    classrooms: Mapping[tuple[int, str], Classroom]  # (school id, classroom name)
    teachers: Mapping[tuple[int, str], Teacher]  # (school id, teacher name)
    communities: Mapping[str, Community]
    semesters: Sequence[Semester]
    _teacher_names: dict[int, list[str]] = field(default_factory=dict)
    _room_names: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for sid, name in self.teachers:
            self._teacher_names.setdefault(sid, []).append(name)
        for sid, name in self.classrooms:
            self._room_names.setdefault(sid, []).append(name)

    def semester_of(self, day: date) -> Semester | None:
        for s in self.semesters:
            if s.start <= day <= s.end:
                return s
        return None

    def teacher_names(self, school_id: int) -> list[str]:
        return self._teacher_names.get(school_id, [])

    def room_names(self, school_id: int) -> list[str]:
        return self._room_names.get(school_id, [])


@dataclass(frozen=True)
class ParsedRow:
    line: int
    drafts: tuple[LessonDraft, ...]  # one, or one per week of a weekly row
    skipped_holidays: tuple[date, ...] = ()


@dataclass
class ParsedTimetable:
    rows: list[ParsedRow]
    problems: list[Problem]
    sheet: str = ""  # the workbook sheet it came from ("" for a CSV)


def _norm_header(h: str) -> str:
    return re.sub(r"\s+", "", h).lower()


def map_headers(header: Sequence[str]) -> dict[str, int]:
    spellings = {_norm_header(s): canon for canon, names in HEADERS.items() for s in names}
    found: dict[str, int] = {}
    unknown: list[str] = []
    for i, h in enumerate(header):
        canon = spellings.get(_norm_header(h))
        if canon is None:
            if h.strip():
                unknown.append(h.strip())
            continue
        if canon in found:
            raise CsvFormatError(f"column '{h.strip()}' appears twice", f"列“{h.strip()}”出现了两次")
        found[canon] = i
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        zh_names = dict(zip(HEADERS, CHINESE_HEADER, strict=True))
        wanted = ", ".join(f"{c} ({zh_names[c]})" for c in missing)
        extra = f"; unrecognised columns: {', '.join(unknown)}" if unknown else ""
        extra_zh = f"；无法识别的列：{'、'.join(unknown)}" if unknown else ""
        raise CsvFormatError(
            f"the header row lacks the columns {wanted}{extra}",
            f"表头缺少列：{'、'.join(zh_names[c] for c in missing)}{extra_zh}",
        )
    return found


EXCEL_EPOCH = date(1899, 12, 30)


def parse_date(text: str) -> date:
    """2026-09-07, 2026/9/7, 2026年9月7日, or an Excel serial day number (46272 is 2026-09-07)."""
    serial = re.fullmatch(r"(\d{5})(?:\.0+)?", text.strip())
    if serial and 20000 <= int(serial[1]) <= 80000:
        return EXCEL_EPOCH + timedelta(days=int(serial[1]))
    m = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a date (write 2026-09-07)")
    return date(int(m[1]), int(m[2]), int(m[3]))


def parse_time(text: str) -> time:
    """08:00, 8:00:00, or an Excel time stored as a fraction of a day (0.3333 is 08:00)."""
    fraction = re.fullmatch(r"0?\.\d+", text.strip())
    if fraction:
        minutes = round(float(text) * 24 * 60)
        if minutes < 24 * 60:
            return time(minutes // 60, minutes % 60)
    m = re.fullmatch(r"(\d{1,2})[:：](\d{2})(?::\d{2})?", text.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError(f"'{text}' is not a time of day (write 08:00)")
    return time(int(m[1]), int(m[2]))


def closest(name: str, choices: Sequence[str]) -> tuple[str, str]:
    """A hint naming the closest known name, in English and Chinese ("" when nothing is close)."""
    near = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.4)
    return (f"; did you mean '{near[0]}'?", f"，是不是“{near[0]}”？") if near else ("", "")


ReplayLookup = Callable[[int], ReplaySource | None]  # a lesson id -> the recording a replay of it shows


def parse_timetable(
    data: bytes, directory: Directory, tz: ZoneInfo, replay_source: ReplayLookup | None = None
) -> ParsedTimetable:
    """Every row becomes drafts or problems; the caller imports only if there are no errors.

    The file is a CSV, or an XLSX workbook whose first sheet with a timetable header is read (its
    problems then name the sheet and the row). A replay row (授课方式 录播:N) names lesson N, whose
    recording `replay_source` finds (None: no replays accepted)."""
    sheets = read_sheets(data)
    chosen: Sheet | None = None
    first_error: CsvFormatError | None = None
    for sheet in sheets:
        try:
            columns = map_headers(sheet.header)
        except CsvFormatError as exc:
            first_error = first_error or exc
            continue
        chosen = sheet
        break
    if chosen is None:
        assert first_error is not None
        if len(sheets) > 1:
            raise CsvFormatError(
                f"no sheet of the workbook has a timetable header ({first_error})",
                f"工作簿中没有带课表表头的工作表（{first_error.message_zh}）",
            )
        raise first_error
    rows: list[ParsedRow] = []
    problems: list[Problem] = list(chosen.problems)
    school_names = list(directory.schools)
    for line, record in chosen.rows:
        try:
            rows.append(_parse_row(record, columns, directory, school_names, tz, line, replay_source))
        except RowError as err:
            problems.extend(
                Problem(code, msg, line=line, message_zh=zh, sheet=chosen.name) for code, msg, zh in err.problems
            )
    return ParsedTimetable(rows, problems, chosen.name)


class RowError(Exception):
    """A row's problems as (code, English, Chinese)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        super().__init__("; ".join(m for _, m, _ in problems))
        self.problems = problems


COLUMN_ZH = dict(zip(HEADERS, CHINESE_HEADER, strict=True))


def _parse_row(
    record: Sequence[str],
    columns: Mapping[str, int],
    d: Directory,
    school_names: Sequence[str],
    tz: ZoneInfo,
    line: int,
    replay_source: ReplayLookup | None = None,
) -> ParsedRow:
    def cell(name: str) -> str:
        i = columns.get(name)
        return record[i].strip() if i is not None and i < len(record) else ""

    delivery = cell("delivery")
    if delivery.lower() not in LIVE_NAMES:
        return _parse_replay_row(cell, delivery, d, school_names, tz, line, replay_source)
    errs: list[tuple[str, str, str]] = []
    for name in REQUIRED:
        if not cell(name):
            if name == "date" and (cell("start") or cell("end")):
                errs.append(("time_without_date", "a time without a date", "有时间但没有日期"))
            else:
                errs.append(("missing_value", f"no value for '{name}'", f"“{COLUMN_ZH[name]}”没有填写"))
    if errs:
        raise RowError(errs)

    day, start_t, end_t, until = _when(cell, errs)

    kind = KIND_NAMES.get(cell("kind").lower()) or KIND_NAMES.get(cell("kind"))
    if kind is None:
        errs.append(
            (
                "unknown_kind",
                f"unknown lesson kind '{cell('kind')}' (专递课堂, 名师课堂 or 名校网络课堂)",
                f"未知的课堂类型“{cell('kind')}”（应为专递课堂、名师课堂或名校网络课堂）",
            )
        )

    school = d.schools.get(cell("lead_school"))
    teacher = classroom = None
    if school is None:
        en, zh = closest(cell("lead_school"), school_names)
        errs.append(
            ("unknown_school", f"unknown school '{cell('lead_school')}'{en}", f"没有学校“{cell('lead_school')}”{zh}")
        )
    else:
        teacher = d.teachers.get((school.id, cell("lead_teacher")))
        if teacher is None:
            en, zh = closest(cell("lead_teacher"), d.teacher_names(school.id))
            errs.append(
                (
                    "unknown_teacher",
                    f"no teacher '{cell('lead_teacher')}' at {school.name}{en}",
                    f"{school.name}没有教师“{cell('lead_teacher')}”{zh}",
                )
            )
        classroom = d.classrooms.get((school.id, cell("lead_classroom")))
        if classroom is None:
            en, zh = closest(cell("lead_classroom"), d.room_names(school.id))
            errs.append(
                (
                    "unknown_classroom",
                    f"no classroom '{cell('lead_classroom')}' at {school.name}{en}",
                    f"{school.name}没有教室“{cell('lead_classroom')}”{zh}",
                )
            )

    receivers = _receivers(cell("receiving_classrooms"), d, school_names, errs)

    hours = None
    if cell("hours"):
        text = cell("hours")
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not value.is_integer() or not 1 <= value <= MAX_GIVEN_HOURS:
            errs.append(
                (
                    "bad_hours",
                    f"课时 '{text}' is not a whole number of lesson hours from 1 to {MAX_GIVEN_HOURS}",
                    f"课时“{text}”应为 1 到 {MAX_GIVEN_HOURS} 的整数",
                )
            )
        else:
            hours = int(value)

    community_id = None
    if cell("community"):
        community = d.communities.get(cell("community"))
        if community is None:
            en, zh = closest(cell("community"), list(d.communities))
            errs.append(
                (
                    "unknown_community",
                    f"unknown research community '{cell('community')}'{en}",
                    f"没有研修共同体“{cell('community')}”{zh}",
                )
            )
        elif kind is not None and kind != Kind.MASTER:
            # the same rule as signaling.access.community_may_watch: communities watch master lessons only
            errs.append(
                (
                    "community_not_master",
                    f"a research community watches master lessons (名师课堂) only, not {kind.value} lessons",
                    "研修共同体只观摩名师课堂，其他类型的课不能填写研修共同体",
                )
            )
        else:
            community_id = community.id

    if errs:
        raise RowError(errs)
    assert day and start_t and end_t and kind and teacher and classroom  # for the type checker
    if end_t <= start_t:
        raise RowError(
            [
                (
                    "bad_times",
                    f"the lesson ends ({end_t:%H:%M}) before it starts ({start_t:%H:%M})",
                    f"结束时间（{end_t:%H:%M}）早于开始时间（{start_t:%H:%M}）",
                )
            ]
        )

    semester = d.semester_of(day)
    days, skipped = _days(day, until, semester)
    series = f"{teacher.id}:{classroom.id}:{day.isoformat()}:{start_t:%H%M}" if until is not None else None
    drafts = tuple(
        LessonDraft(
            kind=kind,
            subject=cell("subject"),
            grade=cell("grade"),
            lead_teacher_id=teacher.id,
            lead_classroom_id=classroom.id,
            start=datetime.combine(x, start_t, tz).astimezone(ZoneInfo("UTC")),
            end=datetime.combine(x, end_t, tz).astimezone(ZoneInfo("UTC")),
            receiving_classroom_ids=tuple(receivers),
            community_id=community_id,
            semester_id=semester.id if semester else None,
            series_id=series,
            hours=hours,
        )
        for x in days
    )
    return ParsedRow(line, drafts, tuple(skipped))


def _when(
    cell: Callable[[str], str], errs: list[tuple[str, str, str]]
) -> tuple[date | None, time | None, time | None, date | None]:
    """A row's date, start, end and weekly repeat (None where unreadable: the problem is in `errs`)."""
    day: date | None = None
    start_t: time | None = None
    end_t: time | None = None
    until: date | None = None
    try:
        day = parse_date(cell("date"))
    except ValueError as exc:
        errs.append(("bad_date", str(exc), f"“{cell('date')}”不是日期（请写成 2026-09-07）"))
    for name in ("start", "end"):
        try:
            value = parse_time(cell(name))
        except ValueError as exc:
            errs.append(("bad_time", f"{name}: {exc}", f"{COLUMN_ZH[name]}：“{cell(name)}”不是时间（请写成 08:00）"))
            continue
        if name == "start":
            start_t = value
        else:
            end_t = value
    if cell("repeat_until"):
        try:
            until = parse_date(cell("repeat_until"))
        except ValueError as exc:
            errs.append(
                (
                    "bad_date",
                    f"repeat_until: {exc}",
                    f"每周重复至：“{cell('repeat_until')}”不是日期（请写成 2027-01-15）",
                )
            )
    return day, start_t, end_t, until


def _days(day: date, until: date | None, semester: Semester | None) -> tuple[list[date], list[date]]:
    """The days a row's lesson is on (every week up to `until`), and the non-teaching days skipped."""
    days = [day]
    skipped: list[date] = []
    if until is not None:
        if until < day:
            raise RowError(
                [
                    (
                        "bad_date",
                        f"repeat_until {until} is before the first date {day}",
                        f"每周重复至 {until} 早于首次日期 {day}",
                    )
                ]
            )
        if semester is not None and until > semester.end:
            raise RowError(
                [
                    (
                        "outside_semester",
                        f"repeat_until {until} is after the end of {semester.name}",
                        f"每周重复至 {until} 晚于{semester.name}结束日期",
                    )
                ]
            )
        days = []
        current = day
        while current <= until:
            if semester is not None and not is_teaching_day(semester, current):
                skipped.append(current)
            else:
                days.append(current)
            current += timedelta(days=7)
    return days, skipped


def _receivers(
    text: str, d: Directory, school_names: Sequence[str], errs: list[tuple[str, str, str]]
) -> list[int]:
    """Receiving classrooms written 学校/教室, separated by ；"""
    receivers: list[int] = []
    for item in (x.strip() for x in RECEIVER_SEPARATORS.split(text)):
        if not item:
            continue
        school_name, _, room_name = item.replace("／", "/").rpartition("/")
        rs = d.schools.get(school_name.strip())
        if rs is None:
            target = school_name.strip() or item
            en, zh = closest(target, school_names)
            errs.append(
                (
                    "unknown_school",
                    f"receiving classroom '{item}': unknown school '{target}'{en} (write 学校/教室)",
                    f"接收教室“{item}”：没有学校“{target}”{zh}（请写成 学校/教室）",
                )
            )
            continue
        room = d.classrooms.get((rs.id, room_name.strip()))
        if room is None:
            en, zh = closest(room_name.strip(), d.room_names(rs.id))
            errs.append(
                (
                    "unknown_classroom",
                    f"no classroom '{room_name.strip()}' at {rs.name}{en}",
                    f"{rs.name}没有教室“{room_name.strip()}”{zh}",
                )
            )
            continue
        if room.id in receivers:
            errs.append(
                ("duplicate_receiver", f"receiving classroom '{item}' is listed twice", f"接收教室“{item}”重复列出")
            )
            continue
        receivers.append(room.id)

    return receivers


def _parse_replay_row(
    cell: Callable[[str], str],
    delivery: str,
    d: Directory,
    school_names: Sequence[str],
    tz: ZoneInfo,
    line: int,
    replay_source: ReplayLookup | None,
) -> ParsedRow:
    """A row with 授课方式 录播:N (replay:N): lesson N's approved recording shown to this row's receiving
    classrooms at this row's time; kind, subject, grade and lead are lesson N's."""
    m = REPLAY_VALUE.fullmatch(delivery)
    if m is None or not m[1].isdigit():
        raise RowError(
            [
                (
                    "bad_delivery",
                    f"delivery '{delivery}' is live (直播) or replay:N (录播:N, N the lesson's id)",
                    f"授课方式“{delivery}”应为 直播，或 录播:N（N 为被录制课程的编号）",
                )
            ]
        )
    source_lesson = int(m[1])
    errs: list[tuple[str, str, str]] = []
    for name in REPLAY_REQUIRED:
        if not cell(name):
            errs.append(("missing_value", f"no value for '{name}'", f"“{COLUMN_ZH[name]}”没有填写"))
    if errs:
        raise RowError(errs)
    day, start_t, end_t, until = _when(cell, errs)
    receivers = _receivers(cell("receiving_classrooms"), d, school_names, errs)
    source = replay_source(source_lesson) if replay_source is not None else None
    if source is None:
        errs.append(
            (
                "no_recording",
                f"lesson #{source_lesson} has no recording to replay",
                f"课程 #{source_lesson} 没有可录播的录像",
            )
        )
    else:
        problem = replay_source_problem(source.recording_id, source)
        if problem is not None:
            errs.append((problem.code, f"lesson #{source_lesson}: {problem.message}",
                         f"课程 #{source_lesson}：{problem.message_zh}"))
        elif cell("subject") and cell("subject") != source.lesson.subject:
            errs.append(
                (
                    "replay_mismatch",
                    f"lesson #{source_lesson} is a {source.lesson.subject} lesson, not {cell('subject')}",
                    f"课程 #{source_lesson} 是{source.lesson.subject}课，不是{cell('subject')}课",
                )
            )
    if errs:
        raise RowError(errs)
    assert day and start_t and end_t and source  # for the type checker
    if end_t <= start_t:
        raise RowError(
            [
                (
                    "bad_times",
                    f"the replay ends ({end_t:%H:%M}) before it starts ({start_t:%H:%M})",
                    f"结束时间（{end_t:%H:%M}）早于开始时间（{start_t:%H:%M}）",
                )
            ]
        )
    semester = d.semester_of(day)
    days, skipped = _days(day, until, semester)
    series = f"replay:{source.recording_id}:{day.isoformat()}:{start_t:%H%M}" if until is not None else None
    utc = ZoneInfo("UTC")
    drafts = tuple(
        replay_draft(
            source,
            tuple(receivers),
            datetime.combine(x, start_t, tz).astimezone(utc),
            datetime.combine(x, end_t, tz).astimezone(utc),
            semester.id if semester else None,
            None,
            series,
        )
        for x in days
    )
    return ParsedRow(line, drafts, tuple(skipped))
