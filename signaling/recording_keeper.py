"""Between the media plane's recorder and the catalogue: what the hub asks when a room opens, and what
it hands on when the media plane tells of a recording.

Catalogue writes run in a worker thread (a long import may hold the database's write lock); a dump
left unfinished by a crash (a worker killed, the server killed) is finalised at the next start, in a
process of its own (`media.recording.finalise_elsewhere`), and catalogued like any other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import av

from media.api import EventKind, MediaEvent, RecordingRequest
from media.recording import RecordingError, finalise_elsewhere
from media.rtpdump import DumpError
from scheduler.model import Lesson
from scheduler.recordings import Recordings

log = logging.getLogger(__name__)

RECORDING_EVENTS = (EventKind.RECORDING_STARTED, EventKind.RECORDING_FINISHED, EventKind.RECORDING_FAILED)


class RecordingKeeper:
    def __init__(self, recordings: Recordings) -> None:
        self.recordings = recordings
        self.since = time.time()  # dumps started before this process are a crash's, to finalise

    async def request_for(self, lesson: Lesson) -> RecordingRequest | None:
        """The room's recording request, or None when the lesson is not recorded (a replayed lesson is
        its recording already)."""
        if lesson.replay_of is not None:
            return None
        try:
            record = await asyncio.to_thread(self.recordings.records, lesson)
        except Exception:
            log.exception("lesson %d: could not tell whether to record it; it is recorded", lesson.id)
            record = True
        if not record:
            return None
        folder = self.recordings.folder
        return RecordingRequest(str(folder), self.recordings.config.keyframe_every_s)

    async def on_event(self, lesson_id: int, ev: MediaEvent) -> None:
        """Catalogue what the media plane said of a recording (never raises: logged)."""
        dump = str(ev.detail.get("dump") or "")
        participant = ev.participant_id or ""
        try:
            if ev.kind == EventKind.RECORDING_STARTED:
                await asyncio.to_thread(self.recordings.started, lesson_id, participant, dump, ev.at)
            elif ev.kind == EventKind.RECORDING_FINISHED:
                await asyncio.to_thread(self.recordings.finished, lesson_id, participant, dump, dict(ev.detail))
            elif ev.kind == EventKind.RECORDING_FAILED:
                error = str(ev.detail.get("error") or "unknown error")
                log.error("lesson %d: recording %s failed: %s", lesson_id, dump, error)
                await asyncio.to_thread(self.recordings.failed, lesson_id, participant, dump, error,
                                        still_live=bool(ev.detail.get("live")))
        except Exception:
            log.exception("lesson %d: the recording catalogue could not take %s", lesson_id, ev.kind)

    async def recover(self) -> int:
        """Finalise dumps a crash left unfinished; how many became playable."""
        done = 0
        for rec in await asyncio.to_thread(self.recordings.unfinished, self.since):
            dump = Path(rec.dump_path)
            try:
                info = await finalise_elsewhere(dump)
            except (RecordingError, DumpError, OSError, ValueError, av.FFmpegError) as exc:
                log.error("recording %d (lesson %d): the dump left by a crash cannot be finalised: %s",
                          rec.id, rec.lesson_id, exc)
                await asyncio.to_thread(self.recordings.failed, rec.lesson_id, rec.participant, rec.dump_path,
                                        f"left unfinished and not recoverable: {exc}")
                continue
            facts = {**info.to_json(), "write_error": "the recording was cut short by a crash"}
            await asyncio.to_thread(self.recordings.finished, rec.lesson_id, rec.participant, rec.dump_path, facts)
            log.warning("recording %d (lesson %d): finalised after a crash, %.1f s kept", rec.id, rec.lesson_id,
                        info.duration_s)
            done += 1
        return done
