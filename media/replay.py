"""Replay: a lesson's recording published into a room as its lead would, without transcoding.

A replayed lesson (录播) opens a room like a live one; `ReplayPublisher` joins it as the lead (participant
`lead-replay`) with an aiortc connection over loopback, run by the media plane that owns the room
(`LocalMediaPlane.start_replay`, so in that room's worker process). Its tracks are the recording's
demuxed packets (`av.Packet`, never decoded): aiortc's payloaders put them into RTP (VP8 as it is;
H.264 from MP4 turned into Annex B first, parameter sets before each keyframe; Opus as it is), and
each packet leaves when its timestamp says, on one clock for camera, courseware and sound. So the
receiving pages see a lead like any other and need no change.

A classroom that joins mid-way is started at the last keyframe by the room (opened with `fast_start`,
`DownTrack._fast_start`), so it has a picture at once. A replay that starts late (the server was
restarted, the room was lost) starts at the keyframe before the time it should be at.
When the file ends, the tracks end and the lead goes off air, as when a teacher stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
from aioice.ice import get_host_addresses
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.api import MediaPlane, ParticipantRole, SlotKind, TrackKind
from media.ice import control_host_candidates

log = logging.getLogger(__name__)

PARTICIPANT_ID = "lead-replay"
READ_AHEAD_S = 1.0  # packets demuxed ahead of their time, per file
BATCH = 64  # packets demuxed per worker-thread call
_START_CODE = b"\x00\x00\x00\x01"


class ReplayError(Exception):
    """A recording that cannot be replayed (missing, unreadable, of a codec the SFU does not forward)."""


@dataclass(frozen=True)
class ReplayFiles:
    camera: Path  # camera and sound (WebM for VP8 + Opus, MP4 for H.264)
    screen: Path | None = None  # the courseware's companion file, if any


def _annexb_parameter_sets(extradata: bytes | None) -> bytes:
    """SPS and PPS of an avcC record (ISO 14496-15) in Annex B, or b'' when it is not one."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return b""
    out = bytearray()
    pos = 5
    for count_mask in (0x1F, 0xFF):
        if pos >= len(extradata):
            break
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            if pos + 2 > len(extradata):
                return bytes(out)
            (size,) = struct.unpack_from("!H", extradata, pos)
            pos += 2
            out += _START_CODE + extradata[pos : pos + size]
            pos += size
    return bytes(out)


def avcc_to_annexb(data: bytes, parameter_sets: bytes, keyframe: bool) -> bytes:
    """A length-prefixed H.264 access unit (MP4) in Annex B, with the parameter sets before a keyframe;
    already Annex B (a start code first) is left as it is."""
    if data.startswith(_START_CODE) or data.startswith(b"\x00\x00\x01"):
        return data
    out = bytearray(parameter_sets if keyframe else b"")
    pos = 0
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from("!I", data, pos)
        pos += 4
        if size == 0 or pos + size > len(data):
            break
        out += _START_CODE + data[pos : pos + size]
        pos += size
    return bytes(out)


@dataclass
class _Stream:
    kind: str  # "video" or "audio"
    codec: str  # vp8, h264, opus
    queue: deque[av.Packet] = field(default_factory=deque)


class RecordingReader:
    """One recorded file's packets, demuxed in a worker thread a batch at a time, per stream, from a
    starting offset (the keyframe at or before it)."""

    def __init__(self, path: Path, offset_s: float = 0.0) -> None:
        if not path.exists():
            raise ReplayError(f"{path.name}: the recording's file is missing")
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, OSError) as exc:
            raise ReplayError(f"{path.name}: cannot be read: {exc}") from exc
        self.path = path
        self.streams: dict[int, _Stream] = {}
        self._parameter_sets: bytes = b""
        for s in self.container.streams:
            name = s.codec_context.name
            if s.type == "video" and name in ("vp8", "h264"):
                self.streams[s.index] = _Stream("video", name)
                if name == "h264":
                    self._parameter_sets = _annexb_parameter_sets(s.codec_context.extradata)
            elif s.type == "audio" and name == "opus":
                self.streams[s.index] = _Stream("audio", name)
        if not self.streams:
            self.container.close()
            raise ReplayError(f"{path.name}: holds no VP8, H.264 or Opus stream")
        start = self.container.start_time  # in microseconds; the file's zero
        self.zero_s = start / 1_000_000 if start else 0.0
        self.ended = False
        self._lock = asyncio.Lock()
        if offset_s > 0:
            with contextlib.suppress(av.FFmpegError):
                # to the keyframe at or before the offset (the container's own index)
                self.container.seek(int(offset_s * 1_000_000), backward=True, any_frame=False)

    def stream_of(self, kind: str) -> int | None:
        return next((i for i, s in self.streams.items() if s.kind == kind), None)

    def _read_batch(self) -> list[tuple[int, av.Packet]]:
        out: list[tuple[int, av.Packet]] = []
        try:
            for packet in self.container.demux(*[self.container.streams[i] for i in self.streams]):
                if packet.size == 0 or packet.pts is None:
                    continue
                index = packet.stream.index
                stream = self.streams[index]
                if stream.codec == "h264":
                    data = avcc_to_annexb(bytes(packet), self._parameter_sets, packet.is_keyframe)
                    fixed = av.Packet(data)
                    fixed.pts, fixed.dts, fixed.time_base = packet.pts, packet.dts, packet.time_base
                    fixed.is_keyframe = packet.is_keyframe
                    packet = fixed
                out.append((index, packet))
                if len(out) >= BATCH:
                    return out
        except (av.FFmpegError, ValueError) as exc:
            log.warning("replay %s: stops reading: %s", self.path.name, exc)
        self.ended = True
        return out

    async def next(self, index: int) -> av.Packet | None:
        """The stream's next packet, or None when the file has no more."""
        stream = self.streams[index]
        while not stream.queue:
            if self.ended:
                return None
            async with self._lock:
                if stream.queue or self.ended:
                    continue
                for i, packet in await asyncio.to_thread(self._read_batch):
                    self.streams[i].queue.append(packet)
        return stream.queue.popleft()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


@dataclass
class ReplayClock:
    """One clock for every track of a replay: the first packet handed out (recording time `t0`, seconds
    from the file's start: 0, or the keyframe a late start begins at) goes at once, and recording time
    `t` is due at wall time `started + t - t0`."""

    t0: float | None = None
    started: float = 0.0

    def due(self, t: float) -> float:
        if self.t0 is None:
            self.t0, self.started = t, time.monotonic()
        return self.started + t - self.t0


class RecordedTrack(MediaStreamTrack):
    """A recorded stream as a track of demuxed packets, each handed on at its time."""

    def __init__(self, kind: str, reader: RecordingReader, index: int, clock: ReplayClock,
                 on_end: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self.reader, self.index, self.clock, self.on_end = reader, index, clock, on_end
        self.sent = 0

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self.reader.next(self.index)
        if packet is None:
            self.on_end()
            self.stop()
            raise MediaStreamError
        t = float(packet.pts * packet.time_base) - self.reader.zero_s
        wait = self.clock.due(t) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.sent += 1
        return packet


class Joins(Protocol):
    """What a replay needs of the media plane: admitting a publisher (`MediaPlane.join`)."""

    async def join(self, room_id: str, participant_id: str, role: ParticipantRole, offer_sdp: str,
                   tracks: Mapping[str, TrackKind] | None = None,
                   slots: Mapping[str, SlotKind] | None = None) -> str: ...


class ReplayPublisher:
    """Publishes a recording into a room as its lead, over loopback to the media plane."""

    def __init__(self, plane: Joins | MediaPlane, room_id: str, files: ReplayFiles, offset_s: float = 0.0,
                 participant_id: str = PARTICIPANT_ID) -> None:
        self.plane, self.room_id, self.files = plane, room_id, files
        self.offset_s = max(0.0, offset_s)
        self.participant_id = participant_id
        self.pc: RTCPeerConnection | None = None
        self.readers: list[RecordingReader] = []
        self.tracks: dict[TrackKind, RecordedTrack] = {}
        self.ended = asyncio.Event()  # every track reached the end of its file
        self._live = 0

    def _track_ended(self) -> None:
        self._live -= 1
        if self._live <= 0:
            self.ended.set()

    async def start(self) -> None:
        """Open the files and join the room; raises ReplayError or MediaError."""
        clock = ReplayClock()
        camera = RecordingReader(self.files.camera, self.offset_s)
        self.readers.append(camera)
        wanted: list[tuple[TrackKind, RecordingReader, str]] = [(TrackKind.CAMERA, camera, "video"),
                                                                (TrackKind.AUDIO, camera, "audio")]
        if self.files.screen is not None and self.files.screen.exists():
            try:
                screen = RecordingReader(self.files.screen, self.offset_s)
            except ReplayError as exc:
                log.warning("replay into %s: the courseware is left out: %s", self.room_id, exc)
            else:
                self.readers.append(screen)
                wanted.insert(1, (TrackKind.SCREEN, screen, "video"))
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        sending: list[tuple[RTCRtpTransceiver, TrackKind]] = []
        for kind, reader, media in wanted:
            index = reader.stream_of(media)
            if index is None:
                continue
            track = RecordedTrack(media, reader, index, clock, self._track_ended)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            codec = reader.streams[index].codec
            prefs = [c for c in RTCRtpSender.getCapabilities(media).codecs
                     if c.mimeType.lower() == f"{media}/{codec}"]
            transceiver.setCodecPreferences(prefs)
            self.tracks[kind] = track
            sending.append((transceiver, kind))
        if TrackKind.CAMERA not in self.tracks:
            raise ReplayError(f"{self.files.camera.name}: holds no camera picture")
        self._live = len(self.tracks)
        local = own_addresses()
        control_host_candidates(pc, sorted(local))
        await pc.setLocalDescription(await pc.createOffer())
        by_mid = {t.mid: kind for t, kind in sending if t.mid}  # mids exist once the offer is made
        answer = await self.plane.join(self.room_id, self.participant_id, ParticipantRole.LEAD,
                                       pc.localDescription.sdp, by_mid, None)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=from_this_host(answer, local), type="answer"))
        log.info("replay into %s: %s from %.1f s (%s)", self.room_id, self.files.camera.name, self.offset_s,
                 ", ".join(str(k) for k in self.tracks))

    @property
    def packets_sent(self) -> int:
        return sum(t.sent for t in self.tracks.values())

    async def stop(self) -> None:
        for track in self.tracks.values():
            track.stop()
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()
        for reader in self.readers:
            reader.close()


def own_addresses() -> set[str]:
    """This host's IPv4 addresses, loopback included: where the replay connection gathers."""
    return {"127.0.0.1", *get_host_addresses(use_ipv4=True, use_ipv6=False)}


def from_this_host(answer: str, local: set[str]) -> str:
    """The media plane's answer as seen from the server itself: a candidate on an address this host does
    not have (a public address announced behind 1:1 NAT, where the SFU binds 0.0.0.0) is reached on
    loopback at the same port."""
    lines = []
    for line in answer.split("\r\n"):
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            if len(parts) > 5 and parts[4] not in local and ":" not in parts[4]:
                parts[4] = "127.0.0.1"
                line = " ".join(parts)
        lines.append(line)
    return "\r\n".join(lines)


def recording_offset(lesson_start: float, now: float) -> float:
    """Where a replay should be at `now` for a lesson that starts at `lesson_start` (epoch seconds)."""
    return max(0.0, now - lesson_start)

