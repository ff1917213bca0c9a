"""The monitor: what the hub hands on each stats tick becomes quality, live charts, alerts and history.

One `Monitor` per server process. Signaling calls `sample()` once per live lesson and stats tick
(about every second) and `lesson_closed()` when a lesson ends; everything else runs here:

- quality: one 1–5 score per participant (`monitoring.quality`), returned to the hub for the
  teacher's roster and kept for the technician;
- the live county view: every live lesson with its classrooms' figures and ten-minute charts
  (`monitoring.series`), pushed to `/tech` pages that subscribed (`subscribe()`), scoped to what each
  technician looks after;
- alerts: every `evaluate_every_s`, the rules of `monitoring.alerts` over the latest samples and the
  health of this process, the media workers and the data disk; changes are logged in SQLite, pushed to
  the pages and sent to the webhooks;
- history: each participant's figures every series step, stored for the lesson history page and the
  bandwidth report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitoring.alerts import (
    Alert,
    AlertConfig,
    AlertEngine,
    Change,
    Condition,
    DiskHealth,
    ProcessHealth,
    lesson_conditions,
    quality_conditions,
    system_conditions,
)
from monitoring.observation import LessonSample
from monitoring.quality import QualityTracker
from monitoring.series import Series
from monitoring.store import MonitoringStore, SampleRow
from scheduler.db import Database

log = logging.getLogger(__name__)

SERIES_STEP_S = 5.0
SERIES_WINDOW_S = 600.0
PUSH_EVERY_S = 2.0
SAMPLES_FLUSH_S = 10.0
DISK_EVERY_S = 30.0
MAX_QUEUE = 64  # a page that does not read its stream loses ticks, never the server's memory

Scope = Callable[[frozenset[int], frozenset[int]], bool]  # (counties, regions) -> may this viewer see it


@dataclass
class _Participant:
    series: Series
    role: str = ""
    name: str = ""
    classroom_id: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    new_point: dict[str, Any] | None = None  # completed since the last push


@dataclass
class _Lesson:
    sample: LessonSample
    participants: dict[str, _Participant] = field(default_factory=dict)
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)  # participant id -> Quality json + loss


@dataclass(eq=False)
class Subscription:
    scope: Scope
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUE))
    dropped: int = 0

    def put(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1


class Monitor:
    def __init__(
        self,
        config: AlertConfig,
        db: Database,
        data_path: Path,
        node: str = "",
        *,
        health: Callable[[], list[ProcessHealth]] | None = None,
        series_step_s: float = SERIES_STEP_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from monitoring.webhooks import WebhookSender, parse_webhooks

        self.config = config
        self.store = MonitoringStore(db)
        self.data_path = data_path
        self.node = node
        self.health = health  # each process's CPU and loop lag (the metrics' sampler measures them)
        self.series_step_s = series_step_s
        self.clock = clock
        self.engine = AlertEngine(config.clear_after_s)
        self.quality = QualityTracker()
        self.lessons: dict[int, _Lesson] = {}
        self.webhooks = WebhookSender(parse_webhooks(config.alert_webhooks), node, config.webhook_min_severity,
                                      config.webhook_timeout_s)
        self.processes: list[ProcessHealth] = []
        self.disks: list[DiskHealth] = []
        self._subscribers: set[Subscription] = set()
        self._samples: list[SampleRow] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._disk_at = -1e9
        self.evaluations = 0
        # conditions other parts of the program find by their own checks (the recordings' watch), by source
        self.external: dict[str, list[Condition]] = {}

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self.engine.restore(await asyncio.to_thread(self.store.firing))
        await self.webhooks.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._push_loop()), loop.create_task(self._flush_loop())]
        if self.config.enabled:
            self._tasks.append(loop.create_task(self._alert_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self._flush_samples()
        await self.webhooks.stop()

    # ---- what the hub hands on ----------------------------------------------------------------------
    def sample(self, s: LessonSample) -> dict[str, dict[str, Any]]:
        """Take one lesson's stats tick; the quality of each participant (for the teacher's roster)."""
        lesson = self.lessons.get(s.lesson_id)
        if lesson is None:
            lesson = self.lessons[s.lesson_id] = _Lesson(s)
        lesson.sample = s
        seen = set()
        out: dict[str, dict[str, Any]] = {}
        for p in s.participants:
            seen.add(p.participant_id)
            silent = p.link == "lost"
            if p.role == "lead":
                q, figures = self.quality.publisher(p.participant_id, p.media, silent)
            else:
                q, figures = self.quality.subscriber(p.participant_id, p.media, p.client, silent, s.mono)
            entry = lesson.participants.get(p.participant_id)
            if entry is None:
                entry = lesson.participants[p.participant_id] = _Participant(
                    Series(self.series_step_s, SERIES_WINDOW_S))
            entry.role, entry.name, entry.classroom_id = p.role, p.name, p.classroom_id
            kbps_in, kbps_out = entry.series.rates(p.media, s.mono)
            figures.update(q.to_json())
            figures["kbps_in"] = None if kbps_in is None else round(kbps_in, 1)
            figures["kbps_out"] = None if kbps_out is None else round(kbps_out, 1)
            figures["link"] = p.link
            entry.figures = figures
            lesson.quality[p.participant_id] = figures
            out[p.participant_id] = figures
            if entry.series.add(s.wall, figures):
                point = entry.series.last()
                entry.new_point = point
                if point is not None:
                    self._samples.append(SampleRow(
                        s.lesson_id, point["t"], p.participant_id, p.role, p.classroom_id, point["kbps_in"],
                        point["kbps_out"], point["loss"], point["rtt_ms"], point["fps"], point["score"], p.link))
        for pid in set(lesson.participants) - seen:
            # gone from the room: its chart stays (the technician sees the gap), its figures do not
            lesson.participants[pid].figures = {}
            lesson.quality.pop(pid, None)
        return out

    def lesson_closed(self, lesson_id: int) -> None:
        lesson = self.lessons.pop(lesson_id, None)
        if lesson is None:
            return
        for pid in lesson.participants:
            self.quality.forget(pid)
        changes = self.engine.forget_lesson(lesson_id, self.clock())
        if changes:
            self._publish_changes(changes)
        self._broadcast({"type": "lesson_closed", "lesson_id": lesson_id},
                        lesson.sample.county_ids, lesson.sample.region_ids)

    # ---- the live view ------------------------------------------------------------------------------
    def view(self, scope: Scope, with_series: bool = True) -> dict[str, Any]:
        """Every live lesson this viewer may see, and the firing alerts."""
        lessons = [self._lesson_json(lesson, with_series) for lesson in sorted(self.lessons.values(),
                                                                                  key=lambda x: x.sample.starts_at)
                   if scope(lesson.sample.county_ids, lesson.sample.region_ids)]
        alerts = [a.to_json() for a in self.engine.firing.values() if self._visible(a, scope)]
        return {"type": "snapshot", "at": self.clock(), "node": self.node, "lessons": lessons,
                "alerts": sorted(alerts, key=lambda a: a["fired_at"]), "system": self.system_json()}

    def system_json(self) -> dict[str, Any]:
        return {
            "processes": [{"name": p.name, "cpu_percent": None if p.cpu_percent is None else round(p.cpu_percent, 1),
                           "loop_lag_ms": None if p.loop_lag_ms is None else round(p.loop_lag_ms, 1)}
                          for p in self.processes],
            "disks": [{"path": d.path, "free_bytes": d.free_bytes, "total_bytes": d.total_bytes} for d in self.disks],
            "webhooks": self.webhooks.status(),
        }

    def _lesson_json(self, lesson: _Lesson, with_series: bool) -> dict[str, Any]:
        s = lesson.sample
        rows = []
        lead = None
        for pid, entry in lesson.participants.items():
            row: dict[str, Any] = {"participant_id": pid, "role": entry.role, "name": entry.name,
                                   "classroom_id": entry.classroom_id, **entry.figures}
            row.setdefault("link", "left" if entry.role == "lead" else s.absent.get(pid, "left"))
            if with_series:
                row["series"] = entry.series.to_json()
            elif entry.new_point is not None:
                row["point"] = entry.new_point
            if entry.role == "lead":
                lead = row
            else:
                rows.append(row)
        by_id = {r["participant_id"]: r for r in rows}
        for pid, state in s.absent.items():
            known = by_id.get(pid)
            if known is not None:
                known["link"] = state  # dropped or left: its chart stays, with the gap
                continue
            row = {"participant_id": pid, "role": "receiver", "name": s.receivers.get(pid, pid), "link": state}
            if with_series:
                row["series"] = Series(self.series_step_s).to_json()
            rows.append(row)
        rows.sort(key=lambda r: (r["role"] != "receiver", r["name"], r["participant_id"]))
        return {
            "lesson_id": s.lesson_id, "kind": s.kind, "subject": s.subject, "lead_name": s.lead_name,
            "starts_at": s.starts_at, "ends_at": s.ends_at, "lead_state": s.lead_state,
            "lead_tracks": sorted(s.lead_live), "talkback": s.talkback, "node": s.node or self.node,
            "worker_pid": s.worker_pid, "lead": lead, "classrooms": rows,
            "receivers": len(s.receivers), "present": len(s.receivers) - len(s.absent),
        }

    def subscribe(self, scope: Scope) -> Subscription:
        sub = Subscription(scope)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def _broadcast(self, message: dict[str, Any], counties: frozenset[int], regions: frozenset[int]) -> None:
        for sub in list(self._subscribers):
            if sub.scope(counties, regions):
                sub.put(message)

    async def _push_loop(self) -> None:
        while True:
            await asyncio.sleep(PUSH_EVERY_S)
            if self._subscribers:
                try:
                    for sub in list(self._subscribers):
                        tick = self.view(sub.scope, with_series=False)
                        tick["type"] = "tick"
                        sub.put(tick)
                except Exception:
                    log.exception("pushing the live view failed")
            for lesson in self.lessons.values():
                for entry in lesson.participants.values():
                    entry.new_point = None

    # ---- alerts -------------------------------------------------------------------------------------
    @staticmethod
    def _visible(a: Alert, scope: Scope) -> bool:
        if a.lesson_id is None:
            return True  # the node's health (loop lag, CPU, disk): every technician of the node looks after it
        return scope(a.county_ids, a.region_ids)

    async def _alert_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.evaluate_every_s)
            try:
                await self.evaluate()
            except Exception:
                log.exception("evaluating alerts failed")

    async def evaluate(self) -> list[Change]:
        await self._refresh_health()
        changes = self.evaluate_now()
        if changes:
            await asyncio.to_thread(self.store.save_alerts, [c.alert for c in changes])
            self._publish_changes(changes)
        return changes

    def evaluate_now(self) -> list[Change]:
        """The rules over the latest samples and health (no I/O): what fired and what cleared."""
        conditions = []
        for lesson in self.lessons.values():
            conditions += lesson_conditions(lesson.sample, self.config)
            conditions += quality_conditions(lesson.sample, lesson.quality, self.config)
        conditions += system_conditions(self.processes, self.disks, self.config)
        for found in self.external.values():
            conditions += found
        self.evaluations += 1
        return self.engine.evaluate(conditions, time.monotonic(), self.clock())

    def set_conditions(self, source: str, conditions: list[Condition]) -> None:
        """What a check elsewhere found holds now (replacing what it found before); the next evaluation
        fires and clears alerts from it as from the monitor's own rules."""
        self.external[source] = list(conditions)

    async def acknowledge(self, alert_id: int, who: str) -> Alert | None:
        alert = next((a for a in self.engine.firing.values() if a.id == alert_id), None)
        if alert is None:
            alert = await asyncio.to_thread(self.store.alert, alert_id)
            if alert is None:
                return None
        alert.acked_by, alert.acked_at = who, self.clock()
        await asyncio.to_thread(self.store.save_alerts, [alert])
        self._publish_changes([Change("acked", alert)])
        return alert

    def _publish_changes(self, changes: list[Change]) -> None:
        for c in changes:
            a = c.alert
            level = logging.WARNING if c.kind == "fired" else logging.INFO
            log.log(level, "alert %s: %s (%s)", c.kind, a.summary_en, a.key)
            message = {"type": "alert", "change": c.kind, "alert": a.to_json()}
            for sub in list(self._subscribers):
                if self._visible(a, sub.scope):
                    sub.put(message)
        self.webhooks.send(changes)

    def firing_counts(self) -> Mapping[tuple[str, str], int]:
        """(rule, severity) -> alerts firing now (for /metrics)."""
        counts: dict[tuple[str, str], int] = {}
        for a in self.engine.firing.values():
            key = (a.rule, str(a.severity))
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def _refresh_health(self) -> None:
        if self.health is not None:
            self.processes = self.health()
        now = time.monotonic()
        if now - self._disk_at >= DISK_EVERY_S:
            self._disk_at = now
            try:
                usage = await asyncio.to_thread(shutil.disk_usage, self.data_path)
                self.disks = [DiskHealth(str(self.data_path), usage.free, usage.total)]
            except OSError as exc:
                log.warning("cannot read free space of %s: %s", self.data_path, exc)

    # ---- history ------------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLES_FLUSH_S)
            await self._flush_samples()

    async def _flush_samples(self) -> None:
        rows, self._samples = self._samples, []
        if not rows:
            return
        try:
            await asyncio.to_thread(self.store.save_samples, rows)
        except Exception:
            log.exception("storing %d lesson samples failed; kept for the next try", len(rows))
            self._samples = rows + self._samples[: max(0, 20000 - len(rows))]
