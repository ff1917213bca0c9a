"""Replaying a recording into a room through the live SFU: real aiortc peers, real sockets.

A lesson is recorded from a lead whose pictures carry their frame number, then published into a new
room from its file (`media/replay.py`): a classroom sees the numbers in order at the pace they were
recorded, with sound; a classroom that joins mid-way, long after the recording's last keyframe, has
the current picture within a second (the room starts it at that keyframe, the frames since at once, and
it is not left behind by them); a late start begins at the keyframe before its offset; when the file
ends the lead goes off air; H.264 (MP4) replays too; a missing or unusable file is refused with a clear reason.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from media_clients import FPS, Subscriber
from test_forwarding import EventLog
from test_recording_live import ROOM, _lead, _port_base

from media.api import EventKind, MediaError, RecordingRequest
from media.config import MediaConfig
from media.local import LocalMediaPlane
from media.replay import ReplayError, ReplayFiles, ReplayPublisher, avcc_to_annexb, from_this_host
from media.workers import WorkerMediaPlane

KEYFRAME_EVERY_S = 2.0


@pytest.fixture
async def plane():
    base = _port_base(100)
    p = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=base, udp_port_max=base + 99))
    await p.start()
    yield p
    await p.stop()


async def _record(plane: LocalMediaPlane, folder: Path, seconds: float, codec: str | None = None,
                  keyframe_every_s: float = KEYFRAME_EVERY_S) -> ReplayFiles:
    log = EventLog(plane)
    await plane.open_room(ROOM, RecordingRequest(str(folder), keyframe_every_s=keyframe_every_s))
    pc, _ = await _lead(plane, codec=codec)
    room = await Subscriber.connect(plane, ROOM, "class-1")
    await room.wait_frames(10)
    await asyncio.sleep(seconds)
    await plane.close_room(ROOM)
    done = await log.wait(EventKind.RECORDING_FINISHED, "lead", timeout=30)
    await pc.close()
    await room.close()
    return ReplayFiles(Path(done.detail["path"]), Path(done.detail["screen_path"]))


async def test_a_replay_reaches_classrooms_in_order_at_the_recorded_pace_and_ends_off_air(plane, tmp_path):
    # one keyframe at the start (the lead's encoder makes one only when asked): without a fast start,
    # a classroom joining mid-way would see nothing until the end
    files = await _record(plane, tmp_path, 9, keyframe_every_s=60)
    log = EventLog(plane)
    await plane.open_room("lesson-replay", fast_start=True)
    early = await Subscriber.connect(plane, "lesson-replay", "class-1", video_slots=2)
    replay = ReplayPublisher(plane, "lesson-replay", files)
    await replay.start()
    await log.wait(EventKind.PUBLISHER_UP, "lead-replay")
    await early.wait_frames(FPS)
    await asyncio.sleep(3)
    # a classroom that joins mid-way: the current picture within a second, and no further behind than
    # the classroom that was there from the start
    joined_at = time.monotonic()
    on_air_at_join = early.frames[-1].number
    late = await Subscriber.connect(plane, "lesson-replay", "class-2")
    await late.wait_frames(1, timeout=5)
    first_picture_s = late.frames[0].at - joined_at
    assert first_picture_s < 1.0, first_picture_s
    # decoded from the recording's keyframe seconds before, not from a new one
    assert late.frames[0].number <= on_air_at_join - 2 * FPS, (late.frames[0], on_air_at_join)
    await asyncio.sleep(1.0)
    behind = early.frames[-1].number - late.frames[-1].number
    assert abs(behind) <= FPS // 5, (early.frames[-1], late.frames[-1])
    numbers = [f.number for f in late.frames]
    assert numbers == sorted(set(numbers)), numbers[:40]
    # the frames since the keyframe went out one tick apart, so a browser, which paces pictures by their
    # timestamps, shows them at once and not at their recorded pace (seconds behind for good)
    vp8 = int(re.search(r"a=rtpmap:(\d+) VP8/90000", late.pc.remoteDescription.sdp).group(1))
    stamps = list(dict.fromkeys(ts for _, pt, _, ts in late.packets if pt == vp8))
    run = next((i for i in range(1, len(stamps)) if (stamps[i] - stamps[i - 1]) & 0xFFFFFFFF != 1), len(stamps))
    assert run >= 2 * FPS, stamps[:run + 2]  # joined some 4 s after the keyframe
    assert (stamps[run] - stamps[run - 1]) & 0xFFFFFFFF <= 90000 // FPS + 300, stamps[run - 2:run + 3]
    slot = (await plane.stats("lesson-replay"))["participants"]["class-2"]["slots"]
    assert sum(s.get("fast_starts", 0) for s in slot.values()) >= 1, slot

    await asyncio.wait_for(replay.ended.wait(), 20)
    await log.wait(EventKind.PUBLISHER_DOWN, "lead-replay", timeout=10)
    stats = await plane.stats("lesson-replay")
    await replay.stop()
    await early.close()
    await late.close()
    await plane.close_room("lesson-replay")

    frames = [f for f in early.frames if f.source == 1]
    numbers = [f.number for f in frames]
    assert numbers == sorted(numbers) and len(numbers) >= 0.9 * (numbers[-1] - numbers[0]), numbers[:20]
    assert (numbers[-1] - numbers[0]) / FPS >= 8
    # paced as recorded: the wall time between the first and last pictures is the recorded time between them
    recorded = (numbers[-1] - numbers[0]) / FPS
    shown = frames[-1].at - frames[0].at
    assert abs(shown - recorded) < 0.1 * recorded + 0.3, (shown, recorded)
    # the camera, the courseware and the sound were published as the lead's
    published = stats["participants"]["lead-replay"]["published"]
    assert {"camera", "screen", "audio"} <= set(published), published
    assert published["audio"]["packets"] > 8 * 40


async def test_a_late_replay_starts_at_the_keyframe_before_where_it_should_be(plane, tmp_path):
    files = await _record(plane, tmp_path, 8)
    await plane.open_room("lesson-late")
    room = await Subscriber.connect(plane, "lesson-late", "class-1")
    replay = ReplayPublisher(plane, "lesson-late", files, offset_s=5.0)
    await replay.start()
    await room.wait_frames(5, timeout=10)
    first = room.frames[0].number
    start = min(f.number for f in room.frames)
    assert (5.0 - KEYFRAME_EVERY_S - 0.5) * FPS <= start <= 5.5 * FPS, (first, start)
    await asyncio.wait_for(replay.ended.wait(), 15)
    await replay.stop()
    await room.close()


async def test_an_h264_recording_replays_without_transcoding(plane, tmp_path):
    files = await _record(plane, tmp_path, 5, codec="h264")
    assert files.camera.suffix == ".mp4"
    await plane.open_room("lesson-h264")
    room = await Subscriber.connect(plane, "lesson-h264", "class-1")
    replay = ReplayPublisher(plane, "lesson-h264", files)
    await replay.start()
    await room.wait_frames(2 * FPS, timeout=15)
    numbers = [f.number for f in room.frames if f.source == 1]
    assert numbers == sorted(numbers)
    # negotiated as H.264 alone: the packets are the file's, so a VP8 payloader could show nothing
    camera_section = replay.pc.remoteDescription.sdp.split("m=video")[1].split("m=")[0]
    assert "H264/90000" in camera_section and "VP8" not in camera_section
    await replay.stop()
    await room.close()


async def test_a_missing_or_unusable_recording_is_refused_with_its_reason(plane, tmp_path):
    await plane.open_room("lesson-x")
    with pytest.raises(ReplayError, match="missing"):
        await ReplayPublisher(plane, "lesson-x", ReplayFiles(tmp_path / "gone.webm")).start()
    junk = tmp_path / "junk.webm"
    junk.write_bytes(b"\x1a\x45\xdf\xa3 not a recording" * 10)
    with pytest.raises(ReplayError):
        await ReplayPublisher(plane, "lesson-x", ReplayFiles(junk)).start()


def test_mp4_access_units_become_annex_b_with_parameter_sets_before_keyframes():
    sps, pps, idr = b"\x67\x42\xe0\x1f", b"\x68\xce\x3c\x80", b"\x65\x88\x84"
    avcc = len(idr).to_bytes(4, "big") + idr
    sets = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps
    assert avcc_to_annexb(avcc, sets, keyframe=True) == sets + b"\x00\x00\x00\x01" + idr
    assert avcc_to_annexb(avcc, sets, keyframe=False) == b"\x00\x00\x00\x01" + idr
    annexb = b"\x00\x00\x00\x01" + idr
    assert avcc_to_annexb(annexb, sets, keyframe=True) == annexb
    # a truncated length prefix stops at what is whole
    assert avcc_to_annexb(avcc + b"\x00\x00\x09\x99", sets, keyframe=False) == b"\x00\x00\x00\x01" + idr


def test_the_answer_is_reached_from_this_host_on_loopback_where_its_address_is_not_ours():
    answer = ("v=0\r\na=candidate:1 1 udp 2130706431 203.0.113.5 40001 typ host\r\n"
              "a=candidate:2 1 udp 2130706431 10.0.0.7 40002 typ host\r\n")
    seen = from_this_host(answer, {"127.0.0.1", "10.0.0.7"})
    assert "127.0.0.1 40001 typ host" in seen and "10.0.0.7 40002 typ host" in seen


async def test_a_replay_runs_in_the_worker_that_owns_its_room(plane, tmp_path):
    """Published by the room's worker process (`start_replay`), not by the caller: this process only
    asks, then receives the pictures as a classroom and hears of the end (REPLAY_ENDED). A classroom
    that joins mid-way when that worker is full plays from a copy of the room in the other worker, and
    is started at the keyframe there too."""
    files = await _record(plane, tmp_path, 6, keyframe_every_s=60)
    base = _port_base(200)
    workers = WorkerMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=base,
                                           udp_port_max=base + 99, workers=2, max_subscriptions_per_worker=1))
    await workers.start()
    log = EventLog(workers)
    try:
        await workers.open_room("lesson-w", fast_start=True)
        room = await Subscriber.connect(workers, "lesson-w", "class-1")
        await workers.start_replay("lesson-w", str(files.camera), str(files.screen), 0.0)
        await room.wait_frames(2 * FPS, timeout=15)
        numbers = [f.number for f in room.frames if f.source == 1]
        assert numbers == sorted(numbers), numbers[:20]
        joined_at = time.monotonic()
        late = await Subscriber.connect(workers, "lesson-w", "class-2")
        await late.wait_frames(1, timeout=5)
        assert late.frames[0].at - joined_at < 1.0, late.frames[0].at - joined_at
        stats = await workers.stats("lesson-w")
        assert "lead-replay" in stats["participants"], stats["participants"].keys()
        where = {p: v.get("worker_pid") for p, v in stats["participants"].items()}
        assert where["class-2"] != where["class-1"] == where["lead-replay"], where
        ended = await log.wait(EventKind.REPLAY_ENDED, "lead-replay", timeout=15)
        assert ended.detail["packets"] > 3 * FPS, ended.detail
        # a file that cannot be played is refused with its reason, across the worker's pipe
        with pytest.raises(MediaError, match="missing"):
            await workers.start_replay("lesson-w", str(tmp_path / "gone.webm"))
        await late.close()
        await room.close()
        await workers.close_room("lesson-w")
    finally:
        await workers.stop()
