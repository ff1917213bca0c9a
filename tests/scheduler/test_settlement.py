"""Evidence decides delivery; the ledger only grows; corrections are recorded with who, when and why."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.model import LessonStatus
from scheduler.reports import build_report
from scheduler.timetable import Timetable
from tests.scheduler.helpers import GOOD, csv_bytes, small_county

AFTER = datetime(2026, 9, 8, tzinfo=UTC)  # the day after the lesson in GOOD


@pytest.fixture
def t(tmp_path: Path) -> Timetable:
    t = small_county(tmp_path / "db.sqlite3")
    assert t.import_csv(csv_bytes(GOOD), "a.csv", "admin").ok
    return t


def only_lesson(t: Timetable) -> int:
    (lesson,) = t.repo.lessons()
    return lesson.id


def test_lead_and_one_classroom_at_80_percent_make_the_lesson_delivered_with_weighted_hours(t: Timetable) -> None:
    lid = only_lesson(t)
    room = t.repo.lesson(lid).receiving_classroom_ids[0]  # type: ignore[union-attr]
    t.record_evidence(lid, 32.0, {room: 32.0}, "test")  # 32 of 40 minutes
    assert t.repo.lesson(lid).status == LessonStatus.LIVE  # type: ignore[union-attr]
    assert t.settle(lid, AFTER) == LessonStatus.DELIVERED
    (entry,) = t.repo.ledger(lesson_id=lid)
    assert entry.entry_type == "teacher_workload" and entry.weighted_hours == 1.5


def test_without_attending_classrooms_the_lesson_is_missed_and_credits_nothing(t: Timetable) -> None:
    lid = only_lesson(t)
    t.record_evidence(lid, 40.0, {}, "test")
    assert t.settle(lid, AFTER) == LessonStatus.MISSED
    assert t.repo.ledger(lesson_id=lid) == []


def test_settling_twice_or_too_early_does_nothing(t: Timetable) -> None:
    lid = only_lesson(t)
    room = t.repo.lesson(lid).receiving_classroom_ids[0]  # type: ignore[union-attr]
    t.record_evidence(lid, 40.0, {room: 40.0}, "test")
    assert t.settle(lid, datetime(2026, 9, 7, 0, 50, tzinfo=UTC)) is None  # before end + grace
    assert t.settle(lid, AFTER) == LessonStatus.DELIVERED
    assert t.settle(lid, AFTER) is None
    assert len(t.repo.ledger(lesson_id=lid)) == 1


def test_evidence_totals_never_go_down(t: Timetable) -> None:
    lid = only_lesson(t)
    room = t.repo.lesson(lid).receiving_classroom_ids[0]  # type: ignore[union-attr]
    t.record_evidence(lid, 35.0, {room: 35.0}, "sfu")
    t.record_evidence(lid, 3.0, {room: 1.0}, "late duplicate")
    assert t.settle(lid, AFTER) == LessonStatus.DELIVERED


def test_evidence_for_a_classroom_not_in_the_lesson_is_refused(t: Timetable) -> None:
    with pytest.raises(ValueError, match="not receiving"):
        t.record_evidence(only_lesson(t), 10.0, {999: 10.0}, "test")


def test_a_correction_reverses_the_ledger_without_editing_it(t: Timetable) -> None:
    lid = only_lesson(t)
    room = t.repo.lesson(lid).receiving_classroom_ids[0]  # type: ignore[union-attr]
    t.record_evidence(lid, 40.0, {room: 40.0}, "test")
    t.settle(lid, AFTER)
    t.correct(lid, LessonStatus.MISSED, "李主任", "the recording shows a substitute taught")
    entries = t.repo.ledger(lesson_id=lid)
    assert [e.weighted_hours for e in entries] == [1.5, -1.5]
    assert entries[1].reverses_id == entries[0].id and entries[1].actor == "李主任"
    (corr,) = t.repo.corrections(lid)
    assert corr["actor"] == "李主任" and "substitute" in str(corr["reason"])
    t.correct(lid, LessonStatus.DELIVERED, "李主任", "appeal upheld")
    assert sum(e.weighted_hours for e in t.repo.ledger(lesson_id=lid)) == 1.5
    with pytest.raises(ValueError, match="why"):
        t.correct(lid, LessonStatus.MISSED, "李主任", " ")


def test_ledger_rows_cannot_be_updated_or_deleted_even_with_sql(t: Timetable) -> None:
    lid = only_lesson(t)
    room = t.repo.lesson(lid).receiving_classroom_ids[0]  # type: ignore[union-attr]
    t.record_evidence(lid, 40.0, {room: 40.0}, "test")
    t.settle(lid, AFTER)
    for sql in ("UPDATE ledger SET weighted_hours = 99", "DELETE FROM ledger"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"), t.db.write() as c:
            c.execute(sql)
    assert t.repo.ledger(lesson_id=lid)[0].weighted_hours == 1.5


def test_famous_school_lessons_credit_the_lead_school_in_the_report(tmp_path: Path) -> None:
    t = small_county(tmp_path / "db.sqlite3")
    row = GOOD.replace("专递课堂", "名校网络课堂")
    assert t.import_csv(csv_bytes(row), "a.csv", "admin").ok
    lid = only_lesson(t)
    room = t.repo.lesson(lid).receiving_classroom_ids[0]  # type: ignore[union-attr]
    t.record_evidence(lid, 40.0, {room: 40.0}, "test")
    t.settle(lid, AFTER)
    semester = t.repo.semesters()[0]
    report = build_report(t.db, t.config, semester, AFTER.date())
    assert report.sections["famous_school"] == [
        {"school_id": 1, "school": "第一小学", "county": "沙坡头区", "lessons": 1, "credit_hours": 1.0}
    ]
    assert report.sections["workload"][0]["weighted_hours"] == 0  # not weighted for the teacher
    teacher = next(r for r in report.sections["teachers"] if r["teacher"] == "马丽")
    assert teacher["delivered"] == 1  # but it counts toward her online-lesson minimum


def test_a_county_factor_below_1_5_is_refused_and_a_higher_one_applies(t: Timetable) -> None:
    from scheduler.rules.workload import FactorTooLow

    with pytest.raises(FactorTooLow):
        t.set_county_factor(1, 1.4)
    t.set_county_factor(1, 2.0)
    lid = only_lesson(t)
    room = t.repo.lesson(lid).receiving_classroom_ids[0]  # type: ignore[union-attr]
    t.record_evidence(lid, 40.0, {room: 40.0}, "test")
    t.settle(lid, AFTER)
    assert t.repo.ledger(lesson_id=lid)[0].weighted_hours == 2.0


def test_report_counts_receiving_schools_only_where_a_classroom_attended(t: Timetable) -> None:
    lid = only_lesson(t)
    first, second = t.repo.lesson(lid).receiving_classroom_ids  # type: ignore[union-attr]
    t.record_evidence(lid, 40.0, {first: 40.0, second: 5.0}, "test")
    t.settle(lid, AFTER + timedelta(hours=1))
    report = build_report(t.db, t.config, t.repo.semesters()[0], AFTER.date())
    receiving = {r["school"]: r for r in report.sections["schools"] if r["role"] == "receiving"}
    assert receiving["迎水桥小学"]["delivered"] == 1
    assert receiving["香山小学"]["delivered"] == 0 and receiving["香山小学"]["missed"] == 1


def test_a_master_lesson_for_a_research_community_is_delivered_from_its_members_attendance(tmp_path: Path) -> None:
    t = small_county(tmp_path / "db.sqlite3")
    row = "2026-09-07,08:00,08:40,名师课堂,英语,三年级,第一小学,马丽,录播教室1,,英语研修共同体,"
    result = t.import_csv(csv_bytes(row), "a.csv", "admin")
    assert result.ok, result.errors
    lid = only_lesson(t)
    member = t.repo.communities()[0].member_teacher_ids[1]
    with pytest.raises(ValueError, match="not members"):
        t.record_evidence(lid, 40.0, {}, "test", teachers={3: 40.0})  # 张伟 is not in the community
    t.record_evidence(lid, 40.0, {}, "test", teachers={member: 35.0})
    assert t.settle(lid, AFTER) == LessonStatus.DELIVERED
    assert t.repo.ledger(lesson_id=lid)[0].weighted_hours == 1.5
