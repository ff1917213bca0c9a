"""Conflicts: double bookings, lessons outside the semester or on holidays, schools in the wrong role."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import combinations
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import (
    Classroom,
    Kind,
    Lesson,
    LessonDraft,
    LessonStatus,
    School,
    Semester,
    Teacher,
)
from scheduler.rules.conflicts import (
    Booking,
    booking_conflicts,
    calendar_problems,
    overlapping_pairs,
    overlaps,
    resources_of,
    role_problems,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = datetime(2025, 9, 8, tzinfo=UTC)  # a Monday; 00:00 UTC is 08:00 in Shanghai


def at(hour: int, minute: int = 0) -> datetime:
    """A UTC moment on the test Monday (Shanghai time is 8 hours ahead)."""
    return DAY + timedelta(hours=hour, minutes=minute)


def lesson(
    id: int,
    start: datetime,
    end: datetime,
    *,
    teacher: int = 1,
    room: int = 100,
    receivers: tuple[int, ...] = (200,),
    status: LessonStatus = LessonStatus.SCHEDULED,
    kind: Kind = Kind.SPECIALISED,
) -> Lesson:
    return Lesson(
        id=id,
        kind=kind,
        subject="music",
        grade="3",
        lead_teacher_id=teacher,
        lead_classroom_id=room,
        start=start,
        end=end,
        receiving_classroom_ids=receivers,
        status=status,
    )


def draft(
    start: datetime,
    end: datetime,
    *,
    teacher: int = 1,
    room: int = 100,
    receivers: tuple[int, ...] = (200,),
    kind: Kind = Kind.SPECIALISED,
    community_id: int | None = None,
) -> LessonDraft:
    return LessonDraft(
        kind=kind,
        subject="music",
        grade="3",
        lead_teacher_id=teacher,
        lead_classroom_id=room,
        start=start,
        end=end,
        receiving_classroom_ids=receivers,
        community_id=community_id,
    )


def codes(problems: list) -> list[str]:
    return [p.code for p in problems]


# --- double bookings -----------------------------------------------------------------------------


def test_a_lesson_ending_at_nine_and_one_starting_at_nine_do_not_conflict() -> None:
    first = lesson(1, at(0), at(1))  # 08:00-09:00 local
    assert booking_conflicts(draft(at(1), at(2)), [first]) == []
    assert booking_conflicts(draft(at(-1), at(0)), [first]) == []
    assert not overlaps(at(0), at(1), at(1), at(2))


def test_one_minute_of_overlap_is_a_conflict() -> None:
    first = lesson(1, at(0), at(1))
    problems = booking_conflicts(draft(at(0, 59), at(2)), [first])
    assert {p.code for p in problems} == {"teacher_busy", "classroom_busy"}
    assert all(p.related_lesson_id == 1 for p in problems)
    assert all(p.severity == "error" for p in problems)


def test_the_same_teacher_in_two_places_at_once_is_refused() -> None:
    other = lesson(7, at(0), at(1), teacher=5, room=101, receivers=(201,))
    problems = booking_conflicts(draft(at(0, 30), at(1, 30), teacher=5, room=102, receivers=(202,)), [other])
    assert codes(problems) == ["teacher_busy"]
    assert "#5" in problems[0].message and "#7" in problems[0].message


def test_a_lead_classroom_used_twice_at_once_is_refused() -> None:
    other = lesson(7, at(0), at(1), teacher=5, room=101, receivers=(201,))
    problems = booking_conflicts(draft(at(0), at(1), teacher=6, room=101, receivers=(202,)), [other])
    assert codes(problems) == ["classroom_busy"]


def test_a_receiving_classroom_cannot_receive_two_lessons_at_once() -> None:
    other = lesson(7, at(0), at(1), teacher=5, room=101, receivers=(201, 203))
    problems = booking_conflicts(draft(at(0), at(1), teacher=6, room=102, receivers=(203, 204)), [other])
    assert codes(problems) == ["classroom_busy"]
    assert "#203" in problems[0].message


def test_a_classroom_receiving_one_lesson_cannot_lead_another_at_the_same_time() -> None:
    other = lesson(7, at(0), at(1), teacher=5, room=101, receivers=(201,))
    problems = booking_conflicts(draft(at(0), at(1), teacher=6, room=201, receivers=(202,)), [other])
    assert codes(problems) == ["classroom_busy"]


def test_every_clashing_resource_is_reported() -> None:
    other = lesson(7, at(0), at(1), teacher=5, room=101, receivers=(201, 202))
    problems = booking_conflicts(draft(at(0), at(1), teacher=5, room=101, receivers=(201, 202)), [other])
    assert Counter(codes(problems)) == Counter({"teacher_busy": 1, "classroom_busy": 3})


def test_a_cancelled_lesson_frees_its_teacher_and_classrooms() -> None:
    other = lesson(7, at(0), at(1), status=LessonStatus.CANCELLED)
    assert booking_conflicts(draft(at(0), at(1)), [other]) == []


def test_delivered_and_live_lessons_still_hold_their_classrooms() -> None:
    for status in (LessonStatus.DELIVERED, LessonStatus.LIVE, LessonStatus.OPEN, LessonStatus.MISSED):
        other = lesson(7, at(0), at(1), status=status)
        assert set(codes(booking_conflicts(draft(at(0), at(1)), [other]))) == {
            "teacher_busy",
            "classroom_busy",
        }


def test_a_stored_lesson_does_not_conflict_with_itself() -> None:
    stored = lesson(7, at(0), at(1))
    assert booking_conflicts(stored, [stored]) == []
    moved = lesson(7, at(0, 30), at(1, 30))  # the same lesson being rescheduled
    assert booking_conflicts(moved, [stored]) == []


def test_the_conflict_message_gives_the_other_lessons_time_in_the_districts_zone() -> None:
    other = lesson(7, at(0), at(1))
    [problem, *_] = booking_conflicts(draft(at(0), at(1)), [other], SHANGHAI)
    assert "2025-09-08 08:00–09:00" in problem.message


# --- the calendar ------------------------------------------------------------------------------

SEMESTER = Semester(
    id=1,
    name="2025 autumn",
    start=date(2025, 9, 1),
    end=date(2025, 12, 19),
    holidays=frozenset({date(2025, 10, 1)}),
)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def lesson_on(day: date, hour: int = 9) -> LessonDraft:
    return draft(local(day, hour), local(day, hour, 40))


def test_lessons_on_the_first_and_last_day_of_the_semester_are_accepted() -> None:
    assert calendar_problems(lesson_on(SEMESTER.start), SEMESTER, SHANGHAI) == []
    assert calendar_problems(lesson_on(SEMESTER.end), SEMESTER, SHANGHAI) == []


def test_lessons_a_day_outside_the_semester_are_refused() -> None:
    before = calendar_problems(lesson_on(date(2025, 8, 29)), SEMESTER, SHANGHAI)  # the Friday before
    after = calendar_problems(lesson_on(date(2025, 12, 22)), SEMESTER, SHANGHAI)  # the Monday after
    assert codes(before) == ["outside_semester"]
    assert codes(after) == ["outside_semester"]
    assert "2025-08-29" in before[0].message


def test_a_lesson_on_a_holiday_is_refused_and_the_day_after_is_accepted() -> None:
    problems = calendar_problems(lesson_on(date(2025, 10, 1)), SEMESTER, SHANGHAI)
    assert codes(problems) == ["on_holiday"]
    assert "holiday" in problems[0].message
    assert calendar_problems(lesson_on(date(2025, 10, 2)), SEMESTER, SHANGHAI) == []


def test_a_lesson_on_a_weekend_is_refused() -> None:
    problems = calendar_problems(lesson_on(date(2025, 9, 6)), SEMESTER, SHANGHAI)
    assert codes(problems) == ["on_holiday"]
    assert "weekend" in problems[0].message


def test_the_day_is_judged_in_the_districts_time_zone() -> None:
    # 07:30 on Monday 8 September in Shanghai is still Sunday in UTC: a teaching day, not a weekend.
    monday_early = draft(local(date(2025, 9, 8), 7, 30), local(date(2025, 9, 8), 8, 10))
    assert monday_early.start.astimezone(UTC).weekday() == 6
    assert calendar_problems(monday_early, SEMESTER, SHANGHAI) == []


def test_a_lesson_that_ends_when_it_starts_or_before_is_refused() -> None:
    start = local(date(2025, 9, 8), 9)
    assert codes(calendar_problems(draft(start, start), SEMESTER, SHANGHAI)) == ["bad_times"]
    assert codes(calendar_problems(draft(start, start - timedelta(minutes=1)), SEMESTER, SHANGHAI)) == ["bad_times"]
    one_minute = draft(start, start + timedelta(minutes=1))
    assert calendar_problems(one_minute, SEMESTER, SHANGHAI) == []


def test_a_lesson_across_local_midnight_is_refused() -> None:
    overnight = draft(local(date(2025, 9, 8), 23, 30), local(date(2025, 9, 9), 0, 10))
    assert codes(calendar_problems(overnight, SEMESTER, SHANGHAI)) == ["bad_times"]


def test_a_lesson_without_a_semester_is_refused() -> None:
    assert codes(calendar_problems(lesson_on(date(2025, 9, 8)), None, SHANGHAI)) == ["outside_semester"]


# --- school roles ------------------------------------------------------------------------------

LEAD = School(id=1, county_id=1, name="No. 1 Middle School", is_lead=True)
RURAL = School(id=2, county_id=1, name="Xiaohe Primary", is_receiving=True)
POINT = School(id=3, county_id=1, name="Shanjiao Teaching Point", is_teaching_point=True)
PLAIN = School(id=4, county_id=1, name="Ordinary School")
SCHOOLS = {s.id: s for s in (LEAD, RURAL, POINT, PLAIN)}
LEAD_ROOM = Classroom(id=100, school_id=1, name="Studio")
LEAD_ROOM_2 = Classroom(id=101, school_id=1, name="Room 2")
RURAL_ROOM = Classroom(id=200, school_id=2, name="Grade 3")
POINT_ROOM = Classroom(id=300, school_id=3, name="Only room")
PLAIN_ROOM = Classroom(id=400, school_id=4, name="Grade 3")
PLAIN_ROOM_AS_LEAD = Classroom(id=401, school_id=4, name="Grade 4")
TEACHER = Teacher(id=1, school_id=1, name="Li Hua")


def roles(
    *receiving: Classroom,
    kind: Kind = Kind.SPECIALISED,
    teacher: Teacher = TEACHER,
    lead_room: Classroom = LEAD_ROOM,
    community_id: int | None = None,
) -> list[str]:
    d = draft(
        at(1),
        at(2),
        kind=kind,
        room=lead_room.id,
        receivers=tuple(r.id for r in receiving),
        community_id=community_id,
    )
    return codes(
        role_problems(d, teacher=teacher, lead_classroom=lead_room, receiving=list(receiving), schools=SCHOOLS)
    )


def test_a_lead_school_teaching_a_receiving_school_and_a_teaching_point_is_accepted() -> None:
    assert roles(RURAL_ROOM, POINT_ROOM) == []


def test_a_school_that_is_not_a_lead_school_cannot_lead() -> None:
    teacher = Teacher(id=2, school_id=4, name="Wang Fang")
    assert roles(RURAL_ROOM, teacher=teacher, lead_room=PLAIN_ROOM_AS_LEAD) == ["not_lead_school"]


def test_a_school_that_is_not_a_receiving_school_cannot_receive() -> None:
    assert roles(RURAL_ROOM, PLAIN_ROOM) == ["not_receiving_school"]


def test_a_teacher_of_another_school_cannot_lead_from_this_one() -> None:
    stranger = Teacher(id=3, school_id=2, name="Zhao Lei")
    assert roles(RURAL_ROOM, teacher=stranger) == ["teacher_elsewhere"]


def test_a_lead_school_cannot_receive_its_own_lesson() -> None:
    assert roles(LEAD_ROOM_2) == ["receiver_is_lead"]


def test_specialised_and_famous_school_lessons_need_receiving_classrooms() -> None:
    assert roles(kind=Kind.SPECIALISED) == ["no_receivers"]
    assert roles(kind=Kind.FAMOUS_SCHOOL) == ["no_receivers"]
    assert roles(kind=Kind.FAMOUS_SCHOOL, community_id=9) == ["no_receivers"]


def test_a_master_lesson_needs_a_community_or_classrooms() -> None:
    assert roles(kind=Kind.MASTER) == ["no_receivers"]
    assert roles(kind=Kind.MASTER, community_id=9) == []
    assert roles(RURAL_ROOM, kind=Kind.MASTER) == []


# --- property: the sweep and the single-draft check agree with comparing every pair ---------------

TEACHERS = st.integers(1, 4)
ROOMS = st.integers(1, 6)
STATUSES = st.sampled_from(
    [LessonStatus.SCHEDULED, LessonStatus.SCHEDULED, LessonStatus.DELIVERED, LessonStatus.CANCELLED]
)


@st.composite
def lessons(draw: st.DrawFn, id: int) -> Lesson:
    # Start and length in whole minutes on a short window, so touching and nested intervals are common.
    start = draw(st.integers(0, 180))
    length = draw(st.integers(1, 90))
    room = draw(ROOMS)
    receivers = draw(st.lists(ROOMS.filter(lambda r: r != room), max_size=3, unique=True))
    return lesson(
        id,
        at(0, start),
        at(0, start + length),
        teacher=draw(TEACHERS),
        room=room,
        receivers=tuple(receivers),
        status=draw(STATUSES),
    )


@st.composite
def timetables(draw: st.DrawFn, max_size: int = 12) -> list[Lesson]:
    n = draw(st.integers(0, max_size))
    return [draw(lessons(i)) for i in range(1, n + 1)]


def held(x: Lesson | LessonDraft) -> set[tuple[str, int]]:
    """What a lesson occupies, written out independently of the rule."""
    return {("teacher", x.lead_teacher_id), ("classroom", x.lead_classroom_id)} | {
        ("classroom", c) for c in x.receiving_classroom_ids
    }


def minutes_of(start: datetime, end: datetime) -> set[int]:
    return set(range(int((start - DAY).total_seconds() // 60), int((end - DAY).total_seconds() // 60)))


def bookings_of(timetable: list[Lesson]) -> list[Booking]:
    return [Booking(x.id, r, x.start, x.end) for x in timetable for r in resources_of(x)]


@settings(max_examples=300, deadline=None)
@given(timetables())
def test_overlapping_pairs_finds_exactly_the_double_bookings_of_all_pairs(timetable: list[Lesson]) -> None:
    expected = set()
    for a, b in combinations(timetable, 2):
        if minutes_of(a.start, a.end) & minutes_of(b.start, b.end):
            for resource in held(a) & held(b):
                expected.add((min(a.id, b.id), max(a.id, b.id), resource))
    assert overlapping_pairs(bookings_of(timetable)) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 8), st.integers(0, 3), st.integers(0, 60), st.integers(0, 30)),
        max_size=14,
    )
)
def test_overlapping_pairs_agrees_with_overlaps_even_for_empty_bookings(
    rows: list[tuple[int, int, int, int]],
) -> None:
    # Zero-length bookings (refused elsewhere as bad times) must not make the sweep and `overlaps` disagree.
    bookings = [Booking(key, ("classroom", room), at(0, s), at(0, s + length)) for key, room, s, length in rows]
    expected = {
        (min(a.key, b.key), max(a.key, b.key), a.resource)
        for a, b in combinations(bookings, 2)
        if a.key != b.key and a.resource == b.resource and overlaps(a.start, a.end, b.start, b.end)
    }
    assert overlapping_pairs(bookings) == expected


def rid_of(message: str) -> int:
    return int(re.search(r"#(\d+)", message).group(1))  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(timetables(), lessons(0), st.booleans())
def test_booking_conflicts_reports_exactly_the_clashes_of_all_candidates(
    timetable: list[Lesson], new: Lesson, stored: bool
) -> None:
    # As a stored lesson the draft may meet itself among the candidates (id 1); it must be ignored.
    if stored:
        subject: Lesson | LessonDraft = lesson(
            1,
            new.start,
            new.end,
            teacher=new.lead_teacher_id,
            room=new.lead_classroom_id,
            receivers=new.receiving_classroom_ids,
        )
    else:
        subject = draft(
            new.start,
            new.end,
            teacher=new.lead_teacher_id,
            room=new.lead_classroom_id,
            receivers=new.receiving_classroom_ids,
        )
    expected: Counter[tuple[str, int, int]] = Counter()
    for other in timetable:
        if other.status == LessonStatus.CANCELLED or (stored and other.id == 1):
            continue
        if not minutes_of(subject.start, subject.end) & minutes_of(other.start, other.end):
            continue
        for kind, rid in held(subject) & held(other):
            expected["teacher_busy" if kind == "teacher" else "classroom_busy", rid, other.id] += 1
    problems = booking_conflicts(subject, timetable)
    assert Counter((p.code, rid_of(p.message), p.related_lesson_id) for p in problems) == expected
