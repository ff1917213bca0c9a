"""The recordings' watch: a replay that will not play is reported before its window opens; recordings past
their county's retention period are deleted and audited as the system; a county near its quota is alerted."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from monitoring.alerts import Condition
from monitoring.recording_watch import RecordingWatch
from scheduler.rules.retention import CountyPolicy, Kept, QuotaLevel, expired, usage_by_county
from scheduler.timetable import Timetable
from tests.scheduler.helpers import Clock, small_county
from tests.scheduler.test_replay import REPLAY_AT, recorded


class Published:
    def __init__(self) -> None:
        self.last: list[Condition] = []

    def __call__(self, source: str, conditions: list[Condition]) -> None:
        assert source == "recordings"
        self.last = conditions


def test_retention_and_quota_rules() -> None:
    day = 86400.0
    kept = [Kept(1, 1, 0.0, 600 * 1024**2), Kept(2, 1, 50 * day, 400 * 1024**2),
            Kept(3, 2, 0.0, 10, replay_pending=True), Kept(4, 3, 0.0, 10)]
    policies = {1: CountyPolicy(retention_days=30, quota_mb=1000), 3: CountyPolicy(retention_days=None)}
    # county 1 keeps 30 days; county 2's recording waits for its replay; county 3 uses the default of 365
    assert expired(kept, policies, 365, 60 * day) == [1]
    assert expired(kept, policies, 0, 400 * day) == [1, 2]  # default 0: county 3 keeps its recordings
    (usage,) = usage_by_county(kept, policies, 0.0, 0.9)
    assert (usage.county_id, usage.level) == (1, QuotaLevel.OVER)
    (usage,) = usage_by_county(kept[1:], policies, 0.0, 0.3)
    assert usage.level == QuotaLevel.NEAR


def test_a_replay_whose_file_is_missing_is_reported_before_its_window_and_clears_once_fixed(tmp_path: Path) -> None:
    clock = Clock()
    t = small_county(tmp_path / "db.sqlite3", clock=clock)
    recs, _, rid = recorded(t, tmp_path)
    recs.approve(rid, "teacher:2", True, "ok")
    (replay,), _ = t.add_lessons([t.replay_draft(rid, [6], REPLAY_AT)])
    published = Published()
    watch = RecordingWatch(recs, t, published)

    clock.now = REPLAY_AT - timedelta(hours=2)  # too early to look
    assert watch.check() == []
    path = Path(recs.get(rid).path or "")  # type: ignore[union-attr]
    path.rename(path.with_suffix(".moved"))
    assert watch.check() == []
    clock.now = REPLAY_AT - timedelta(minutes=30)  # its window opens in 20 minutes
    (alert,) = watch.check()
    assert (alert.rule, alert.lesson_id, alert.severity) == ("replay_not_ready", replay.id, "critical")
    assert "缺失" in alert.summary_zh and "missing" in alert.summary_en
    assert alert.county_ids == frozenset({1}) and published.last == [alert]
    path.with_suffix(".moved").rename(path)
    assert watch.check() == [] and published.last == []

    # withdrawn approval is reported the same way
    recs.approve(rid, "teacher:2", False, "withdrawn")
    (alert,) = watch.check()
    assert "no longer approved" in alert.summary_en
    clock.now = REPLAY_AT + timedelta(hours=2)  # the replay has passed
    assert watch.check() == []


def test_recordings_past_retention_are_deleted_and_audited_as_the_system(tmp_path: Path) -> None:
    clock = Clock()
    t: Timetable = small_county(tmp_path / "db.sqlite3", clock=clock)
    recs, lesson, rid = recorded(t, tmp_path)
    path = Path(recs.get(rid).path or "")  # type: ignore[union-attr]
    assert recs.set_policy(1, 30, None)
    watch = RecordingWatch(recs, t, Published())
    made = recs.get(rid).finished_at or 0  # type: ignore[union-attr]
    later = clock.now.fromtimestamp(made, clock.now.tzinfo) + timedelta(days=31)
    assert watch.apply_retention(later - timedelta(days=2)) == []  # 29 days: kept
    assert watch.apply_retention(later) == [rid]
    assert recs.get(rid).state == "deleted" and not path.exists()  # type: ignore[union-attr]
    with sqlite3.connect(t.db.path) as db:
        rows = list(db.execute("SELECT actor, role, lesson_id FROM audit WHERE action = 'delete_recording'"))
    assert rows == [("system", "system", lesson)]


def test_a_county_near_its_quota_is_alerted(tmp_path: Path) -> None:
    t = small_county(tmp_path / "db.sqlite3")
    recs, _, rid = recorded(t, tmp_path)
    with sqlite3.connect(t.db.path) as db:
        db.execute("UPDATE recording SET size_bytes = ? WHERE id = ?", (95 * 1024**2, rid))
    recs.set_policy(1, None, 100)
    published = Published()
    (alert,) = RecordingWatch(recs, t, published).check()
    assert (alert.rule, alert.severity, alert.county_ids) == ("recording_quota", "warning", frozenset({1}))
    assert "95%" in alert.summary_en and "沙坡头区" in alert.summary_zh


def test_a_county_at_its_quota_records_no_new_lesson_and_the_alert_says_so(tmp_path: Path) -> None:
    t = small_county(tmp_path / "db.sqlite3")
    recs, lesson_id, rid = recorded(t, tmp_path)
    (lesson,) = [x for x in t.repo.lessons() if x.id == lesson_id]
    recs.set_choice(lesson_id, True, "admin", "公开课")
    assert recs.records(lesson)
    with sqlite3.connect(t.db.path) as db:
        db.execute("UPDATE recording SET size_bytes = ? WHERE id = ?", (100 * 1024**2, rid))
    recs.set_policy(1, None, 100)
    # full: not recorded, even where an administrator asked for it, until space is freed or the quota raised
    assert not recs.records(lesson)
    (alert,) = RecordingWatch(recs, t, Published()).check()
    assert (alert.rule, alert.severity) == ("recording_quota", "critical")
    assert "not recorded" in alert.summary_en and "不再录制" in alert.summary_zh
    recs.set_policy(1, None, 200)
    assert recs.records(lesson)
