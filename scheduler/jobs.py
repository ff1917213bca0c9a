"""Timed jobs: open each lesson's window, close and settle it, write the weekly quota report.

The database is the truth; jobs are derived from it. `plan()` runs at start, every minute, and whenever
lessons change: it catches up on everything overdue (a window that should be open, a lesson that
should be settled, e.g. after a `kill -9`) and schedules date jobs for the next `job_horizon_hours`.
Settling is idempotent in the database (a status move that only succeeds once), so a job that runs
twice, or a catch-up racing a job, never settles a lesson twice.

Before a lesson is settled, every `before_settle` hook runs (monitoring closes and writes the lesson's
attendance timeline there). A hook that raises means the evidence is not complete yet: the lesson is
left unsettled and the next `plan()` (within a minute) tries again, so a failed evidence write never
turns a delivered lesson into a missed one.

On many nodes sharing a Redis (`classroom serve --redis`), every node runs this scheduler but its jobs act
only while `may_run()` says this node holds the scheduler's job lock (edge/joblock.py); the node that takes
the lock over runs `plan()` at once, so what fell due meanwhile is caught up as after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.export import report_csv, report_json, report_xlsx
from scheduler.model import LessonStatus
from scheduler.reports import build_report
from scheduler.timetable import Timetable

log = logging.getLogger(__name__)


class LessonJobs:
    def __init__(
        self,
        timetable: Timetable,
        reports_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.timetable = timetable
        self.reports_dir = reports_dir
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"misfire_grace_time": 3600, "coalesce": True})
        self.on_open: list[Callable[[int], None]] = []  # told when a window opens (signaling, media)
        self.on_settled: list[Callable[[int, LessonStatus], None]] = []
        # run before a due lesson is settled; raising postpones its settlement (see the module's docstring)
        self.before_settle: list[Callable[[int], None]] = []
        # run once a minute with the time (the recordings' watch: replays about to open, retention, quotas)
        self.every_minute: list[Callable[[datetime], object]] = []
        self._planned: dict[str, datetime] = {}
        # asked before any job acts: on many nodes, only the holder of the scheduler's job lock runs them
        # (edge/joblock.py); on one machine always true
        self.may_run: Callable[[], bool] = lambda: True

    def start(self) -> None:
        self.scheduler.start()
        cfg = self.timetable.config
        # every minute, so lessons another process (the `classroom import` command) added are planned in time
        self.scheduler.add_job(self.plan, IntervalTrigger(minutes=1), id="plan", replace_existing=True)
        self.scheduler.add_job(self.watch, IntervalTrigger(minutes=1), id="watch", replace_existing=True)
        hour, minute = (int(x) for x in cfg.weekly_report_time.split(":"))
        self.scheduler.add_job(
            self.weekly_report,
            CronTrigger(day_of_week=cfg.weekly_report_day, hour=hour, minute=minute, timezone=cfg.tz),
            id="weekly_report",
            replace_existing=True,
        )
        self.timetable.on_change(lambda _ids: self.plan())
        self.plan()
        self.watch()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def plan(self) -> None:
        if not self.may_run():
            return
        now = self.clock()
        horizon = now + timedelta(hours=self.timetable.config.job_horizon_hours)
        lead = timedelta(minutes=self.timetable.config.window_open_before_min)
        for lesson in self.timetable.repo.unsettled(starting_before=horizon + lead):
            opens, closes = self.timetable.window(lesson)
            if closes <= now:
                self.close(lesson.id)
                continue
            if lesson.status == LessonStatus.SCHEDULED:
                if opens <= now:
                    self.open(lesson.id)
                else:
                    self._at(opens, self.open, f"open:{lesson.id}", lesson.id)
            self._at(closes, self.close, f"close:{lesson.id}", lesson.id)

    def watch(self) -> None:
        if not self.may_run():
            return
        now = self.clock()
        for check in self.every_minute:
            try:
                check(now)
            except Exception:
                log.exception("a minute's check failed; it runs again within a minute")

    def _at(self, when: datetime, func: Callable[[int], None], job_id: str, lesson_id: int) -> None:
        if self._planned.get(job_id) == when and self.scheduler.get_job(job_id) is not None:
            return  # planned already: re-planning every minute must stay cheap
        self._planned[job_id] = when
        self.scheduler.add_job(func, DateTrigger(run_date=when), args=[lesson_id], id=job_id, replace_existing=True)

    def open(self, lesson_id: int) -> None:
        if not self.may_run():
            return
        try:
            if self.timetable.open_window(lesson_id):
                for listener in self.on_open:
                    listener(lesson_id)
        except Exception:
            log.exception("opening the window of lesson %d failed", lesson_id)

    def close(self, lesson_id: int) -> None:
        if not self.may_run():
            return
        now = self.clock()
        lesson = self.timetable.repo.lesson(lesson_id)
        if lesson is not None and self.before_settle and self.timetable.settle_due(lesson, now):
            try:
                for hook in self.before_settle:
                    hook(lesson_id)
            except Exception as exc:
                log.error("lesson %d: not settled yet, its evidence is not complete (%s); trying again within a "
                          "minute", lesson_id, exc)
                return
        try:
            status = self.timetable.settle(lesson_id, now)
            self._planned.pop(f"open:{lesson_id}", None)
            self._planned.pop(f"close:{lesson_id}", None)
            if status is not None:
                for listener in self.on_settled:
                    listener(lesson_id, status)
        except Exception:
            log.exception("settling lesson %d failed", lesson_id)

    def weekly_report(self) -> list[Path]:
        if not self.may_run():
            return []
        today = self.clock().astimezone(self.timetable.config.tz).date()
        semesters = [s for s in self.timetable.repo.semesters() if s.start <= today <= s.end]
        written: list[Path] = []
        for semester in semesters:
            report = build_report(self.timetable.db, self.timetable.config, semester, today)
            year, week, _ = today.isocalendar()
            folder = self.reports_dir / f"{semester.name}"
            folder.mkdir(parents=True, exist_ok=True)
            stem = folder / f"{year}-W{week:02d}"
            for suffix, data in (
                (".json", report_json(report)),
                (".xlsx", report_xlsx(report)),
                (".teachers.csv", report_csv(report, "teachers")),
                (".schools.csv", report_csv(report, "schools")),
            ):
                path = stem.with_name(stem.name + suffix)
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)  # never a half-written report
                written.append(path)
            log.info("weekly quota report for %s written to %s.*", semester.name, stem)
        return written
