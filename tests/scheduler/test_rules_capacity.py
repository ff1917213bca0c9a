"""Capacity: receiving ends per lesson kind, and warnings when a time slot overloads the network."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Kind, Lesson, LessonDraft, LessonStatus, Problem
from scheduler.rules.capacity import CapacityLimits, receiver_problems, slot_warnings, streams_of

DAY = datetime(2025, 9, 8, tzinfo=UTC)


def at(minute: int) -> datetime:
    return DAY + timedelta(minutes=minute)


def lesson(
    id: int,
    start: int,
    end: int,
    receivers: tuple[int, ...] = (),
    *,
    kind: Kind = Kind.SPECIALISED,
    community_id: int | None = None,
    status: LessonStatus = LessonStatus.SCHEDULED,
) -> Lesson:
    return Lesson(
        id=id,
        kind=kind,
        subject="art",
        grade="4",
        lead_teacher_id=id,
        lead_classroom_id=1000 + id,
        start=at(start),
        end=at(end),
        receiving_classroom_ids=receivers,
        community_id=community_id,
        status=status,
    )


def draft(receivers: int, kind: Kind, community_id: int | None = None) -> LessonDraft:
    return LessonDraft(
        kind=kind,
        subject="art",
        grade="4",
        lead_teacher_id=1,
        lead_classroom_id=1,
        start=at(0),
        end=at(40),
        receiving_classroom_ids=tuple(range(100, 100 + receivers)),
        community_id=community_id,
    )


# --- receiving ends per lesson kind ----------------------------------------------------------------

LIMITS = CapacityLimits()


def test_a_lesson_at_the_maximum_receivers_of_its_kind_is_accepted_and_one_more_is_refused() -> None:
    for kind, maximum in ((Kind.SPECIALISED, 6), (Kind.MASTER, 60), (Kind.FAMOUS_SCHOOL, 100)):
        assert receiver_problems(draft(maximum, kind), LIMITS) == [], kind
        [problem] = receiver_problems(draft(maximum + 1, kind), LIMITS)
        assert problem.code == "too_many_receivers"
        assert problem.severity == "error"
        assert f"{maximum + 1} receiving ends exceed the maximum of {maximum}" in problem.message


def test_a_county_can_configure_the_maximum() -> None:
    limits = CapacityLimits(max_receivers={"specialised": 3, "master": 60, "famous_school": 100})
    assert receiver_problems(draft(3, Kind.SPECIALISED), limits) == []
    assert [p.code for p in receiver_problems(draft(4, Kind.SPECIALISED), limits)] == ["too_many_receivers"]


def test_a_research_communitys_members_count_as_receiving_ends() -> None:
    assert receiver_problems(draft(10, Kind.MASTER, community_id=1), LIMITS, community_size=50) == []
    problems = receiver_problems(draft(10, Kind.MASTER, community_id=1), LIMITS, community_size=51)
    assert [p.code for p in problems] == ["too_many_receivers"]


def test_a_lesson_needs_one_stream_per_receiver_plus_the_leads_view_of_them() -> None:
    assert streams_of(draft(3, Kind.SPECIALISED)) == 4
    assert streams_of(draft(2, Kind.MASTER, community_id=1), community_size=30) == 33


# --- media capacity --------------------------------------------------------------------------------

# Classrooms 1-9 are in school 1, 11-19 in school 2, 21-29 in school 3.
SCHOOL_OF = {c: c // 10 + 1 for c in range(1, 30) if c % 10}
NAMES = {1: "Hongqiao Primary", 2: "Shanjiao Teaching Point", 3: "Xiaohe Primary"}
AMPLE = {1: 1000.0, 2: 1000.0, 3: 1000.0}


def warnings(
    lessons: list[Lesson],
    media: int = 10,
    bandwidth: dict[int, float] | None = None,
    community_sizes: dict[int, int] | None = None,
) -> list[Problem]:
    limits = CapacityLimits(media_capacity_streams=media, stream_mbps=2.5, bandwidth_share=0.5)
    return slot_warnings(
        lessons,
        school_of_classroom=SCHOOL_OF,
        school_bandwidth=bandwidth or AMPLE,
        school_names=NAMES,
        limits=limits,
        community_sizes=community_sizes,
    )


def media_counts(problems: list[Problem]) -> list[int]:
    return [
        int(re.search(r"UTC (\d+) concurrent streams", p.message).group(1))  # type: ignore[union-attr]
        for p in problems
        if p.code == "over_media_capacity"
    ]


def test_concurrent_streams_exactly_at_media_capacity_give_no_warning() -> None:
    # 5 receivers + 1 and 3 receivers + 1: 10 streams on a capacity of 10.
    assert warnings([lesson(1, 0, 40, (1, 2, 3, 4, 5)), lesson(2, 10, 50, (11, 12, 13))]) == []


def test_one_stream_over_media_capacity_warns_once() -> None:
    problems = warnings([lesson(1, 0, 40, (1, 2, 3, 4, 5)), lesson(2, 10, 50, (11, 12, 13, 14))])
    assert [p.code for p in problems] == ["over_media_capacity"]
    assert problems[0].severity == "warning"
    assert "at 2025-09-08 00:10 UTC 11 concurrent streams exceed the media capacity of 10" in problems[0].message


def test_lessons_that_only_touch_do_not_add_up() -> None:
    assert warnings([lesson(1, 0, 40, (1, 2, 3, 4, 5, 6)), lesson(2, 40, 80, (11, 12, 13, 14, 15))]) == []


def test_cancelled_lessons_use_no_capacity() -> None:
    cancelled = lesson(2, 10, 50, (11, 12, 13, 14), status=LessonStatus.CANCELLED)
    assert warnings([lesson(1, 0, 40, (1, 2, 3, 4, 5)), cancelled]) == []


def test_a_community_counts_towards_media_capacity() -> None:
    master = lesson(1, 0, 40, (1,), kind=Kind.MASTER, community_id=7)
    assert warnings([master], community_sizes={7: 8}) == []
    assert media_counts(warnings([master], community_sizes={7: 9})) == [11]


def test_an_overload_that_grows_is_reported_once_at_its_peak() -> None:
    timetable = [
        lesson(1, 0, 60, (1, 2, 3, 4, 5)),  # 6 streams
        lesson(2, 10, 50, (11, 12, 13, 14)),  # 5 more: 11 from 00:10
        lesson(3, 20, 30, (21, 22, 23)),  # 4 more: 15 from 00:20 to 00:30
    ]
    problems = warnings(timetable)
    assert media_counts(problems) == [15]
    assert "at 2025-09-08 00:20 UTC" in problems[0].message


def test_lessons_starting_at_the_same_minute_are_counted_together() -> None:
    timetable = [lesson(i, 0, 40, (i, i + 10, i + 20)) for i in range(1, 5)]  # 4 x 4 streams
    assert media_counts(warnings(timetable)) == [16]


def test_an_overload_that_continues_across_a_lesson_change_is_one_overload() -> None:
    timetable = [
        lesson(1, 0, 90, (1, 2, 3, 4, 5, 6)),  # 7 streams all along
        lesson(2, 0, 45, (11, 12, 13, 14)),  # 5 more until 00:45
        lesson(3, 45, 90, (21, 22, 23, 24)),  # and 5 more from 00:45
    ]
    assert media_counts(warnings(timetable)) == [12]


def test_two_separate_overloads_are_reported_separately() -> None:
    big = (1, 2, 3, 4, 5, 6, 7, 8, 9, 11)  # 11 streams with the lead's view
    problems = warnings([lesson(1, 0, 40, big), lesson(2, 60, 100, big)])
    assert media_counts(problems) == [11, 11]
    assert "00:00" in problems[0].message and "01:00" in problems[1].message


# --- a receiving school's bandwidth --------------------------------------------------------------


def test_a_school_at_exactly_its_live_lesson_bandwidth_gets_no_warning_and_one_classroom_more_does() -> None:
    # 20 Mbit/s with half for live lessons: 10 Mbit/s, four classrooms at 2.5 Mbit/s each.
    thin = {1: 20.0, 2: 1000.0, 3: 1000.0}
    four = [lesson(1, 0, 40, (1, 2)), lesson(2, 0, 40, (3, 4))]
    assert warnings(four, media=100, bandwidth=thin) == []
    five = [*four, lesson(3, 20, 60, (5,))]
    [problem] = warnings(five, media=100, bandwidth=thin)
    assert problem.code == "over_bandwidth"
    assert problem.severity == "warning"
    assert "at 2025-09-08 00:20 UTC Hongqiao Primary receives 5" in problem.message
    assert "(12 Mbit/s) over its 10 Mbit/s" in problem.message


def test_a_bandwidth_overload_is_reported_once_per_school_at_its_peak() -> None:
    thin = {1: 20.0, 2: 10.0, 3: 1000.0}
    timetable = [
        lesson(1, 0, 60, (1, 2, 3, 4, 5)),  # school 1 over from the start
        lesson(2, 10, 30, (6, 7, 11, 12, 13)),  # school 1 grows to 7, school 2 over at 3
        lesson(3, 20, 40, (8,)),  # school 1 peaks at 8
    ]
    problems = warnings(timetable, media=100, bandwidth=thin)
    assert [p.code for p in problems] == ["over_bandwidth", "over_bandwidth"]
    assert "Hongqiao Primary receives 8" in problems[0].message
    assert "00:20" in problems[0].message
    assert "Shanjiao Teaching Point receives 3" in problems[1].message


def test_other_schools_are_not_warned_about() -> None:
    thin = {1: 20.0, 2: 1000.0, 3: 1000.0}
    timetable = [lesson(1, 0, 40, (11, 12, 13, 14, 15, 16, 17, 18, 19))]
    assert warnings(timetable, media=100, bandwidth=thin) == []


# --- property: the sweep agrees with counting minute by minute ------------------------------------

CLASSROOMS = sorted(SCHOOL_OF)


@st.composite
def timetables(draw: st.DrawFn) -> list[Lesson]:
    n = draw(st.integers(0, 10))
    out = []
    for i in range(1, n + 1):
        start = draw(st.integers(0, 120))
        length = draw(st.integers(1, 60))
        receivers = draw(st.lists(st.sampled_from(CLASSROOMS), max_size=6, unique=True))
        community = draw(st.sampled_from([None, None, 1, 2]))
        status = draw(st.sampled_from([LessonStatus.SCHEDULED, LessonStatus.LIVE, LessonStatus.CANCELLED]))
        out.append(lesson(i, start, start + length, tuple(receivers), community_id=community, status=status))
    return out


def episodes(counts: list[int], over: int) -> list[tuple[int, int]]:
    """(first minute at the peak, peak) of every maximal run of minutes above `over`."""
    found: list[tuple[int, int]] = []
    run: tuple[int, int] | None = None
    for minute, n in enumerate([*counts, 0]):
        if n > over:
            if run is None or n > run[1]:
                run = (minute if run is None or n > run[1] else run[0], n)
        elif run is not None:
            found.append(run)
            run = None
    return found


def minute_of(message: str) -> int:
    stamp = re.search(r"at (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", message).group(1)  # type: ignore[union-attr]
    return int((datetime.strptime(stamp, "%Y-%m-%d %H:%M").replace(tzinfo=UTC) - DAY).total_seconds() // 60)


@settings(max_examples=250, deadline=None)
@given(
    timetables(),
    st.integers(1, 25),
    st.lists(st.sampled_from([5.0, 7.5, 10.0, 15.0, 1000.0]), min_size=3, max_size=3),
    st.integers(0, 8),
    st.integers(0, 8),
)
def test_slot_warnings_match_a_minute_by_minute_count(
    timetable: list[Lesson], media: int, bandwidths: list[float], size_1: int, size_2: int
) -> None:
    bandwidth = dict(zip((1, 2, 3), bandwidths, strict=True))
    sizes = {1: size_1, 2: size_2}
    horizon = 200
    streams = [0] * horizon
    per_school: dict[int, list[int]] = defaultdict(lambda: [0] * horizon)
    for x in timetable:
        if x.status == LessonStatus.CANCELLED:
            continue
        first = int((x.start - DAY).total_seconds() // 60)
        last = int((x.end - DAY).total_seconds() // 60)
        for minute in range(first, last):
            streams[minute] += len(x.receiving_classroom_ids) + 1 + sizes.get(x.community_id, 0)  # type: ignore[arg-type]
            for c in x.receiving_classroom_ids:
                per_school[SCHOOL_OF[c]][minute] += 1

    problems = warnings(timetable, media=media, bandwidth=bandwidth, community_sizes=sizes)

    media_found = [
        (minute_of(p.message), n)
        for p, n in zip([p for p in problems if p.code == "over_media_capacity"], media_counts(problems), strict=True)
    ]
    assert media_found == episodes(streams, media)
    for school, name in NAMES.items():
        # A school is over when its classrooms x 2.5 Mbit/s exceed half its bandwidth.
        classrooms_allowed = int(bandwidth[school] * 0.5 // 2.5)
        expected = episodes(per_school[school], classrooms_allowed)
        found = [
            (minute_of(p.message), int(re.search(rf"{name} receives (\d+)", p.message).group(1)))  # type: ignore[union-attr]
            for p in problems
            if p.code == "over_bandwidth" and name in p.message
        ]
        assert found == expected, name
