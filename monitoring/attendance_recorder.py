"""The thin shell around the attendance timelines: the hub hands presence, on-air changes and stats
ticks to it; it keeps one timeline per live lesson, writes each changed one every `write_interval_s`
(the segments and the evidence totals in one transaction, so they never disagree), and closes and
writes a lesson's timeline synchronously before its settlement.

A write that fails is logged and retried at the next round; nothing in memory is dropped until it is
written. Before a settlement the final write is retried a few times, and if it still fails the
settlement is refused (`EvidenceIncomplete`): the timed jobs try again a minute later rather than
settle a delivered lesson as missed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from monitoring import attendance_store
from monitoring.attendance import (
    LEAD,
    Closed,
    Event,
    LessonRule,
    Mark,
    Sample,
    Segment,
    Timeline,
    classroom_key,
    credited_key,
    restored,
    teacher_key,
    valid_quality,
)
from scheduler.model import Lesson
from scheduler.timetable import Timetable

log = logging.getLogger(__name__)

FINAL_WRITE_ATTEMPTS = 3
FINAL_WRITE_PAUSE_S = 0.5
FINAL_WRITE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _Batch:
    """What one write carries: copies taken on the event loop, written on any thread."""

    lesson_id: int
    version: int
    segments: list[Segment]
    events: list[Event]
    events_upto: int
    last_at: float | None
    closed: bool
    minutes: tuple[float, dict[int, float], dict[int, float]]


class EvidenceIncomplete(RuntimeError):
    """A lesson's timeline could not be written before its settlement: settle it later, not now."""


class _Claims(Protocol):
    teacher_id: int | None
    classroom_id: int | None


class _Session(Protocol):
    @property
    def link(self) -> Any: ...

    @property
    def claims(self) -> _Claims | None: ...


class AttendanceRecorder:
    def __init__(
        self,
        timetable: Timetable,
        stats_interval_s: float,
        write_interval_s: float,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timetable = timetable
        self.max_step_s = 2 * stats_interval_s  # a stall credits at most two intervals
        self.write_interval_s = write_interval_s
        self.wall, self.mono = wall, mono
        self.timelines: dict[int, Timeline] = {}
        self._written: dict[int, int] = {}  # lesson id -> the timeline version last written
        self._sealed: dict[int, set[tuple[str, int]]] = {}  # segments written closed: they never change again
        self._events_written: dict[int, int] = {}  # lesson id -> how many of its events are written
        self._warned: set[tuple[int, str]] = set()  # (lesson, participant) whose bad quality was logged
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Write changed timelines every `write_interval_s`, until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        while True:
            await asyncio.sleep(self.write_interval_s)
            await self.flush()

    async def flush(self) -> None:
        for lesson_id in [lid for lid, t in self.timelines.items() if t.version != self._written.get(lid)]:
            batch = self._batch(lesson_id)  # taken here, on the loop: the writer thread gets copies only
            if batch is None:
                continue
            try:
                await asyncio.to_thread(self._store, batch)
            except Exception as exc:
                log.warning("lesson %d: writing its attendance failed (%s); kept, retried in %.0f s",
                            lesson_id, exc, self.write_interval_s)
                continue
            self._done(batch)

    async def stop(self) -> None:
        """The server stops: write everything (segments still going are read back as interrupted)."""
        for lesson_id in list(self.timelines):
            try:
                self.write(lesson_id)
            except Exception:
                log.exception("lesson %d: its attendance since the last write is lost at shutdown", lesson_id)

    # ---- what the hub hands on -----------------------------------------------------------------
    def open(self, lesson: Lesson, community_members: frozenset[int]) -> Timeline:
        """The lesson's room opened: its timeline, continued from storage after a restart."""
        timeline = self.timelines.get(lesson.id)
        if timeline is not None:
            return timeline
        rule = LessonRule(lesson.id, frozenset(lesson.receiving_classroom_ids),
                          community_members if lesson.community_id is not None else frozenset(),
                          (lesson.end - lesson.start).total_seconds())
        with self.timetable.db.read() as conn:
            stored = attendance_store.load(conn, lesson.id)
        if stored is None:
            timeline = Timeline(rule, self.max_step_s)
        else:
            timeline = restored(rule, self.max_step_s, *stored)
            log.info("lesson %d: attendance continues from what was recorded (%d participants)",
                     lesson.id, len(timeline.segments))
        self.timelines[lesson.id] = timeline
        return timeline

    def presence(self, lesson_id: int, role: str, classroom_id: int | None, teacher_id: int | None,
                 what: Mark) -> None:
        """A participant joined, lost its link, is back, left or went: an event on its timeline."""
        timeline = self.timelines.get(lesson_id)
        if timeline is None:
            return
        key = self._key(timeline, role, classroom_id, teacher_id)
        if key is not None:
            timeline.mark(key, what, self.wall(), self.mono())

    def lead(self, lesson_id: int, on_air: bool) -> None:
        timeline = self.timelines.get(lesson_id)
        if timeline is not None:
            timeline.mark(LEAD, Mark.ON_AIR if on_air else Mark.OFF_AIR, self.wall(), self.mono())

    def tick(self, lesson_id: int, snapshot: Mapping[str, Any], sessions: Mapping[str, _Session],
             quality: Mapping[str, float | None] | None = None) -> None:
        """One stats snapshot of the lesson's room; `quality` is each participant's score 1-5, if known."""
        timeline = self.timelines.get(lesson_id)
        if timeline is None:
            return
        attending: dict[str, float | None] = {}
        participants = snapshot.get("participants")
        for pid, p in (participants.items() if isinstance(participants, Mapping) else ()):
            if not isinstance(p, Mapping):
                continue  # a malformed entry credits nothing and stops nobody else's attendance
            session = sessions.get(pid)
            claims = session.claims if session is not None else None
            score = (quality or {}).get(pid)
            sample = Sample(pid, str(p.get("role") or ""), p.get("connection"),
                            str(session.link) if session is not None else None,
                            claims.classroom_id if claims is not None else None,
                            claims.teacher_id if claims is not None else None, score)
            key = credited_key(timeline.rule, sample)
            if key is None:
                continue
            if score is not None and valid_quality(score) is None and (lesson_id, pid) not in self._warned:
                self._warned.add((lesson_id, pid))
                log.warning("lesson %d: quality %r of %s is not a score from 1 to 5; ignored", lesson_id, score, pid)
            attending[key] = score
        timeline.tick(self.wall(), self.mono(), bool(snapshot.get("lead_on_air")), attending)

    async def close(self, lesson_id: int) -> None:
        """The lesson's room closed (after its settlement): its timeline ends, is written, and is let go."""
        if lesson_id not in self.timelines:
            return
        try:
            await self._close_async(lesson_id)
        except EvidenceIncomplete:
            log.error("lesson %d: its attendance is kept in memory and retried", lesson_id)
            return
        self.timelines.pop(lesson_id, None)
        self._written.pop(lesson_id, None)
        self._sealed.pop(lesson_id, None)
        self._events_written.pop(lesson_id, None)
        self._warned = {w for w in self._warned if w[0] != lesson_id}

    # ---- settlement --------------------------------------------------------------------------------
    def before_settle(self, lesson_id: int) -> None:
        """Called by the settlement job, on any thread: the lesson's timeline ends now and is written,
        or EvidenceIncomplete is raised and the lesson must not be settled yet."""
        loop = self._loop
        if lesson_id not in self.timelines:
            return  # not live in this process: what was recorded is all there is
        if loop is None or threading.get_ident() == self._loop_thread:
            timeline = self.timelines[lesson_id]
            timeline.close(Closed.CLOSED)
            batch = self._batch(lesson_id)
            if batch is not None:
                self._store_retrying(batch)
                self._done(batch)
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._close_async(lesson_id), loop)
            future.result(FINAL_WRITE_TIMEOUT_S)
        except EvidenceIncomplete:
            raise
        except Exception as exc:
            raise EvidenceIncomplete(f"lesson {lesson_id}: its attendance could not be closed: {exc}") from exc

    async def _close_async(self, lesson_id: int) -> None:
        timeline = self.timelines.get(lesson_id)
        if timeline is None:
            return
        timeline.close(Closed.CLOSED)
        batch = self._batch(lesson_id)
        if batch is not None:
            await asyncio.to_thread(self._store_retrying, batch)
            self._done(batch)

    def _store_retrying(self, batch: _Batch) -> None:
        for attempt in range(1, FINAL_WRITE_ATTEMPTS + 1):
            try:
                self._store(batch)
                return
            except Exception as exc:
                log.warning("lesson %d: final attendance write %d of %d failed: %s",
                            batch.lesson_id, attempt, FINAL_WRITE_ATTEMPTS, exc)
                if attempt < FINAL_WRITE_ATTEMPTS:
                    time.sleep(FINAL_WRITE_PAUSE_S * attempt)
        raise EvidenceIncomplete(f"lesson {batch.lesson_id}: its attendance could not be written")

    # ---- storage -------------------------------------------------------------------------------------
    def write(self, lesson_id: int) -> None:
        """Write what changed in the lesson's timeline now, on this thread; raises on failure."""
        batch = self._batch(lesson_id)
        if batch is not None:
            self._store(batch)
            self._done(batch)

    def _batch(self, lesson_id: int) -> _Batch | None:
        """Copies of what changed since the last write (a closed segment written once never changes)."""
        timeline = self.timelines.get(lesson_id)
        if timeline is None:
            return None
        sealed = self._sealed.setdefault(lesson_id, set())
        segments = [dataclasses.replace(s) for segs in timeline.segments.values() for s in segs
                    if (s.participant, s.seq) not in sealed]
        events = timeline.events[self._events_written.get(lesson_id, 0):]
        return _Batch(lesson_id, timeline.version, segments, events, len(timeline.events), timeline.last_at,
                      timeline.closed, timeline.minutes())

    def _store(self, batch: _Batch) -> None:
        """The batch and the evidence totals it gives, in one transaction (any thread); raises on failure."""
        lead, rooms, teachers = batch.minutes
        with self.timetable.db.write() as conn:
            attendance_store.save(conn, batch.lesson_id, batch.segments, batch.events, batch.last_at, batch.closed)
            lesson = self.timetable.repo.lesson(batch.lesson_id)
            if lesson is not None and (lead or rooms or teachers):
                # membership now, not when the room opened: the timetable refuses strangers
                members = self.timetable.repo.community_members(lesson.community_id)
                self.timetable.record_evidence(batch.lesson_id, round(lead, 2),
                                               {c: round(m, 2) for c, m in rooms.items()}, "signaling",
                                               {t: round(m, 2) for t, m in teachers.items() if t in members})

    def _done(self, batch: _Batch) -> None:
        lid = batch.lesson_id
        self._sealed.setdefault(lid, set()).update((s.participant, s.seq) for s in batch.segments if s.closed_by)
        self._events_written[lid] = max(self._events_written.get(lid, 0), batch.events_upto)
        if self._written.get(lid, -1) < batch.version:
            self._written[lid] = batch.version

    def timeline(self, lesson: Lesson, community_members: frozenset[int]) -> Timeline | None:
        """The lesson's timeline: the live one, else the stored one (read-only), else None."""
        live = self.timelines.get(lesson.id)
        if live is not None:
            return live
        with self.timetable.db.read() as conn:
            stored = attendance_store.load(conn, lesson.id)
        if stored is None:
            return None
        rule = LessonRule(lesson.id, frozenset(lesson.receiving_classroom_ids), community_members,
                          (lesson.end - lesson.start).total_seconds())
        return restored(rule, self.max_step_s, *stored, continuing=False)

    @staticmethod
    def _key(timeline: Timeline, role: str, classroom_id: int | None, teacher_id: int | None) -> str | None:
        if role == "lead":
            return LEAD
        if role == "receiver" and classroom_id is not None and classroom_id in timeline.rule.receivers:
            return classroom_key(classroom_id)
        if role == "observer" and teacher_id is not None and teacher_id in timeline.rule.community_members:
            return teacher_key(teacher_id)
        return None

