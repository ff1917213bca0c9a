"""The baseline the SFU is measured against: an aiortc relay built on `aiortc.contrib.media.MediaRelay`.

This is how aiortc's examples fan one publisher out: the server's receiver decodes the publisher's
video and audio once, `MediaRelay` hands the decoded frames to every subscriber's track, and every
subscriber's sender encodes them again (VP8, Opus). It speaks the same `join` contract as the media
plane (the client offers; recvonly m-lines are filled with the lead's tracks) so the benchmark drives
both the same way. It is a yardstick only, never part of the product.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.sdp import SessionDescription

from media.api import EventKind, MediaError, MediaEvent, ParticipantRole, RecordingRequest, TrackKind
from media.bench_net import rtc_configuration

TRACK_WAIT = 10.0


@dataclass(slots=True)
class _Room:
    relay: MediaRelay = field(default_factory=MediaRelay)
    peers: dict[str, RTCPeerConnection] = field(default_factory=dict)
    published: dict[TrackKind, MediaStreamTrack] = field(default_factory=dict)
    published_changed: asyncio.Event = field(default_factory=asyncio.Event)


class MediaRelayPlane:
    """A MediaPlane-shaped relay that decodes once and re-encodes per subscriber (the baseline)."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}
        self._events: asyncio.Queue[MediaEvent] = asyncio.Queue(maxsize=10_000)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for room_id in list(self._rooms):
            await self.close_room(room_id)

    async def open_room(self, room_id: str, recording: RecordingRequest | None = None) -> None:
        if recording is not None:
            raise MediaError("the baseline SFU does not record")
        if room_id in self._rooms:
            raise MediaError(f"room {room_id} is already open")
        self._rooms[room_id] = _Room()
        self._emit(EventKind.ROOM_OPENED, room_id)

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.pop(room_id, None)
        if room is None:
            return
        await asyncio.gather(*(pc.close() for pc in room.peers.values()), return_exceptions=True)
        self._emit(EventKind.ROOM_CLOSED, room_id)

    async def join(
        self,
        room_id: str,
        participant_id: str,
        role: ParticipantRole,
        offer_sdp: str,
        tracks: Mapping[str, TrackKind] | None = None,
    ) -> str:
        room = self._rooms.get(room_id)
        if room is None:
            raise MediaError(f"no room {room_id}")
        old = room.peers.pop(participant_id, None)
        if old is not None:
            await old.close()
        pc = RTCPeerConnection(rtc_configuration())
        room.peers[participant_id] = pc
        kinds = dict(tracks or {})

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), None)
            kind = kinds.get(mid or "") or (TrackKind.AUDIO if track.kind == "audio" else TrackKind.CAMERA)
            room.published[TrackKind(kind)] = track
            room.published_changed.set()
            self._emit(EventKind.PUBLISHER_UP, room_id, participant_id, TrackKind(kind))

        offered = {m.rtp.muxId: m.direction for m in SessionDescription.parse(offer_sdp).media}
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            if offered.get(transceiver.mid or "") != "recvonly":
                continue
            # The client's recvonly m-line: fill it with the lead's track of that kind.
            want = TrackKind.AUDIO if transceiver.kind == "audio" else TrackKind.CAMERA
            source = await self._wait_published(room, want)
            transceiver.sender.replaceTrack(room.relay.subscribe(source, buffered=False))
            transceiver.direction = "sendonly"
        await pc.setLocalDescription(await pc.createAnswer())
        self._emit(EventKind.SUBSCRIBER_UP, room_id, participant_id)
        return pc.localDescription.sdp

    async def _wait_published(self, room: _Room, kind: TrackKind) -> MediaStreamTrack:
        deadline = time.monotonic() + TRACK_WAIT
        while kind not in room.published:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MediaError(f"no published {kind} track to relay")
            room.published_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(room.published_changed.wait(), left)
        return room.published[kind]

    async def leave(self, room_id: str, participant_id: str) -> None:
        room = self._rooms.get(room_id)
        pc = room.peers.pop(participant_id, None) if room else None
        if pc is not None:
            await pc.close()
            self._emit(EventKind.SUBSCRIBER_DOWN, room_id, participant_id)

    async def set_talkback(self, room_id: str, participant_id: str | None, to_all: bool = False) -> None:
        raise MediaError("the MediaRelay baseline has no talk-back")

    async def start_replay(self, room_id: str, camera: str, screen: str | None = None, offset_s: float = 0.0) -> None:
        raise MediaError("the MediaRelay baseline does not replay recordings")

    async def stop_replay(self, room_id: str) -> None:
        return None

    async def stats(self, room_id: str | None = None) -> dict[str, Any]:
        rooms = {rid: r for rid, r in self._rooms.items() if room_id in (None, rid)}
        return {
            rid: {
                "participants": {pid: {"connection_state": pc.connectionState} for pid, pc in room.peers.items()},
                "published": sorted(room.published),
            }
            for rid, room in rooms.items()
        }

    async def events(self) -> AsyncIterator[MediaEvent]:
        while True:
            yield await self._events.get()

    def _emit(
        self, kind: EventKind, room_id: str, participant_id: str | None = None, track: TrackKind | None = None
    ) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(MediaEvent(kind, room_id, participant_id, track, time.time()))
