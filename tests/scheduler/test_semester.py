"""An administrator's semester: reports as of past dates, late entry, and numbers that move only by a record."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.model import LessonStatus
from scheduler.reports import build_report
from scheduler.timetable import Timetable
from tests.scheduler.helpers import GOOD, Clock, csv_bytes, small_county

MONDAY = "2026-09-07"


def row(day: str, start: str = "08:00", end: str = "08:40", extra: str = "") -> str:
    return GOOD.replace(MONDAY, day).replace("08:00,08:40", f"{start},{end}") + extra


def receiving(report_rows: list[dict[str, object]], school: str) -> dict[str, object]:
    return next(r for r in report_rows if r["role"] == "receiving" and r["school"] == school)


def teacher_row(t: Timetable, day: date, name: str = "马丽") -> dict[str, object]:
    report = build_report(t.db, t.config, t.repo.semesters()[0], day)
    return next(r for r in report.sections["teachers"] if r["teacher"] == name)


def deliver(t: Timetable, clock: Clock, lesson_id: int, *, attend: bool = True) -> None:
    """Evidence during the lesson, then settlement at its window's close, as the timed jobs do."""
    lesson = t.repo.lesson(lesson_id)
    assert lesson is not None
    clock.now = lesson.end
    minutes = (lesson.end - lesson.start).total_seconds() / 60
    rooms = {lesson.receiving_classroom_ids[0]: minutes} if attend else {}
    t.record_evidence(lesson_id, minutes, rooms, "sfu")
    clock.now = t.window(lesson)[1]
    t.settle(lesson_id, clock.now)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def t(tmp_path: Path, clock: Clock) -> Timetable:
    return small_county(tmp_path / "db.sqlite3", clock)


def test_a_report_as_of_a_past_date_counts_only_the_lessons_settled_by_then(t: Timetable, clock: Clock) -> None:
    assert t.import_csv(csv_bytes(row(MONDAY), row("2026-09-14"), row("2026-09-21")), "a.csv", "admin").ok
    first, second, third = (x.id for x in t.repo.lessons())
    for lid in (first, second, third):
        deliver(t, clock, lid)
    # as of the 10th only the first lesson had been given; the later two are still ahead
    early = teacher_row(t, date(2026, 9, 10))
    assert (early["delivered"], early["remaining"]) == (1, 2)
    report = build_report(t.db, t.config, t.repo.semesters()[0], date(2026, 9, 10))
    assert receiving(report.sections["schools"], "迎水桥小学")["delivered"] == 1
    assert report.sections["workload"][0]["weighted_hours"] == 1.5
    late = teacher_row(t, date(2026, 9, 30))
    assert (late["delivered"], late["remaining"]) == (3, 0)


def test_a_report_as_of_a_past_date_ignores_corrections_made_afterwards(t: Timetable, clock: Clock) -> None:
    assert t.import_csv(csv_bytes(row(MONDAY)), "a.csv", "admin").ok
    (lesson,) = t.repo.lessons()
    deliver(t, clock, lesson.id)
    clock.now = datetime(2026, 10, 20, tzinfo=UTC)
    t.correct(lesson.id, LessonStatus.MISSED, "李主任", "a substitute taught")
    assert teacher_row(t, date(2026, 9, 30))["delivered"] == 1  # what the district knew on 30 September
    assert teacher_row(t, date(2026, 10, 30))["delivered"] == 0
    september = build_report(t.db, t.config, t.repo.semesters()[0], date(2026, 9, 30))
    assert september.sections["workload"][0]["weighted_hours"] == 1.5


def test_a_lesson_entered_after_its_time_waits_for_evidence_and_evidence_sent_afterwards_counts(
    t: Timetable, clock: Clock
) -> None:
    clock.now = datetime(2026, 9, 20, tzinfo=UTC)  # the first two weeks are typed in late
    assert t.import_csv(csv_bytes(row(MONDAY), row("2026-09-14"), row("2026-09-28")), "a.csv", "admin").ok
    past, other, future = t.repo.lessons()
    assert [x.status for x in (past, other, future)] == [
        LessonStatus.AWAITING_EVIDENCE,
        LessonStatus.AWAITING_EVIDENCE,
        LessonStatus.SCHEDULED,
    ]
    assert [x.id for x in t.repo.unsettled(clock.now + timedelta(days=30))] == [future.id]  # no job settles them
    assert t.settle(past.id, clock.now) is None
    t.record_evidence(past.id, 40.0, {past.receiving_classroom_ids[0]: 39.0}, "recording system")
    (settled,) = t.settle_awaiting([past.id], "evidence", "admin-token", "recordings of week 1")
    assert settled.status == LessonStatus.DELIVERED
    (done,) = t.settle_awaiting([other.id], "missed", "admin-token", "no recording exists")
    assert done.status == LessonStatus.MISSED
    (corr,) = t.repo.corrections(other.id)
    assert (corr["kind"], corr["from_status"], corr["to_status"], corr["reason"]) == (
        "settlement",
        "awaiting_evidence",
        "missed",
        "no recording exists",
    )
    with pytest.raises(ValueError, match="not awaiting evidence"):
        t.settle_awaiting([past.id, future.id], "missed", "admin-token", "all of them")
    assert t.repo.lesson(future.id).status == LessonStatus.SCHEDULED  # type: ignore[union-attr]


def test_bulk_settlement_is_all_or_nothing_and_one_audit_row(t: Timetable, clock: Clock) -> None:
    clock.now = datetime(2026, 9, 30, tzinfo=UTC)
    assert t.import_csv(csv_bytes(row(MONDAY), row("2026-09-14"), row("2026-09-21")), "a.csv", "admin").ok
    ids = [x.id for x in t.repo.lessons()]
    with pytest.raises(ValueError, match="why"):
        t.settle_awaiting(ids, "delivered", "admin-token", " ")
    lessons = t.settle_awaiting(ids, "delivered", "admin-token", "paper register signed by the head")
    assert {x.status for x in lessons} == {LessonStatus.DELIVERED}
    with t.db.read() as c:
        rows = c.execute("SELECT actor, action, reason FROM audit WHERE action = 'settle'").fetchall()
    assert len(rows) == 1 and rows[0][0] == "admin-token" and "3 delivered" in rows[0][2]
    # delivered without any recorded attendance: every receiving classroom is credited
    report = build_report(t.db, t.config, t.repo.semesters()[0], date(2026, 9, 30))
    assert receiving(report.sections["schools"], "香山小学")["delivered"] == 3


def test_attendance_after_settlement_changes_no_count_and_leaves_an_audit_row(t: Timetable, clock: Clock) -> None:
    assert t.import_csv(csv_bytes(row(MONDAY)), "a.csv", "admin").ok
    (lesson,) = t.repo.lessons()
    _first, second = lesson.receiving_classroom_ids
    deliver(t, clock, lesson.id)  # only the first classroom attended
    before = build_report(t.db, t.config, t.repo.semesters()[0], date(2026, 9, 30)).sections["schools"]
    assert receiving(before, "香山小学")["delivered"] == 0
    t.record_evidence(lesson.id, 40.0, {}, "sfu")  # a closing room's last report: changes nothing, no audit row
    clock.advance(timedelta(days=2))
    t.record_evidence(lesson.id, 40.0, {second: 40.0}, "late upload")
    after = build_report(t.db, t.config, t.repo.semesters()[0], date(2026, 9, 30)).sections["schools"]
    assert after == before
    with t.db.read() as c:
        (action,) = c.execute("SELECT action FROM audit WHERE lesson_id = ?", (lesson.id,)).fetchone()
    assert action == "evidence_after_settlement"
    # the way to count it: a correction of that classroom's attendance, recorded with who and why
    t.correct_attendance(lesson.id, second, True, "admin-token", "the classroom's recording shows the pupils")
    fixed = build_report(t.db, t.config, t.repo.semesters()[0], date(2026, 9, 30)).sections["schools"]
    assert receiving(fixed, "香山小学")["delivered"] == 1
    kinds = [(c["kind"], c["classroom_id"], c["from_status"], c["to_status"]) for c in t.repo.corrections(lesson.id)]
    assert kinds == [("attendance", second, "absent", "attended")]
    with pytest.raises(ValueError, match="already counted"):
        t.correct_attendance(lesson.id, second, True, "admin-token", "again")


def test_a_correction_to_delivered_credits_the_receiving_schools_too(t: Timetable, clock: Clock) -> None:
    assert t.import_csv(csv_bytes(row(MONDAY)), "a.csv", "admin").ok
    (lesson,) = t.repo.lessons()
    deliver(t, clock, lesson.id, attend=False)
    assert t.repo.lesson(lesson.id).status == LessonStatus.MISSED  # type: ignore[union-attr]
    clock.advance(timedelta(days=1))
    t.correct(lesson.id, LessonStatus.DELIVERED, "admin-token", "taught; the SFU was down, recording attached")
    schools = build_report(t.db, t.config, t.repo.semesters()[0], date(2026, 9, 30)).sections["schools"]
    assert receiving(schools, "迎水桥小学")["delivered"] == 1 and receiving(schools, "香山小学")["delivered"] == 1
    clock.advance(timedelta(days=1))
    t.correct(lesson.id, LessonStatus.MISSED, "admin-token", "appeal withdrawn")
    schools = build_report(t.db, t.config, t.repo.semesters()[0], date(2026, 9, 30)).sections["schools"]
    assert receiving(schools, "迎水桥小学")["delivered"] == 0 and receiving(schools, "迎水桥小学")["missed"] == 1


def test_a_correction_after_the_factor_changed_books_the_factor_of_the_lessons_date(t: Timetable, clock: Clock) -> None:
    assert t.import_csv(csv_bytes(row(MONDAY)), "a.csv", "admin").ok
    (lesson,) = t.repo.lessons()
    deliver(t, clock, lesson.id, attend=False)  # missed
    clock.now = datetime(2026, 11, 2, tzinfo=UTC)
    t.set_county_factor(1, 2.0)  # from 2 November on
    t.correct(lesson.id, LessonStatus.DELIVERED, "admin-token", "recording found")
    (entry,) = t.repo.ledger(lesson_id=lesson.id)
    assert entry.factor == 1.5 and entry.weighted_hours == 1.5  # the factor in force on 7 September
    assert t.repo.counties()[0].workload_factor == 2.0


def test_corrections_are_in_the_audit_trail(t: Timetable, clock: Clock) -> None:
    assert t.import_csv(csv_bytes(row(MONDAY), row("2026-09-14")), "a.csv", "admin").ok
    a, b = t.repo.lessons()
    deliver(t, clock, a.id)
    deliver(t, clock, b.id)
    t.correct(a.id, LessonStatus.MISSED, "admin-token", "substitute")
    with pytest.raises(ValueError, match="already delivered"):
        t.correct_many([a.id, b.id], LessonStatus.DELIVERED, "admin-token", "both confirmed")
    assert t.repo.lesson(a.id).status == LessonStatus.MISSED  # type: ignore[union-attr]  # all or nothing
    t.correct_many([b.id], LessonStatus.MISSED, "admin-token", "bulk: register lost")
    with t.db.read() as c:
        rows = c.execute("SELECT actor, action, lesson_id, reason FROM audit WHERE action = 'correction'").fetchall()
    assert [(r[0], r[2]) for r in rows] == [("admin-token", a.id), ("admin-token", b.id)]
    assert "delivered -> missed" in rows[0][3]


def test_a_double_period_counts_two_lesson_hours_and_a_column_can_say_otherwise(t: Timetable, clock: Clock) -> None:
    double = row(MONDAY, "08:00", "09:30")  # 90 minutes at the 40-minute standard: 2 课时
    assert t.import_csv(csv_bytes(double), "a.csv", "admin").ok
    (lesson,) = t.repo.lessons()
    assert lesson.hours == 2
    deliver(t, clock, lesson.id)
    (entry,) = t.repo.ledger(lesson_id=lesson.id)
    assert (entry.base_hours, entry.weighted_hours) == (2.0, 3.0)
    assert teacher_row(t, date(2026, 9, 30))["delivered"] == 2
    t.set_standard_minutes(1, 45)
    header = "日期,开始时间,结束时间,类型,学科,年级,主讲学校,主讲教师,主讲教室,接收教室,研修共同体,每周重复至,课时\n"
    given = row("2026-09-08", "08:00", "08:45", ",3")
    result = t.import_csv(("\ufeff" + header + given + "\n").encode(), "b.csv", "admin")
    assert result.ok, result.errors
    assert [x.hours for x in t.repo.lessons()] == [2, 3]
    bad = row("2026-09-09", "08:00", "08:45", ",lots")
    result = t.import_csv(("\ufeff" + header + bad + "\n").encode(), "c.csv", "admin")
    assert not result.ok and result.errors[0].code == "bad_hours" and result.errors[0].line == 2
    with pytest.raises(ValueError, match="whole minutes"):
        t.set_standard_minutes(1, 5)


EVIDENCE_HEADER = "课程编号,日期,开始时间,主讲学校,主讲教室,主讲时长(分钟),接收教室,出勤时长(分钟)\n"


def test_an_attendance_file_attaches_evidence_by_line_all_or_nothing_and_settles(t: Timetable, clock: Clock) -> None:
    clock.now = datetime(2026, 9, 30, tzinfo=UTC)
    assert t.import_csv(csv_bytes(row(MONDAY), row("2026-09-14")), "a.csv", "admin").ok
    a, b = t.repo.lessons()
    bad = (
        EVIDENCE_HEADER
        + f"{a.id},,,,,40,迎水桥小学/三年级1班,38\n"
        + ",2026-09-14,08:00,第一小学,录播教师1,40,,\n"  # a typo in the lead classroom
        + f"{b.id},,,,,40,香山小学/五年级1班,30\n"  # not a receiving classroom of that lesson
        + "999,,,,,40,,\n"
    )
    result = t.import_evidence(("\ufeff" + bad).encode(), "录播.csv", "admin-token", settle=True)
    assert [(p.line, p.code) for p in result.errors] == [
        (3, "unknown_classroom"),
        (4, "not_receiving"),
        (5, "unknown_lesson"),
    ]
    assert "录播教室1" in result.errors[0].message_zh  # the closest name
    assert t.repo.evidence(t.db.conn, a.id).lead_minutes == 0  # nothing written
    good = (
        EVIDENCE_HEADER
        + f"{a.id},,,,,40,迎水桥小学/三年级1班,38\n"
        + ",2026-09-14,08:00,第一小学,录播教室1,12,香山小学/三年级1班,10\n"
    )
    result = t.import_evidence(good.encode("gbk"), "录播.csv", "admin-token", settle=True)
    assert result.ok and (result.lessons, result.settled) == (2, 2), result.errors
    assert [x.status for x in t.repo.lessons()] == [LessonStatus.DELIVERED, LessonStatus.MISSED]
    again = t.import_evidence(good.encode("gbk"), "录播.csv", "admin-token", settle=True)
    assert again.ok and again.unchanged == 2 and again.lessons == 0  # the same file twice changes nothing
    more = EVIDENCE_HEADER + f"{b.id},,,,,40,香山小学/三年级1班,40\n"
    refused = t.import_evidence(more.encode(), "late.csv", "admin-token")
    assert [p.code for p in refused.errors] == ["settled"]  # settled means settled: correct it instead


def test_a_new_standard_lesson_length_applies_to_new_lessons_and_a_reimport_still_changes_nothing(
    t: Timetable,
) -> None:
    hour = row(MONDAY, "08:00", "09:00")  # 60 minutes: 2 课时 at 40, 1 at 45
    assert t.import_csv(csv_bytes(hour), "a.csv", "admin").ok
    t.set_standard_minutes(1, 45)
    again = t.import_csv(csv_bytes(hour, row("2026-09-08", "08:00", "09:00")), "a.csv", "admin")
    assert again.ok and again.lessons_unchanged == 1 and again.lessons_added == 1, again.errors
    assert [x.hours for x in t.repo.lessons()] == [2, 1]
