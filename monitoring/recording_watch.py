"""The recordings' watch: replays checked before their window opens, retention, and counties' disk quotas.

Run by the scheduler's timed jobs once a minute (`LessonJobs.every_minute`):

- a replay whose window opens within `[recording] replay_check_min` is checked: its recording still
  exists, its file is on the disk, it is still approved for replay. If not, a `replay_not_ready` alert
  (critical) goes to the technicians of its receiving classrooms' counties while there is still time;
  it clears once fixed or once the replay has passed;
- recordings past their county's retention period are deleted (files and catalogue), audited as the
  system (`scheduler/rules/retention.py`);
- a county whose recordings use more than `quota_warn_share` of its quota raises `recording_quota`
  (warning; critical at the quota, from which its new lessons are not recorded: `Recordings.records`).

The rules that make conditions are pure (`watch_conditions`); `RecordingWatch` is the thin shell.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from monitoring.alerts import Condition, Severity
from scheduler.model import Lesson
from scheduler.recordings import Recordings
from scheduler.rules.replay import ReplaySource, replay_due_problem
from scheduler.rules.retention import CountyUsage, QuotaLevel, expired, usage_by_county
from scheduler.timetable import Timetable

log = logging.getLogger(__name__)

SOURCE = "recordings"


@dataclass(frozen=True, slots=True)
class DueReplay:
    lesson: Lesson
    opens: datetime
    problem: tuple[str, str, str] | None  # (code, English, Chinese) of `replay_due_problem`
    county_ids: frozenset[int]


def watch_conditions(
    due: Sequence[DueReplay], usage: Sequence[CountyUsage], county_names: Mapping[int, str], tz: ZoneInfo
) -> list[Condition]:
    """The alerts' conditions: replays that will not play, counties near or over their quota."""
    out: list[Condition] = []
    for d in due:
        if d.problem is None:
            continue
        _code, en, zh = d.problem
        at = d.opens.astimezone(tz).strftime("%m-%d %H:%M")
        name = f"#{d.lesson.id} {d.lesson.subject}"
        out.append(Condition(
            "replay_not_ready", f"replay_not_ready:{d.lesson.id}", Severity.CRITICAL, 0.0, d.lesson.id,
            f"lesson-{d.lesson.id}", name, f"录播课程 {name}（{at} 开始）无法播放：{zh}",
            f"replay {name} (window opens {at}) will not play: {en}", None, d.county_ids))
    for u in usage:
        if u.level == QuotaLevel.OK:
            continue
        share = u.used_bytes / u.quota_bytes
        county = county_names.get(u.county_id, f"#{u.county_id}")
        gib, quota = u.used_bytes / 1024**3, u.quota_bytes / 1024**3
        over = u.level == QuotaLevel.OVER
        out.append(Condition(
            "recording_quota", f"recording_quota:{u.county_id}", Severity.CRITICAL if over else Severity.WARNING,
            0.0, None, f"county-{u.county_id}", county,
            f"{county}的录像已用 {gib:.1f} GiB，占配额 {quota:.1f} GiB 的 {share:.0%}"
            + ("，已满：新的课不再录制" if over else ""),
            f"{county}: recordings use {gib:.1f} GiB, {share:.0%} of its {quota:.1f} GiB quota"
            + (" (full: new lessons are not recorded)" if over else ""), float(u.used_bytes), frozenset({u.county_id})))
    return out


class RecordingWatch:
    def __init__(
        self,
        recordings: Recordings,
        timetable: Timetable,
        publish: Callable[[str, list[Condition]], None],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.recordings = recordings
        self.t = timetable
        self.publish = publish  # Monitor.set_conditions
        self.clock = clock or timetable.clock

    def check(self, now: datetime | None = None) -> list[Condition]:
        """One round: retention, then what the alerts should say now (published to the monitor)."""
        now = now or self.clock()
        self.apply_retention(now)
        conditions = watch_conditions(self.due_replays(now), self.usage(), self._county_names(), self.t.config.tz)
        self.publish(SOURCE, conditions)
        return conditions

    def due_replays(self, now: datetime) -> list[DueReplay]:
        cfg = self.t.config
        ahead = timedelta(minutes=self.recordings.config.replay_check_min + cfg.window_open_before_min)
        lessons = [x for x in self.t.repo.replays_due(now - timedelta(hours=4), now + ahead)
                   if self.t.window(x)[1] > now]
        if not lessons:
            return []
        with self.t.db.read() as conn:
            sources = self.t.repo.replay_sources(conn, [x.replay_of for x in lessons if x.replay_of is not None])
        county_of = self._county_of_classroom()
        out = []
        for lesson in lessons:
            source = sources.get(lesson.replay_of or 0)
            problem = replay_due_problem(source, self._file_present(source))
            counties = frozenset(county_of[c] for c in lesson.receiving_classroom_ids if c in county_of)
            out.append(DueReplay(lesson, self.t.window(lesson)[0], problem, counties))
        return out

    def _file_present(self, source: ReplaySource | None) -> bool:
        if source is None:
            return False
        rec = self.recordings.get(source.recording_id)
        return bool(rec and rec.path and Path(rec.path).is_file())

    def usage(self) -> list[CountyUsage]:
        cfg = self.recordings.config
        return usage_by_county(self.recordings.kept(), self.recordings.policies(), cfg.quota_gb, cfg.quota_warn_share)

    def apply_retention(self, now: datetime) -> list[int]:
        """Delete the recordings whose retention period is over; each deletion audited as the system."""
        cfg = self.recordings.config
        gone: list[int] = []
        for rid in expired(self.recordings.kept(), self.recordings.policies(), cfg.retention_days, now.timestamp()):
            rec = self.recordings.get(rid)
            try:
                self.recordings.delete_files(rid)
            except OSError as exc:
                log.error("retention: recording %d could not be deleted: %s", rid, exc)
                continue
            with self.t.db.write() as conn:
                self.t.repo.add_audit(conn, "system", "delete_recording", "done",
                                      f"recording {rid}: its retention period is over", rec.lesson_id if rec else None,
                                      role="system")
            gone.append(rid)
        if gone:
            log.info("retention: %d recordings deleted (%s)", len(gone), ", ".join(map(str, gone)))
        return gone

    def _county_of_classroom(self) -> dict[int, int]:
        county_of_school = {s.id: s.county_id for s in self.t.repo.schools()}
        rooms = self.t.repo.classrooms()
        return {c.id: county_of_school[c.school_id] for c in rooms if c.school_id in county_of_school}

    def _county_names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.t.repo.counties()}
