"""The recorder: a sink of the media plane that keeps what a lesson's lead publishes, without decoding.

A room with recording on gives each published track of its lead a `TrackSink` (`InboundTrack.recorder`),
called with every packet the SFU accepted (retransmissions included, so what the live path repaired is
repaired in the recording too). The sink has the RTP packet built back by the lesson's
`DumpWriter` (`media/rtpdump.py`), whose own thread writes it: the forwarding path pays a struct pack
and a queue append, a slow or full disk drops recording and never live media. While recording, the
room asks the lead for a keyframe every `keyframe_every_s`, so a recording can be played, and later
replayed into a room, from any few seconds on. When the lesson closes, `close()` finalises each dump
into a playable file (`media/recording.py`) in a process of its own, at low priority.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import av

from media.recording import RecordingError, RecordingInfo, finalise_elsewhere
from media.rtpdump import DumpError, DumpWriter

log = logging.getLogger(__name__)

CODECS = {"vp8": "vp8", "h264": "h264", "opus": "opus"}


@dataclass
class TrackSink:
    """One published track's packets into the dump (called on the forwarding path: keep it cheap)."""

    writer: DumpWriter
    number: int
    ssrc: int
    packets: int = 0

    def __call__(self, seq: int, ts: int, marker: int, pt: int, payload: bytes) -> None:
        self.packets += 1
        self.writer.rtp(self.number, self.ssrc, seq, ts, marker, pt, payload)


@dataclass
class LessonRecorder:
    """The recording of one room: one dump per publisher, finalised when the room closes."""

    folder: Path
    room_id: str
    keyframe_every_s: float = 4.0
    writers: dict[str, DumpWriter] = field(default_factory=dict)  # participant id -> its dump
    started: float = field(default_factory=time.time)
    last_keyframe_request: float = 0.0
    reported: set[str] = field(default_factory=set)  # participants whose dump error was reported

    def sink(self, participant_id: str, slot: str, media_kind: str, codec: str, clock_rate: int,
             ssrc: int) -> TrackSink | None:
        """A sink for one published track, or None when its codec cannot be recorded (or the dump failed)."""
        name = CODECS.get(codec.lower())
        if name is None:
            log.warning("room %s: %s's %s is %s, which is not recorded", self.room_id, participant_id, slot, codec)
            return None
        writer = self.writers.get(participant_id)
        try:
            if writer is None:
                stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.started))
                writer = DumpWriter(self.folder / self.room_id / f"{participant_id}-{stamp}.rtpdump")
                self.writers[participant_id] = writer
            number = writer.track(media_kind, name, clock_rate, slot, participant_id, ssrc)
        except (OSError, DumpError) as exc:
            log.error("room %s: recording %s's %s cannot start: %s", self.room_id, participant_id, slot, exc)
            return None
        return TrackSink(writer, number, ssrc)

    def keyframe_due(self, now: float) -> bool:
        """Whether to ask the lead for a keyframe now (every `keyframe_every_s` while recording)."""
        if not self.writers or now - self.last_keyframe_request < self.keyframe_every_s:
            return False
        self.last_keyframe_request = now
        return True

    def status(self) -> dict[str, object]:
        return {participant: {"path": str(w.path), "written": w.written, "bytes": w.bytes, "dropped": w.dropped,
                              "error": w.error} for participant, w in self.writers.items()}

    def new_errors(self) -> list[tuple[str, DumpWriter]]:
        """Dumps whose writing failed since the last call (a full disk): each reported once."""
        failed = [(p, w) for p, w in self.writers.items() if w.error and p not in self.reported]
        self.reported.update(p for p, _ in failed)
        return failed

    async def close(self) -> list[Finished]:
        """Stop writing and finalise every dump (in a thread: muxing a long lesson takes seconds)."""
        done: list[Finished] = []
        for participant, writer in list(self.writers.items()):
            await asyncio.to_thread(writer.close)
            try:
                info = await finalise_elsewhere(writer.path)
            except (RecordingError, DumpError, OSError, ValueError, av.FFmpegError) as exc:
                log.error("room %s: the recording of %s could not be finalised: %s (its dump %s is kept)",
                          self.room_id, participant, exc, writer.path)
                done.append(Finished(participant, writer.path, None, str(exc)))
            else:
                done.append(Finished(participant, writer.path, info, writer.error))
        self.writers.clear()
        return done


@dataclass(frozen=True, slots=True)
class Finished:
    """What became of one dump: its file's facts, or why there is none (the dump is kept either way)."""

    participant_id: str
    dump: Path
    info: RecordingInfo | None
    error: str | None
