"""Replays (录播) in the timetable: only of an approved recording; they hold their receiving classrooms, not
the recorded lesson's teacher or classroom; settled from evidence like a live lesson; counted for their
receiving schools' opening rate and, unless the county says so, not for the recorded lesson's teacher."""

from __future__ import annotations

import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook

from scheduler.model import LessonStatus
from scheduler.recordings import Recordings, ReviewRefused
from scheduler.reports import build_report
from scheduler.rules.recording import RecordingConfig
from scheduler.timetable import LessonRefused, ReplayRefused, Timetable
from tests.scheduler.helpers import GOOD, HEADER, csv_bytes, small_county

AFTER = datetime(2026, 9, 8, tzinfo=UTC)
# Wednesday 2026-09-09 10:00 local (02:00 UTC): the replay's time
REPLAY_AT = datetime(2026, 9, 9, 2, 0, tzinfo=UTC)


def recorded(t: Timetable, tmp_path: Path) -> tuple[Recordings, int, int]:
    """The GOOD lesson (马丽, classroom 1 to classrooms 5 and 7), delivered and recorded: (catalogue, lesson,
    recording)."""
    assert t.import_csv(csv_bytes(GOOD), "a.csv", "admin").ok
    (lesson,) = t.repo.lessons()
    t.record_evidence(lesson.id, 40.0, {5: 40.0}, "test")
    assert t.settle(lesson.id, AFTER) == LessonStatus.DELIVERED
    recs = Recordings(t.db, t.repo, RecordingConfig(), tmp_path / "recordings")
    path = tmp_path / "recordings" / "1.webm"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"webm")
    dump = str(tmp_path / "recordings" / "1.dump")
    rid = recs.started(lesson.id, "lead", dump, lesson.start.timestamp())
    recs.finished(lesson.id, "lead", dump, {"path": str(path), "container": "webm", "duration_s": 2400.0,
                                            "size_bytes": 4, "sha256": "x", "started_at": lesson.start.timestamp()})
    return recs, lesson.id, rid


@pytest.fixture
def t(tmp_path: Path) -> Timetable:
    return small_county(tmp_path / "db.sqlite3")


def test_a_replay_needs_an_existing_recording_approved_for_replay(t: Timetable, tmp_path: Path) -> None:
    recs, _, rid = recorded(t, tmp_path)
    with pytest.raises(ReplayRefused) as refused:
        t.replay_draft(rid + 1, [6], REPLAY_AT)
    assert refused.value.code == "no_recording"
    with pytest.raises(ReplayRefused) as refused:
        t.replay_draft(rid, [6], REPLAY_AT)
    assert refused.value.code == "not_approved"
    assert recs.get(rid).review == "pending"  # type: ignore[union-attr]

    recs.approve(rid, "teacher:2", True, "good model of a reading lesson", ("model",))
    with pytest.raises(ReplayRefused):  # approved as a model lesson only
        t.replay_draft(rid, [6], REPLAY_AT)
    with pytest.raises(ReviewRefused):
        recs.approve(rid, "teacher:2", True, "  ")  # a review needs a reason
    rec = recs.approve(rid, "teacher:2", True, "fits grade 3 progress", ("replay", "model"))
    assert (rec.review, rec.review_uses, rec.reviewed_by) == ("approved", ("replay", "model"), "teacher:2")
    assert rec.to_json()["review"] == "approved"

    draft = t.replay_draft(rid, [6], REPLAY_AT)
    assert draft.replay_of == rid and draft.end - draft.start == timedelta(minutes=40)
    (lesson,), warnings = t.add_lessons([draft])
    assert lesson.replay_of == rid and lesson.kind.value == "specialised" and lesson.subject == "英语"
    assert not lesson.credits_lead and not warnings
    assert t.repo.lesson(lesson.id) == lesson  # the repository round-trips it

    # a refusal withdraws the approval: no more replays of it
    recs.approve(rid, "teacher:2", False, "a pupil's face is shown up close")
    with pytest.raises(ReplayRefused):
        t.add_lessons([draft.__class__(**{**_fields(draft), "start": REPLAY_AT + timedelta(days=1),
                                          "end": REPLAY_AT + timedelta(days=1, minutes=40)})])
    history = recs.reviews(rid)
    assert [h["approved"] for h in history] == [True, True, False]
    with sqlite3.connect(t.db.path) as db, pytest.raises(sqlite3.DatabaseError):
        db.execute("DELETE FROM recording_review")


def _fields(draft: object) -> dict[str, object]:
    return {name: getattr(draft, name) for name in draft.__dataclass_fields__}  # type: ignore[attr-defined]


def test_a_replay_holds_its_classrooms_but_not_the_recorded_teacher_or_classroom(
    t: Timetable, tmp_path: Path
) -> None:
    recs, _, rid = recorded(t, tmp_path)
    recs.approve(rid, "teacher:2", True, "ok")
    # 马丽 teaches live from classroom 1 to classroom 8 at the replay's time: no conflict with the replay
    live = GOOD.replace("2026-09-07,08:00,08:40", "2026-09-09,10:00,10:40").replace(
        "迎水桥小学/三年级1班;香山小学/三年级1班", "香山小学/五年级1班")
    assert t.import_csv(csv_bytes(live), "b.csv", "admin").ok
    (replay,), _ = t.add_lessons([t.replay_draft(rid, [6], REPLAY_AT)])
    # but classroom 6 is taken by the replay
    clash = (live.replace("香山小学/五年级1班", "迎水桥小学/五年级1班").replace("录播教室1", "录播教室2")
             .replace("马丽", "王芳").replace("英语", "音乐"))
    result = t.import_csv(csv_bytes(clash), "c.csv", "admin")
    assert [p.code for p in result.errors] == ["classroom_busy"] and result.errors[0].related_lesson_id == replay.id
    # and a second replay into the same classroom at that time is refused
    with pytest.raises(LessonRefused) as refused:
        t.add_lessons([t.replay_draft(rid, [6, 7], REPLAY_AT + timedelta(minutes=20))])
    assert [p.code for p in refused.value.problems] == ["classroom_busy"]


def _deliver_replay(t: Timetable, recs: Recordings, rid: int) -> int:
    (replay,), _ = t.add_lessons([t.replay_draft(rid, [6], REPLAY_AT)])
    # the replay publisher was on air (as the lead) and classroom 6 attended, as for a live lesson
    t.record_evidence(replay.id, 40.0, {6: 38.0}, "test")
    assert t.settle(replay.id, REPLAY_AT + timedelta(hours=2)) == LessonStatus.DELIVERED
    return replay.id


def test_a_delivered_replay_counts_for_its_receiving_school_and_not_for_the_teacher_by_default(
    t: Timetable, tmp_path: Path
) -> None:
    recs, _, rid = recorded(t, tmp_path)
    recs.approve(rid, "teacher:2", True, "ok")
    replay = _deliver_replay(t, recs, rid)
    assert t.repo.ledger(lesson_id=replay) == []  # no workload for 马丽
    assert [c["classroom_id"] for c in t.repo.credits(replay)] == [6]
    report = build_report(t.db, t.config, t.repo.semesters()[0], (REPLAY_AT + timedelta(days=1)).date())
    schools = {(r["school"], r["role"]): r for r in report.sections["schools"]}
    assert schools[("迎水桥小学", "receiving")]["delivered"] == 2  # the live lesson (classroom 5) and the replay
    assert schools[("第一小学", "lead")]["delivered"] == 1  # only the live lesson
    teacher = next(r for r in report.sections["teachers"] if r["teacher"] == "马丽")
    assert teacher["delivered"] == 1
    workload = next(r for r in report.sections["workload"] if r["teacher"] == "马丽")
    assert (workload["specialised"], workload["weighted_hours"]) == (1, 1.5)


def test_a_county_may_credit_replays_to_the_teacher_at_the_weighted_factor(t: Timetable, tmp_path: Path) -> None:
    recs, _, rid = recorded(t, tmp_path)
    recs.approve(rid, "teacher:2", True, "ok")
    t.set_replay_credit(1, True, "admin")
    replay = _deliver_replay(t, recs, rid)
    (entry,) = t.repo.ledger(lesson_id=replay)
    assert (entry.entry_type, entry.teacher_id, entry.weighted_hours) == ("teacher_workload", 1, 1.5)
    report = build_report(t.db, t.config, t.repo.semesters()[0], (REPLAY_AT + timedelta(days=1)).date())
    teacher = next(r for r in report.sections["teachers"] if r["teacher"] == "马丽")
    assert teacher["delivered"] == 2
    # and a correction to missed reverses both the teacher's entry and the receiving credit
    t.correct(replay, LessonStatus.MISSED, "admin", "the projector was off")
    assert sum(e.base_hours for e in t.repo.ledger(lesson_id=replay)) == 0


def test_a_replay_whose_classrooms_did_not_attend_is_missed(t: Timetable, tmp_path: Path) -> None:
    recs, _, rid = recorded(t, tmp_path)
    recs.approve(rid, "teacher:2", True, "ok")
    (replay,), _ = t.add_lessons([t.replay_draft(rid, [6], REPLAY_AT)])
    t.record_evidence(replay.id, 40.0, {6: 5.0}, "test")
    assert t.settle(replay.id, REPLAY_AT + timedelta(hours=2)) == LessonStatus.MISSED


REPLAY_ROW = "2026-09-09,10:00,10:40,,,,,,,迎水桥小学/五年级1班,,,,录播:{lesson}"


def test_a_timetable_row_schedules_a_replay_and_bad_rows_are_refused_by_line(t: Timetable, tmp_path: Path) -> None:
    recs, lesson, rid = recorded(t, tmp_path)
    header = HEADER.replace("每周重复至\n", "每周重复至,课时,授课方式\n")

    def rows(*lines: str) -> bytes:
        return (header + "".join(x + "\n" for x in lines)).encode()

    # not yet approved: refused, with the line
    result = t.import_csv(rows(REPLAY_ROW.format(lesson=lesson)), "r.csv", "admin")
    assert [(p.code, p.line) for p in result.errors] == [("not_approved", 2)]
    recs.approve(rid, "teacher:2", True, "ok")
    bad = [
        REPLAY_ROW.format(lesson=lesson).replace("录播:", "点播:"),  # line 2: unknown delivery mode
        REPLAY_ROW.format(lesson=999),  # line 3: no such lesson / recording
        REPLAY_ROW.format(lesson=lesson).replace("迎水桥小学/五年级1班", ""),  # line 4: no receivers
        REPLAY_ROW.format(lesson=lesson).replace(",,,,,,,迎", ",,数学,,,,,迎"),  # line 5: not a maths lesson
        REPLAY_ROW.format(lesson=lesson).replace("10:40", "09:40"),  # line 6: ends before it starts
    ]
    result = t.import_csv(rows(*bad), "bad.csv", "admin")
    assert sorted((p.line, p.code) for p in result.errors) == [
        (2, "bad_delivery"), (3, "no_recording"), (4, "missing_value"), (5, "replay_mismatch"), (6, "bad_times")
    ], result.errors
    assert all(p.message_zh for p in result.errors)
    assert t.repo.lessons(start=REPLAY_AT - timedelta(hours=3)) == []  # nothing imported

    # English headers and values, a weekly replay; a live row in the same file
    english = ("date,start,end,kind,subject,grade,lead_school,lead_teacher,lead_classroom,receiving_classrooms,"
               "community,repeat_until,hours,delivery\n")
    live = GOOD.replace("2026-09-07", "2026-09-10") + ",,live"
    replay = "2026-09-09,10:00,10:40,,英语,,,,,迎水桥小学/五年级1班,,2026-09-23,,replay:" + str(lesson)
    data = (english + live + "\n" + replay + "\n").encode()
    result = t.import_csv(data, "ok.csv", "admin")
    assert result.ok, result.errors
    assert result.lessons_added == 4  # the live lesson and three weekly replays
    replays = [x for x in t.repo.lessons() if x.replay_of == rid]
    assert len(replays) == 3 and all(x.receiving_classroom_ids == (6,) and not x.credits_lead for x in replays)
    assert len({x.series_id for x in replays}) == 1
    # the same file again changes nothing
    again = t.import_csv(data, "ok.csv", "admin")
    assert again.ok and again.lessons_added == 0 and again.lessons_unchanged == 4


def test_a_replay_counts_against_its_kind_s_maximum_of_receiving_ends(tmp_path: Path) -> None:
    t = small_county(tmp_path / "db.sqlite3", max_receivers_specialised=2)
    recs, _, rid = recorded(t, tmp_path)
    recs.approve(rid, "teacher:2", True, "ok")
    with pytest.raises(LessonRefused) as refused:
        t.add_lessons([t.replay_draft(rid, [6, 8, 9], REPLAY_AT)])
    assert [p.code for p in refused.value.problems] == ["too_many_receivers"]
    # and on a holiday it is refused as a live lesson would be
    with pytest.raises(LessonRefused) as refused:
        t.add_lessons([t.replay_draft(rid, [6], datetime(2026, 10, 2, 2, 0, tzinfo=UTC))])
    assert [p.code for p in refused.value.problems] == ["on_holiday"]


def test_a_workbook_row_schedules_a_replay(t: Timetable, tmp_path: Path) -> None:
    recs, lesson, rid = recorded(t, tmp_path)
    recs.approve(rid, "teacher:2", True, "ok")
    book = Workbook()
    ws = book.active
    ws.title = "课表"
    ws.append(["日期", "开始时间", "结束时间", "接收教室", "授课方式", "类型", "学科", "主讲学校", "主讲教师",
               "主讲教室"])
    ws.append(["2026-09-09", "10:00", "10:40", "迎水桥小学/五年级1班", f"录播：{lesson}", "", "", "", "", ""])
    ws.append(["2026-09-10", "10:00", "10:40", "迎水桥小学/五年级1班", "录播", "", "", "", "", ""])
    buf = io.BytesIO()
    book.save(buf)
    result = t.import_csv(buf.getvalue(), "课表.xlsx", "admin")
    assert [(p.sheet, p.line, p.code) for p in result.errors] == [("课表", 3, "bad_delivery")]
    ws.delete_rows(3)
    buf = io.BytesIO()
    book.save(buf)
    result = t.import_csv(buf.getvalue(), "课表.xlsx", "admin")
    assert result.ok and result.lessons_added == 1, result.errors
