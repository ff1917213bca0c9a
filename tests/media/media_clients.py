"""aiortc client peers for the media tests: a publisher drawing frame numbers, decoding subscribers.

All traffic is on 127.0.0.1: the clients announce a loopback host candidate, like the SFU.
"""

from __future__ import annotations

import asyncio
import fractions
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from av import VideoFrame

from media.api import MediaPlane, ParticipantRole
from media.ice import control_host_candidates
from media.rtp_header import RtpHeader

WIDTH, HEIGHT = 320, 240
BITS = 16
FPS = 30
CLIENT_PORTS = (52000, 59999)
# like the SFU and browsers: every m-line on one transport (aiortc's default strands later audio m-lines)
BUNDLE = RTCBundlePolicy.MAX_BUNDLE


def draw_number(source: int, number: int) -> np.ndarray:
    """A frame showing `source` (4 bits) and `number` (12 bits) as 16 black/white bars."""
    value = (source & 0xF) << 12 | (number & 0xFFF)
    img = np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
    w = WIDTH // BITS
    for bit in range(BITS):
        on = value >> (BITS - 1 - bit) & 1
        img[60:180, bit * w : (bit + 1) * w] = 235 if on else 16
    return img


def read_number(frame: VideoFrame) -> tuple[int, int]:
    gray = frame.to_ndarray(format="gray")
    h, wd = gray.shape
    w = wd // BITS
    value = 0
    for bit in range(BITS):
        x = bit * w + w // 2
        patch = gray[h // 2 - 10 : h // 2 + 10, x - 3 : x + 3]
        value = value << 1 | (1 if patch.mean() > 128 else 0)
    return value >> 12, value & 0xFFF


class NumberedVideoTrack(MediaStreamTrack):
    """Live frames with their number drawn in, encoded by aiortc (so PLI yields a real keyframe)."""

    kind = "video"

    def __init__(self, source: int) -> None:
        super().__init__()
        self.source = source
        self.count = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self.count / FPS
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = VideoFrame.from_ndarray(draw_number(self.source, self.count), format="rgb24")
        frame.pts = self.count * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        self.count += 1
        return frame


async def _negotiate(
    plane: MediaPlane,
    pc: RTCPeerConnection,
    room_id: str,
    participant_id: str,
    role: ParticipantRole,
    **kwargs: object,
) -> None:
    control_host_candidates(pc, ["127.0.0.1"], *CLIENT_PORTS)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await plane.join(room_id, participant_id, role, pc.localDescription.sdp, **kwargs)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


def tap_rtp(pc: RTCPeerConnection, hook: Callable[[bytes], bool]) -> None:
    """Call `hook` on every decrypted RTP packet the client gets; False drops it before aiortc."""
    dtls = pc.getTransceivers()[0].receiver.transport
    original = dtls._handle_rtp_data

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        if hook(data):
            await original(data, arrival_time_ms)

    dtls._handle_rtp_data = handle


@dataclass
class Publisher:
    pc: RTCPeerConnection
    video: NumberedVideoTrack

    @classmethod
    async def connect(
        cls,
        plane: MediaPlane,
        room_id: str,
        participant_id: str,
        role: ParticipantRole = ParticipantRole.LEAD,
        source: int = 1,
        recv_slots: bool = False,
    ) -> Publisher:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=BUNDLE))
        video = NumberedVideoTrack(source)
        pc.addTransceiver(video, direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        if recv_slots:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
        await _negotiate(plane, pc, room_id, participant_id, role)
        return cls(pc, video)

    async def close(self) -> None:
        await self.pc.close()


@dataclass
class Received:
    source: int
    number: int
    at: float


@dataclass
class Subscriber:
    pc: RTCPeerConnection
    frames: list[Received] = field(default_factory=list)
    packets: list[tuple[int, int, int, int]] = field(default_factory=list)  # (ssrc, pt, seq, ts)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    drop: Callable[[RtpHeader], bool] | None = None
    dropped: int = 0
    by_mid: dict[str, list[Received]] = field(default_factory=dict)  # pictures per video slot (decode_all)

    @classmethod
    async def connect(
        cls,
        plane: MediaPlane,
        room_id: str,
        participant_id: str,
        role: ParticipantRole = ParticipantRole.RECEIVER,
        video_slots: int = 1,
        audio_slots: int = 1,
        drop: Callable[[RtpHeader], bool] | None = None,
        publish_source: int | None = None,
        decode_all: bool = False,
        **kwargs: object,
    ) -> Subscriber:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=BUNDLE))
        sub = cls(pc, drop=drop)
        if publish_source is not None:
            pc.addTransceiver(NumberedVideoTrack(publish_source), direction="sendonly")
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        for _ in range(video_slots):
            pc.addTransceiver("video", direction="recvonly")
        for _ in range(audio_slots):
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind != "video" or (sub.tasks and not decode_all):
                return
            mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), None)
            sub.tasks.append(asyncio.ensure_future(sub._consume(track, mid, first=not sub.tasks)))

        await _negotiate(plane, pc, room_id, participant_id, role, **kwargs)
        tap_rtp(pc, sub._tap)
        return sub

    def _tap(self, data: bytes) -> bool:
        hdr = RtpHeader.parse(data)
        if hdr is None:
            return True
        if self.drop is not None and self.drop(hdr):
            self.dropped += 1
            return False
        self.packets.append((hdr.ssrc, hdr.payload_type, hdr.seq, hdr.timestamp))
        return True

    async def _consume(self, track: MediaStreamTrack, mid: str | None, first: bool) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            source, number = read_number(frame)
            got = Received(source, number, time.monotonic())
            if first:
                self.frames.append(got)
            self.by_mid.setdefault(mid or "", []).append(got)

    async def wait_frames(self, count: int, timeout: float = 20.0, source: int | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [f for f in self.frames if source is None or f.source == source]
            if len(got) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {len(self.frames)} frames after {timeout}s (wanted {count} of {source})")

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.pc.close()


def random_drop(rate: float, seed: int) -> Callable[[RtpHeader], bool]:
    """Drop first transmissions of the first stream seen (the video slot) at `rate`; never RTX."""
    rnd = random.Random(seed)
    seen: set[int] = set()
    primary: list[int] = []

    def drop(hdr: RtpHeader) -> bool:
        if not primary:
            primary.append(hdr.ssrc)
        if hdr.ssrc != primary[0] or hdr.seq in seen:
            return False
        seen.add(hdr.seq)
        return rnd.random() < rate

    return drop
