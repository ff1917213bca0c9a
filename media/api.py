"""The contract between the media plane and the rest of the program.

Signaling, monitoring, recording and edge nodes talk to the SFU only through `MediaPlane`.
Two implementations exist: one that runs rooms in the calling process (tests, benchmarks) and one
that runs them in worker processes, one per core (the default for `classroom serve`).

Each participant of a room has one peer connection. The client always makes the offer:
- its send (sendonly/sendrecv) m-lines are the tracks it publishes; `tracks` maps their mids to a
  `TrackKind`;
- its recvonly m-lines are *slots* that the SFU fills with other participants' tracks and can
  re-point (talk-back switch, publisher reconnect) without renegotiation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class TrackKind(StrEnum):
    CAMERA = "camera"
    AUDIO = "audio"
    SCREEN = "screen"


class SlotKind(StrEnum):
    """What a subscriber's recvonly m-line (slot) shows; the SFU re-points it without renegotiation."""

    CAMERA = "camera"  # the lead's camera
    AUDIO = "audio"  # the lead's microphone
    SCREEN = "screen"  # the lead's courseware
    TALKBACK_CAMERA = "talkback_camera"  # the called classroom's camera during talk-back
    TALKBACK_AUDIO = "talkback_audio"  # the called classroom's microphone during talk-back
    PREVIEW = "preview"  # the lead's thumbnails: one receiving classroom's camera each, first come first served


class ParticipantRole(StrEnum):
    LEAD = "lead"  # the lead classroom: publishes camera, audio, screen
    RECEIVER = "receiver"  # a receiving classroom: watches; publishes for talk-back
    OBSERVER = "observer"  # watches only; never publishes


class EventKind(StrEnum):
    PUBLISHER_UP = "publisher_up"
    PUBLISHER_DOWN = "publisher_down"
    SUBSCRIBER_UP = "subscriber_up"
    SUBSCRIBER_DOWN = "subscriber_down"
    FIRST_KEYFRAME = "first_keyframe"
    TALKBACK = "talkback"
    PREVIEW = "preview"  # which classroom each of a lead's preview slots shows changed
    ROOM_OPENED = "room_opened"
    ROOM_CLOSED = "room_closed"
    ROOM_LOST = "room_lost"  # the worker that owned the room died
    # the lead's media is being written (detail: dump, slots); its file is ready (detail: the file's facts,
    # `media.recording.RecordingInfo.to_json()`, and dump); or it could not be written or finalised (error)
    RECORDING_STARTED = "recording_started"
    RECORDING_FINISHED = "recording_finished"
    RECORDING_FAILED = "recording_failed"
    # a replay (`start_replay`) reached the end of its recording: its lead has gone off air
    REPLAY_ENDED = "replay_ended"
    # a relay link heard nothing authentic from its other end for `relay.LINK_SILENT_S` (detail: link_id,
    # end — origin or copy —, silent_s); said once, until it is heard again (then LINK_UP)
    LINK_DOWN = "link_down"
    LINK_UP = "link_up"


@dataclass(frozen=True, slots=True)
class MediaEvent:
    kind: EventKind
    room_id: str
    participant_id: str | None = None
    track: TrackKind | None = None
    at: float = 0.0  # time.time()
    detail: Mapping[str, Any] = field(default_factory=dict)


MAX_PREVIEW_SLOTS = 12  # preview slots a lead may offer; the web page offers 6


@dataclass(frozen=True, slots=True)
class RecordingRequest:
    """Record a room: the lead's camera, courseware and audio into `folder` (a dump per publisher
    connection family, finalised when the room closes), asking for a keyframe every `keyframe_every_s`
    so the recording can be played and replayed from any few seconds on."""

    folder: str
    keyframe_every_s: float = 4.0


class MediaError(Exception):
    """A request the media plane refuses: unknown room, broken SDP, observer publishing..."""


class MediaPlane(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def open_room(
        self, room_id: str, recording: RecordingRequest | None = None, fast_start: bool = False
    ) -> None:
        """Open a room (opening one already open does nothing); with `recording`, the lead is recorded.

        `fast_start` is for a room whose lead cannot make a keyframe when asked (a replay): a classroom
        that joins starts at the lead's last keyframe, the frames since sent at once, instead of
        waiting for the next one."""
        ...

    async def close_room(self, room_id: str) -> None: ...

    async def join(
        self,
        room_id: str,
        participant_id: str,
        role: ParticipantRole,
        offer_sdp: str,
        tracks: Mapping[str, TrackKind] | None = None,
        slots: Mapping[str, SlotKind] | None = None,
    ) -> str:
        """Admit a participant with its SDP offer; returns the SDP answer.

        `tracks` maps the mids of its send m-lines to what they carry; `slots` the mids of its
        recvonly m-lines to what they show. Either may be None: send m-lines are then, in order,
        video -> camera, screen; audio -> audio. Recvonly m-lines of a receiver or observer are, in
        order, video -> camera, screen, talkback_camera; audio -> audio, talkback_audio; of the lead,
        video -> talkback_camera, then preview for each further one; audio -> talkback_audio. Only the
        lead may have preview slots (at most `MAX_PREVIEW_SLOTS`).

        A participant id that is already in the room replaces the earlier connection (reconnect),
        and the streams it published resume on the same outgoing slots of every subscriber.
        """
        ...

    async def leave(self, room_id: str, participant_id: str) -> None: ...

    async def add_candidate(self, room_id: str, participant_id: str, candidate: Mapping[str, Any]) -> None:
        """A remote ICE candidate trickled after the offer: {"candidate", "sdpMid", "sdpMLineIndex"}.

        An empty "candidate" signals end-of-candidates."""
        ...

    async def set_talkback(self, room_id: str, participant_id: str | None, to_all: bool = False) -> None:
        """Call on a receiving classroom (None ends talk-back); `to_all` also sends it to every classroom."""
        ...

    async def start_replay(self, room_id: str, camera: str, screen: str | None = None, offset_s: float = 0.0) -> None:
        """Publish a recording into the room as its lead (`media/replay.py`), from `offset_s` into it: in the
        process that owns the room, so replays spread over the workers as rooms do. Replaces a replay
        already running there; `REPLAY_ENDED` when the file has ended; MediaError if it cannot start."""
        ...

    async def stop_replay(self, room_id: str) -> None:
        """Stop the room's replay, if one runs (closing the room stops it too)."""
        ...

    async def stats(self, room_id: str | None = None) -> dict[str, Any]:
        """A JSON-able snapshot: per room, per participant, per track/slot counters and RTCP figures."""
        ...

    def events(self) -> AsyncIterator[MediaEvent]:
        """Every event from now on, for one consumer (call once per consumer)."""
        ...


def candidate_fields(candidate: Mapping[str, Any]) -> tuple[str, str | None, int | None]:
    """(candidate, sdpMid, sdpMLineIndex) of a trickled candidate, checked; MediaError if malformed."""
    text = candidate.get("candidate")
    mid = candidate.get("sdpMid")
    index = candidate.get("sdpMLineIndex")
    if not isinstance(text, str) or len(text) > 1024:
        raise MediaError("a trickled candidate needs 'candidate' as a string")
    if mid is not None and not isinstance(mid, str):
        raise MediaError("sdpMid must be a string")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise MediaError("sdpMLineIndex must be an integer")
    return text, mid, index
