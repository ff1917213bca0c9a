"""The evidence at settlement is complete: a lesson taught to its end is settled from all of it.

Real SQLite database, the real timetable and timed jobs, the real attendance recorder; only the
stats ticks are synthetic (the end-to-end tests have real media). Two ways evidence used to be lost:
the settlement ran before the hub's final evidence write (the last interval never counted), and a
failed write was logged and never retried (a delivered lesson settled as missed).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from monitoring.attendance_recorder import AttendanceRecorder
from scheduler.config import SchedulerConfig
from scheduler.db import Database
from scheduler.jobs import LessonJobs
from scheduler.model import Lesson, LessonStatus
from scheduler.timetable import Timetable
from tests.scheduler.helpers import GOOD, Clock, csv_bytes, small_county


@dataclass
class _Claims:
    teacher_id: int | None = None
    classroom_id: int | None = None


@dataclass
class _Session:
    link: str = "ok"
    claims: _Claims | None = None


def _lesson_taught_to_its_end(tmp_path: Path, busy_timeout_s: float = 5.0) -> tuple[Timetable, Lesson, Clock]:
    clock = Clock()
    path = tmp_path / "county.sqlite3"
    small_county(path, clock).db.close()
    t = Timetable(Database(path, busy_timeout_s=busy_timeout_s), SchedulerConfig(window_close_grace_min=0),
                  clock=clock)
    assert t.import_csv(csv_bytes(GOOD), "t.csv", "admin").ok
    (lesson,) = t.repo.lessons()
    clock.now = lesson.start - timedelta(minutes=1)
    assert t.open_window(lesson.id)
    return t, lesson, clock


def _teach(recorder: AttendanceRecorder, lesson: Lesson, clock: Clock) -> None:
    """The lead on air and one classroom connected, one stats tick a second, up to the window's close."""
    room = lesson.receiving_classroom_ids[0]
    snapshot = {"lead_on_air": True,
                "participants": {f"classroom-{room}": {"role": "receiver", "connection": "connected"}}}
    sessions = {f"classroom-{room}": _Session(claims=_Claims(classroom_id=room))}
    recorder.open(lesson, frozenset())
    while clock.now < lesson.end:
        clock.advance(timedelta(seconds=1))
        recorder.tick(lesson.id, snapshot, sessions)


def _recorder(t: Timetable, clock: Clock) -> AttendanceRecorder:
    # written every 30 s, as the hub used to: the last interval is still in memory at the window's close
    return AttendanceRecorder(t, 1.0, 30.0, wall=lambda: clock().timestamp(), mono=lambda: clock().timestamp())


def test_the_last_interval_before_the_close_counts(tmp_path: Path) -> None:
    t, lesson, clock = _lesson_taught_to_its_end(tmp_path)
    recorder = _recorder(t, clock)
    jobs = LessonJobs(t, tmp_path / "reports", clock=clock)
    jobs.before_settle.append(recorder.before_settle)
    _teach(recorder, lesson, clock)  # nothing written yet: the periodic write has not come round
    jobs.close(lesson.id)  # the settlement job at the window's close, before the room's own close
    after = t.repo.lesson(lesson.id)
    assert after is not None and after.status == LessonStatus.DELIVERED
    with t.db.read() as conn:
        evidence = t.repo.evidence(conn, lesson.id)
    assert evidence.lead_minutes == pytest.approx(41.0, abs=0.05)  # a minute before the start, to the end
    assert evidence.attended_minutes == {lesson.receiving_classroom_ids[0]: pytest.approx(41.0, abs=0.05)}
    assert [c["classroom_id"] for c in t.repo.credits(lesson.id)] == [lesson.receiving_classroom_ids[0]]
    # the timeline is closed: the room's stats that still come before it closes credit nothing more
    clock.advance(timedelta(seconds=5))
    recorder.tick(lesson.id, {"lead_on_air": True, "participants": {}}, {})
    assert recorder.timelines[lesson.id].seconds("lead") == pytest.approx(41 * 60, abs=1)


def test_a_failed_evidence_write_at_close_is_retried_and_the_lesson_is_not_settled_as_missed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t, lesson, clock = _lesson_taught_to_its_end(tmp_path, busy_timeout_s=0.2)
    recorder = _recorder(t, clock)
    jobs = LessonJobs(t, tmp_path / "reports", clock=clock)
    jobs.before_settle.append(recorder.before_settle)
    _teach(recorder, lesson, clock)
    # another program holds the database's write lock through the settlement job: every write fails
    blocker = sqlite3.connect(str(tmp_path / "county.sqlite3"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.WARNING):
            jobs.close(lesson.id)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    still = t.repo.lesson(lesson.id)
    assert still is not None and still.status == LessonStatus.OPEN  # not settled as missed
    assert "final attendance write 3 of 3 failed" in caplog.text and "not settled yet" in caplog.text
    # the next minute's planning settles it, from the whole evidence
    clock.advance(timedelta(minutes=1))
    jobs.plan()
    jobs.stop()
    settled = t.repo.lesson(lesson.id)
    assert settled is not None and settled.status == LessonStatus.DELIVERED
    with t.db.read() as conn:
        assert t.repo.evidence(conn, lesson.id).lead_minutes == pytest.approx(41.0, abs=0.05)
