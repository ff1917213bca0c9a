"""Recording a lesson through the live SFU: aiortc publishers (VP8, H.264), real sockets, real workers.

The lead's pictures carry their frame number; the file is checked with PyAV as a viewer would: its
duration against the frames sent, every frame decodable, numbers in order, audio and video in step,
the courseware in its own file too. With 5 % of the uplink lost (the SFU NACKs, the recording takes the
repairs), a publisher that reconnects half-way, and a worker killed with SIGKILL mid-lesson.
"""

from __future__ import annotations

import asyncio
import fractions
import os
import random
import signal
import time
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from av import VideoFrame
from media_clients import BUNDLE, FPS, Subscriber, _negotiate, draw_number, read_number
from test_forwarding import EventLog

from media.api import EventKind, ParticipantRole, RecordingRequest
from media.config import MediaConfig
from media.local import LocalMediaPlane
from media.recording import finalise
from media.rtp_header import RtpHeader
from media.workers import WorkerMediaPlane

ROOM = "lesson-rec"


class CountingTrack(MediaStreamTrack):
    """Frames numbered from `first` on, in real time (a reconnecting publisher goes on counting)."""

    kind = "video"

    def __init__(self, source: int, first: int = 0) -> None:
        super().__init__()
        self.source, self.first, self.count = source, first, 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.count / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = VideoFrame.from_ndarray(draw_number(self.source, self.first + self.count), format="rgb24")
        frame.pts, frame.time_base = self.count * (90000 // FPS), fractions.Fraction(1, 90000)
        self.count += 1
        return frame


async def _lead(plane, first: int = 0, codec: str | None = None, loss: float = 0.0,
                seed: int = 1) -> tuple[RTCPeerConnection, CountingTrack]:
    """The lead: camera (source 1), courseware (source 2) and microphone; `loss` of the camera's first
    transmissions dropped before they leave (retransmissions get through, as on a lossy uplink)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=BUNDLE))
    camera = CountingTrack(1, first)
    cam = pc.addTransceiver(camera, direction="sendonly")
    screen = pc.addTransceiver(CountingTrack(2, first), direction="sendonly")
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    if codec is not None:
        caps = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == f"video/{codec}"]
        cam.setCodecPreferences(caps)
        screen.setCodecPreferences(caps)
    await _negotiate(plane, pc, ROOM, "lead", ParticipantRole.LEAD)
    if loss:
        rng = random.Random(seed)
        dtls = cam.sender.transport
        primary = cam.sender._ssrc
        original = dtls._send_rtp

        async def lossy(data: bytes) -> None:
            hdr = RtpHeader.parse(data)
            if hdr is not None and hdr.ssrc == primary and rng.random() < loss:
                return
            await original(data)

        dtls._send_rtp = lossy
    return pc, camera


def _check(path: Path, min_seconds: float) -> tuple[list[int], float]:
    """Every frame decodes, the numbers are in order, audio and video start and end together; the
    numbers and the file's duration."""
    with av.open(str(path)) as c:
        duration = float(c.duration) / 1e6
        video = [(read_number(f), float(f.time)) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = [float(f.time) for f in c.decode(audio=0)]
    numbers = [n for (source, n), _ in video]
    assert {source for (source, _), _ in video} == {1}, "the camera track shows the camera"
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), "frames in order, none twice"
    assert (numbers[-1] - numbers[0]) / FPS >= min_seconds
    # the file lasts as long as the pictures it shows (within half a second)
    assert abs(duration - (numbers[-1] - numbers[0]) / FPS) < 0.5, (duration, numbers[0], numbers[-1])
    # audio and video in step: they start and end within 100 ms of each other
    assert abs(video[0][1] - audio[0]) < 0.1 and abs(video[-1][1] - audio[-1]) < 0.1 + 1 / FPS, (video[0], audio[0])
    return numbers, duration


def _port_base(offset: int) -> int:
    return 44000 + (os.getpid() % 8) * 200 + offset


@pytest.fixture
async def plane(tmp_path):
    base = _port_base(0)
    p = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=base, udp_port_max=base + 99))
    await p.start()
    yield p
    await p.stop()


async def test_a_20_second_vp8_lesson_with_loss_and_a_reconnect_is_recorded_whole(plane, tmp_path):
    log = EventLog(plane)
    await plane.open_room(ROOM, RecordingRequest(str(tmp_path), keyframe_every_s=2.0))
    pc, camera = await _lead(plane, loss=0.05)
    room = await Subscriber.connect(plane, ROOM, "class-1")
    started = await log.wait(EventKind.RECORDING_STARTED, "lead")
    assert set(started.detail["slots"]) == {"camera", "screen", "audio"}
    await room.wait_frames(30)
    await asyncio.sleep(10)
    sent = camera.first + camera.count
    await pc.close()
    # the lead's box reconnects under the same participant id: the recording goes on in the same tracks
    pc, camera = await _lead(plane, first=sent + 15, loss=0.05, seed=2)
    await asyncio.sleep(10)
    stats = await plane.stats(ROOM)
    await plane.close_room(ROOM)
    done = await log.wait(EventKind.RECORDING_FINISHED, "lead", timeout=30)
    await pc.close()
    await room.close()
    # the SFU asked for what was lost, and the camera reached the classroom throughout
    assert stats["participants"]["lead"]["published"]["camera"]["nacks_sent"] > 0
    info = done.detail
    path = Path(info["path"])
    assert path.suffix == ".webm" and info["container"] == "webm" and path.parent == tmp_path / ROOM
    numbers, _ = _check(path, min_seconds=19.0)
    assert numbers[-1] >= sent + 15 + 9 * FPS  # the second connection is in the file
    # after the repairs almost every picture is there: the gap of the reconnect aside, 90 % of the frames
    assert len(numbers) >= 0.9 * (numbers[-1] - numbers[0] - 30)
    assert info["sha256"] and info["size_bytes"] == path.stat().st_size
    # the courseware in a file of its own, for the player beside the camera
    screen = Path(info["screen_path"])
    with av.open(str(screen)) as c:
        sources = {read_number(f)[0] for f in c.decode(video=0)}
    assert sources == {2}


async def test_an_h264_lesson_is_recorded_as_mp4_without_transcoding(plane, tmp_path):
    log = EventLog(plane)
    await plane.open_room(ROOM, RecordingRequest(str(tmp_path), keyframe_every_s=2.0))
    pc, _ = await _lead(plane, codec="h264")
    room = await Subscriber.connect(plane, ROOM, "class-1")
    await room.wait_frames(30)
    await asyncio.sleep(8)
    await plane.close_room(ROOM)
    done = await log.wait(EventKind.RECORDING_FINISHED, "lead", timeout=30)
    await pc.close()
    await room.close()
    path = Path(done.detail["path"])
    assert path.suffix == ".mp4"
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "opus"
    _check(path, min_seconds=7.5)


async def test_a_worker_killed_mid_lesson_leaves_a_dump_that_plays_up_to_its_last_seconds(tmp_path):
    base = _port_base(100)
    plane = WorkerMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=base,
                                         udp_port_max=base + 99, workers=1))
    await plane.start()
    try:
        log = EventLog(plane)
        await plane.open_room(ROOM, RecordingRequest(str(tmp_path), keyframe_every_s=2.0))
        opened = await log.wait(EventKind.ROOM_OPENED)
        pc, camera = await _lead(plane)
        started = await log.wait(EventKind.RECORDING_STARTED, "lead")
        await asyncio.sleep(6)
        pid = opened.detail["pid"]
        sent = camera.count
        os.kill(pid, signal.SIGKILL)
        await pc.close()
    finally:
        await plane.stop()
    dump = Path(started.detail["dump"])
    assert dump.exists()
    info = finalise(dump)  # what the catalogue does for a dump left behind, at the next start
    numbers, _ = _check(info.path, min_seconds=4.0)
    assert numbers[-1] >= sent - 3 * FPS  # at most the last seconds are lost


async def test_a_full_disk_stops_the_recording_and_never_the_lesson(plane, tmp_path):
    log = EventLog(plane)
    await plane.open_room(ROOM, RecordingRequest(str(tmp_path), keyframe_every_s=2.0))
    pc, _ = await _lead(plane)
    room = await Subscriber.connect(plane, ROOM, "class-1")
    await log.wait(EventKind.RECORDING_STARTED, "lead")
    await room.wait_frames(30)
    await asyncio.sleep(3)
    # the disk fills: from now on every write of the dump fails as on a full disk (ENOSPC from /dev/full)
    writer = plane.rooms[ROOM].recorder.writers["lead"]
    original = writer._file
    writer._file = open("/dev/full", "wb")  # noqa: SIM115 - the writer closes it
    original.close()  # what it wrote so far is on the disk
    failed = await log.wait(EventKind.RECORDING_FAILED, "lead", timeout=10)
    assert failed.detail["live"] and "space" in failed.detail["error"].lower(), failed.detail
    # the classroom's picture goes on at the full frame rate
    before = len(room.frames)
    await asyncio.sleep(3)
    assert len(room.frames) - before >= 2.5 * FPS * 0.9, len(room.frames) - before
    await plane.close_room(ROOM)
    done = await log.wait(EventKind.RECORDING_FINISHED, "lead", timeout=30)
    await pc.close()
    await room.close()
    # what was written before the disk filled is kept, plays, and says why it is short
    _check(Path(done.detail["path"]), min_seconds=2.5)
    assert done.detail["write_error"]


async def test_a_recording_exports_to_one_side_by_side_mp4_for_sharing(plane, tmp_path):
    from media.export import ExportError, export_side_by_side

    log = EventLog(plane)
    await plane.open_room(ROOM, RecordingRequest(str(tmp_path), keyframe_every_s=2.0))
    pc, _ = await _lead(plane)
    room = await Subscriber.connect(plane, ROOM, "class-1")
    await room.wait_frames(30)
    await asyncio.sleep(4)
    await plane.close_room(ROOM)
    done = await log.wait(EventKind.RECORDING_FINISHED, "lead", timeout=30)
    await pc.close()
    await room.close()
    seen: list[float] = []
    out = tmp_path / "shared.mp4"
    exported = export_side_by_side(Path(done.detail["path"]), Path(done.detail["screen_path"]), out, seen.append)
    assert exported.side_by_side and seen[-1] == 1.0 and seen == sorted(seen)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.audio[0].codec_context.name == "aac"
        pictures = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert pictures[0].shape == (720, 2560, 3) and len(pictures) >= 4 * FPS * 0.9
    # the camera on the left, the courseware on the right, both moving on in step
    halves = []
    for picture in (pictures[len(pictures) // 4], pictures[-5]):
        row = []
        for left in (0, 1280):
            inner = np.ascontiguousarray(picture[:, left + 160 : left + 1120])  # the 4:3 picture, pillarboxed
            row.append(read_number(VideoFrame.from_ndarray(inner, format="rgb24")))
        halves.append(row)
    assert [s for s, _ in halves[0]] == [1, 2] and [s for s, _ in halves[1]] == [1, 2], halves
    assert halves[1][0][1] > halves[0][0][1] and abs(halves[1][0][1] - halves[1][1][1]) <= 3, halves
    with pytest.raises(ExportError, match="missing"):
        export_side_by_side(tmp_path / "gone.webm", None, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4.part").exists()
