"""Replayed lessons (录播) on air: when a replay lesson's room is open and its start has come, the
recording it replays is published into the room as its lead (`media/replay.py`) by the media worker
that owns the room (`MediaPlane.start_replay`), so replays spread over the cores as rooms do and none
of their packets pass through this process; the hub sees a lead like any other (participant
`lead-replay`), so the receiving classrooms' pages, the layouts, the on-air evidence and attendance
work as for a live lesson.

A replay that starts late (the server restarted, the room's worker died and the room was opened again)
starts where the lesson should be, from the keyframe before. A recording that cannot be played (its
file missing, unreadable, not `ready`, or no longer approved for replay) is logged with its reason, and
the lesson shows its lead off air, which raises the technician's "lead not on air" alert as for a
teacher who does not come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from media.api import MediaError, MediaPlane
from media.replay import ReplayFiles, recording_offset
from scheduler.model import Lesson
from scheduler.recordings import Recording, Recordings

log = logging.getLogger(__name__)


def replay_files(rec: Recording | None) -> ReplayFiles | str:
    """The files to publish for a recording, or why it cannot be replayed."""
    if rec is None:
        return "the recording it replays does not exist"
    if rec.state != "ready" or not rec.path:
        return f"the recording it replays is {rec.state}, not ready"
    if rec.review != "approved" or "replay" not in rec.review_uses:
        # a reviewer withdrew it after the replay was scheduled: it is not pushed to classrooms
        return f"the recording it replays is no longer approved for replay (review: {rec.review})"
    camera = Path(rec.path)
    if not camera.exists():
        return f"the recording's file {camera.name} is missing"
    screen = Path(rec.screen_path) if rec.screen_path else None
    return ReplayFiles(camera, screen if screen is not None and screen.exists() else None)


@dataclass
class ReplayKeeper:
    """One replay per open replay lesson, started at the lesson's start and stopped when its room closes."""

    plane: MediaPlane
    recordings: Recordings
    clock: Callable[[], float] = time.time
    running: dict[int, asyncio.Task[None]] = field(default_factory=dict)  # lesson id -> its replay
    ended: dict[int, asyncio.Event] = field(default_factory=dict)  # lesson id -> set at REPLAY_ENDED

    def begin(self, lesson: Lesson, room_id: str, on_air: Callable[[bool], None]) -> None:
        """Start (or restart, for a room opened again) the replay of `lesson` into `room_id`;
        `on_air(True)` once it publishes, `on_air(False)` when the file has ended."""
        if lesson.replay_of is None:
            return
        old = self.running.pop(lesson.id, None)
        if old is not None:
            old.cancel()
        self.running[lesson.id] = asyncio.get_running_loop().create_task(self._run(lesson, room_id, on_air))

    async def _run(self, lesson: Lesson, room_id: str, on_air: Callable[[bool], None]) -> None:
        start = lesson.start.timestamp()
        wait = start - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)
        rec = await asyncio.to_thread(self.recordings.get, int(lesson.replay_of or 0))
        files = replay_files(rec)
        if isinstance(files, str):
            log.error("lesson %d: the replay of recording %s cannot start: %s", lesson.id, lesson.replay_of, files)
            return
        ended = self.ended[lesson.id] = asyncio.Event()
        started = False
        try:
            # published by the media worker that owns the room (media/replay.py), never through this process
            await self.plane.start_replay(room_id, str(files.camera), str(files.screen) if files.screen else None,
                                          recording_offset(start, self.clock()))
            started = True
            on_air(True)
            await ended.wait()
            log.info("lesson %d: the replay of recording %s has ended", lesson.id, lesson.replay_of)
            on_air(False)
        except MediaError as exc:
            log.error("lesson %d: the replay of recording %s cannot start: %s", lesson.id, lesson.replay_of, exc)
        finally:
            if self.ended.get(lesson.id) is ended:
                del self.ended[lesson.id]
            if started and not ended.is_set():
                with contextlib.suppress(MediaError):
                    await self.plane.stop_replay(room_id)

    def on_ended(self, lesson_id: int) -> None:
        """The media plane says the lesson's replay reached the end of its recording (REPLAY_ENDED)."""
        event = self.ended.get(lesson_id)
        if event is not None:
            event.set()

    async def end(self, lesson_id: int) -> None:
        """The lesson's room closed: stop its replay."""
        task = self.running.pop(lesson_id, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def stop(self) -> None:
        for lesson_id in list(self.running):
            await self.end(lesson_id)
