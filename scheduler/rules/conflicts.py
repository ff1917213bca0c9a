"""Conflicts: double-booked teachers and classrooms, dates outside the semester, wrong school roles.

`booking_conflicts` checks one draft against lessons that might overlap it (the storage layer hands in
only the candidates its indexes find). `overlapping_pairs` finds every double booking inside a batch
(an imported timetable) with one sort and sweep per resource instead of comparing all pairs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from scheduler.model import (
    Classroom,
    Kind,
    Lesson,
    LessonDraft,
    LessonStatus,
    Problem,
    School,
    Semester,
    Teacher,
)
from scheduler.rules.calendar import is_teaching_day, local_date


@dataclass(frozen=True, slots=True)
class Booking:
    """A resource held from start to end by a lesson (or by a draft: key is then its batch index)."""

    key: int
    resource: tuple[str, int]  # ("teacher", id) | ("classroom", id)
    start: datetime
    end: datetime


def resources_of(lesson: Lesson | LessonDraft) -> list[tuple[str, int]]:
    """What a lesson holds while it runs. A replay (录播) holds only its receiving classrooms: the recorded
    lesson's teacher and classroom are free at that time."""
    if lesson.replay_of is not None:
        return [("classroom", c) for c in lesson.receiving_classroom_ids]
    res = [("teacher", lesson.lead_teacher_id), ("classroom", lesson.lead_classroom_id)]
    res.extend(("classroom", c) for c in lesson.receiving_classroom_ids if c != lesson.lead_classroom_id)
    return res


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals: a lesson ending at 09:00 and one starting at 09:00 do not overlap."""
    return a_start < b_end and b_start < a_end


def booking_conflicts(
    draft: LessonDraft | Lesson,
    candidates: Iterable[Lesson],
    tz: ZoneInfo | None = None,
    name_of: Callable[[tuple[str, int]], str] | None = None,
) -> list[Problem]:
    """Double bookings of the draft's teacher, lead classroom or receiving classrooms."""
    own_id = draft.id if isinstance(draft, Lesson) else None
    mine = set(resources_of(draft))
    problems: list[Problem] = []
    for other in candidates:
        if other.id == own_id or other.status == LessonStatus.CANCELLED:
            continue
        if not overlaps(draft.start, draft.end, other.start, other.end):
            continue
        clash = mine.intersection(resources_of(other))
        for kind, rid in sorted(clash):
            span = _span(other.start, other.end, tz)
            who = name_of((kind, rid)) if name_of is not None else None
            if kind == "teacher":
                code, what = "teacher_busy", f"teacher {who or f'#{rid}'} already teaches lesson #{other.id}"
                zh = f"教师{who or f' #{rid} '}此时已有课程 #{other.id}（{span}）"
            else:
                code, what = "classroom_busy", f"classroom {who or f'#{rid}'} is already in lesson #{other.id}"
                zh = f"教室{who or f' #{rid} '}此时已在课程 #{other.id} 中（{span}）"
            problems.append(Problem(code, f"{what} ({span})", related_lesson_id=other.id, message_zh=zh))
    return problems


def overlapping_pairs(bookings: Sequence[Booking]) -> set[tuple[int, int, tuple[str, int]]]:
    """Every (key_a, key_b, resource) with key_a < key_b whose bookings of the resource overlap."""
    by_resource: dict[tuple[str, int], list[Booking]] = defaultdict(list)
    for b in bookings:
        by_resource[b.resource].append(b)
    found: set[tuple[int, int, tuple[str, int]]] = set()
    for resource, items in by_resource.items():
        items.sort(key=lambda b: (b.start, b.end))
        active: list[Booking] = []
        for b in items:
            active = [a for a in active if a.end > b.start]
            for a in active:
                if a.key != b.key:
                    found.add((min(a.key, b.key), max(a.key, b.key), resource))
            active.append(b)
    return found


def calendar_problems(draft: LessonDraft, semester: Semester | None, tz: ZoneInfo) -> list[Problem]:
    if draft.end <= draft.start:
        return [Problem("bad_times", "the lesson ends before it starts", message_zh="结束时间早于开始时间")]
    if semester is None:
        return [Problem("outside_semester", "the lesson is not inside any semester", message_zh="课程不在任何学期内")]
    day = local_date(draft.start, tz)
    if local_date(draft.end, tz) != day:
        return [
            Problem("bad_times", "a lesson must start and end on the same day", message_zh="课程须在同一天内开始和结束")
        ]
    if not semester.start <= day <= semester.end:
        return [
            Problem(
                "outside_semester",
                f"{day.isoformat()} is outside semester {semester.name} "
                f"({semester.start.isoformat()} – {semester.end.isoformat()})",
                message_zh=f"{day.isoformat()} 不在{semester.name}（{semester.start.isoformat()} 至 "
                f"{semester.end.isoformat()}）内",
            )
        ]
    if not is_teaching_day(semester, day):
        holiday = day in semester.holidays
        why = "a holiday" if holiday else "a weekend"
        zh = f"{day.isoformat()} 是{semester.name}的{'假日' if holiday else '周末'}"
        return [Problem("on_holiday", f"{day.isoformat()} is {why} in semester {semester.name}", message_zh=zh)]
    return []


def role_problems(
    draft: LessonDraft,
    *,
    teacher: Teacher,
    lead_classroom: Classroom,
    receiving: Sequence[Classroom],
    schools: Mapping[int, School],
) -> list[Problem]:
    """A school used in a role it does not have, or a lesson without the receivers its kind needs."""
    problems: list[Problem] = []
    lead_school = schools[lead_classroom.school_id]
    # a replay's lead is the recorded lesson's, checked when that lesson was scheduled
    if draft.replay_of is None and not lead_school.is_lead:
        problems.append(
            Problem(
                "not_lead_school",
                f"{lead_school.name} is not a lead school",
                message_zh=f"{lead_school.name}不是主讲学校",
            )
        )
    if teacher.school_id != lead_school.id and draft.replay_of is None:
        problems.append(
            Problem(
                "teacher_elsewhere",
                f"teacher {teacher.name} belongs to {schools[teacher.school_id].name}, "
                f"not to the lead school {lead_school.name}",
                message_zh=f"教师{teacher.name}属于{schools[teacher.school_id].name}，不属于主讲学校{lead_school.name}",
            )
        )
    for room in receiving:
        school = schools[room.school_id]
        if room.school_id == lead_school.id:
            problems.append(
                Problem(
                    "receiver_is_lead",
                    f"{school.name} {room.name} cannot receive its own school's lesson",
                    message_zh=f"{school.name}{room.name}不能接收本校的课程",
                )
            )
        elif not (school.is_receiving or school.is_teaching_point):
            problems.append(
                Problem(
                    "not_receiving_school",
                    f"{school.name} is not a receiving school",
                    message_zh=f"{school.name}不是接收学校",
                )
            )
    if draft.replay_of is not None:
        if not receiving:
            problems.append(
                Problem("no_receivers", "a replay needs receiving classrooms", message_zh="录播需要接收教室")
            )
    elif draft.kind == Kind.MASTER:
        if not receiving and draft.community_id is None:
            problems.append(
                Problem(
                    "no_receivers",
                    "a master lesson needs a research community or classrooms",
                    message_zh="名师课堂需要研修共同体或接收教室",
                )
            )
    elif not receiving:
        problems.append(
            Problem(
                "no_receivers",
                f"a {draft.kind.value} lesson needs receiving classrooms",
                message_zh=f"{'专递课堂' if draft.kind == Kind.SPECIALISED else '名校网络课堂'}需要接收教室",
            )
        )
    return problems


def _span(start: datetime, end: datetime, tz: ZoneInfo | None) -> str:
    if tz is not None:
        start, end = start.astimezone(tz), end.astimezone(tz)
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"
