"""Property: a report as of any date equals the report computed from scratch from the events up to then,
and no number moves without a settlement, ledger, credit or correction row."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.model import LessonStatus
from scheduler.reports import build_report, cutoff_of
from scheduler.timetable import Timetable
from tests.scheduler.helpers import GOOD, Clock, csv_bytes, small_county

LESSONS = [
    GOOD,
    GOOD.replace("2026-09-07", "2026-09-14"),
    GOOD.replace("2026-09-07", "2026-09-21").replace("08:00,08:40", "08:00,09:30"),  # a double period
    "2026-09-08,10:00,10:45,名校网络课堂,数学,五年级,第三中学,张伟,录播教室1,红泉教学点/复式教室,,",
]
LATE = "2026-09-09,10:00,10:45,专递课堂,数学,五年级,第三中学,张伟,录播教室2,香山小学/五年级1班,,"
PROBES = [date(2026, 9, 7), date(2026, 9, 10), date(2026, 9, 16), date(2026, 9, 25), date(2026, 10, 20)]

ops = st.one_of(
    st.tuples(st.just("evidence"), st.integers(0, 4), st.sampled_from([0.0, 20.0, 45.0, 90.0]), st.booleans()),
    st.tuples(st.just("settle_job"), st.integers(0, 4)),
    st.tuples(st.just("correct"), st.integers(0, 4), st.sampled_from(["delivered", "missed"])),
    st.tuples(st.just("attendance"), st.integers(0, 4), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("factor"), st.sampled_from([1.5, 1.8, 2.0])),
    st.tuples(st.just("settle_awaiting"), st.integers(0, 4), st.sampled_from(["evidence", "delivered", "missed"])),
    st.tuples(st.just("import_late")),
    st.tuples(st.just("evidence_file"), st.integers(0, 4), st.booleans()),
)
events = st.lists(st.tuples(st.integers(1, 120), ops), min_size=1, max_size=25)  # (hours later, operation)


def county(clock: Clock) -> Timetable:
    t = small_county(":memory:", clock)  # type: ignore[arg-type]
    assert t.import_csv(csv_bytes(*LESSONS), "课表.csv", "admin").ok
    return t


def apply(t: Timetable, clock: Clock, op: tuple[object, ...]) -> None:
    lessons = t.repo.lessons()

    def lesson(i: object) -> int:
        return lessons[int(i) % len(lessons)].id  # type: ignore[call-overload]

    def attempt(call: Callable[[], object]) -> None:
        with contextlib.suppress(ValueError):  # refused: all or nothing, so it changed nothing
            call()

    kind = op[0]
    if kind == "evidence":
        lid = lesson(op[1])
        x = t.repo.lesson(lid)
        assert x is not None
        rooms = {x.receiving_classroom_ids[0]: float(op[2])} if op[3] else {}  # type: ignore[arg-type]
        attempt(lambda: t.record_evidence(lid, float(op[2]), rooms, "sfu"))  # type: ignore[arg-type]
    elif kind == "settle_job":
        t.settle(lesson(op[1]), clock.now)
    elif kind == "correct":
        attempt(lambda: t.correct(lesson(op[1]), LessonStatus(op[2]), "admin-token", "checked"))
    elif kind == "attendance":
        x = t.repo.lesson(lesson(op[1]))
        assert x is not None
        room = x.receiving_classroom_ids[int(op[2]) % len(x.receiving_classroom_ids)]  # type: ignore[call-overload]
        attempt(lambda: t.correct_attendance(x.id, room, bool(op[3]), "admin-token", "register"))
    elif kind == "factor":
        t.set_county_factor(1, float(op[1]))  # type: ignore[arg-type]
    elif kind == "settle_awaiting":
        attempt(lambda: t.settle_awaiting([lesson(op[1])], str(op[2]), "admin-token", "late entry"))
    elif kind == "import_late":
        t.import_csv(csv_bytes(LATE), "补录.csv", "admin")
    elif kind == "evidence_file":
        lid = lesson(op[1])
        body = f"课程编号,主讲时长(分钟)\n{lid},90\n"
        t.import_evidence(body.encode(), "录播.csv", "admin-token", settle=bool(op[2]))


def records(t: Timetable) -> tuple[int, ...]:
    with t.db.read() as c:
        return tuple(
            c.execute(sql).fetchone()[0]
            for sql in (
                "SELECT count(*) FROM ledger",
                "SELECT count(*) FROM correction",
                "SELECT count(*) FROM receiver_credit",
                "SELECT count(*) FROM lesson WHERE settled_at IS NOT NULL",
                "SELECT count(*) FROM lesson",
                "SELECT count(*) FROM county_factor",
            )
        )


def report(t: Timetable, day: date) -> dict[str, object]:
    return build_report(t.db, t.config, t.repo.semesters()[0], day).to_json()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_a_report_as_of_any_date_is_the_report_of_the_events_up_to_then(
    steps: list[tuple[int, tuple[object, ...]]],
) -> None:
    start = datetime(2026, 9, 6, 22, 0, tzinfo=Clock().now.tzinfo)
    clock = Clock(start)
    t = county(clock)
    times: list[datetime] = []
    end_of_term = date(2027, 1, 15)
    for hours, op in steps:
        clock.advance(timedelta(hours=hours))
        before_records, before = records(t), report(t, end_of_term)
        apply(t, clock, op)
        times.append(clock.now)
        if report(t, end_of_term) != before:
            assert records(t) != before_records, f"{op} moved a number without a record"
    for day in PROBES:
        cutoff = cutoff_of(day, t.config.tz)
        replay_clock = Clock(start)
        fresh = county(replay_clock)
        for (_hours, op), moment in zip(steps, times, strict=True):
            if moment.timestamp() > cutoff:
                break
            replay_clock.now = moment
            apply(fresh, replay_clock, op)
        assert report(t, day) == report(fresh, day), day
