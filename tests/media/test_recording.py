"""Recording without transcoding: RTP packets of a VP8 camera and Opus audio -> raw dump -> WebM.

The packets come from aiortc's own encoders and packetizers (what a browser-like publisher sends), the
camera's pictures carry their frame number drawn large, and the file is checked with PyAV as a viewer
would: its duration, every frame decodable, the numbers in order, audio and video in sync. Loss,
reordering, a publisher that reconnects and a dump cut short by a crash are each tried.
"""

from __future__ import annotations

import fractions
import random
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

from media.bench_clip import draw_number, read_number
from media.recording import RecordingError, finalise
from media.rtpdump import MAGIC, DumpWriter

FPS = 15
W, H = 320, 240
DIGITS_AT = (40, 60, 96)  # x, y, height of the drawn frame number


def _picture(n: int) -> av.VideoFrame:
    y = np.full((H, W), 60, dtype=np.uint8)
    draw_number(y, n, *DIGITS_AT)
    frame = av.VideoFrame.from_ndarray(np.stack([y, y, y], axis=-1), format="rgb24")
    frame.pts, frame.time_base = n * (90000 // FPS), fractions.Fraction(1, 90000)
    return frame


def _tone(n: int) -> av.AudioFrame:
    t = (np.arange(960) + n * 960) / 48000
    samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.stack([samples, samples]).reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = 48000, n * 960, fractions.Fraction(1, 48000)
    return frame


def _packets(seconds: float, start: float, ssrc_v: int, ssrc_a: int, first: int = 0,
             ts_base: int = 0) -> list[tuple[float, str, int, bytes]]:
    """(arrival, slot, ssrc, rtp bytes) of `seconds` of camera and audio, as a publisher sends them."""
    out = []
    video, audio = Vp8Encoder(), OpusEncoder()
    seq = random.randrange(65536)
    for i in range(int(seconds * FPS)):
        # a keyframe every second: what the recorder asks for while recording (a PLI every few seconds)
        payloads, ts = video.encode(_picture(first + i), force_keyframe=(i % FPS == 0))
        for k, p in enumerate(payloads):
            pkt = RtpPacket(payload_type=96, marker=int(k == len(payloads) - 1), sequence_number=seq & 0xFFFF,
                            timestamp=(ts + ts_base) & 0xFFFFFFFF, ssrc=ssrc_v, payload=p)
            out.append((start + i / FPS + k * 0.0005, "camera", ssrc_v, pkt.serialize()))
            seq += 1
    aseq = random.randrange(65536)
    for j in range(int(seconds * 50)):
        payloads, ts = audio.encode(_tone(j))
        pkt = RtpPacket(payload_type=111, marker=0, sequence_number=aseq & 0xFFFF, timestamp=ts & 0xFFFFFFFF,
                        ssrc=ssrc_a, payload=payloads[0])
        out.append((start + j * 0.02, "audio", ssrc_a, pkt.serialize()))
        aseq += 1
    out.sort(key=lambda p: p[0])
    return out


def _dump(path: Path, packets: list[tuple[float, str, int, bytes]]) -> Path:
    writer = DumpWriter(path)
    for arrival, slot, ssrc, data in packets:
        kind, codec, rate = ("video", "vp8", 90000) if slot == "camera" else ("audio", "opus", 48000)
        track = writer.track(kind, codec, rate, slot, "lead-1", ssrc)
        writer.packet(track, data, arrival)
    writer.close()
    assert writer.dropped == 0
    return path


def _numbers(path: Path) -> tuple[list[int], list[float], list[float]]:
    """Frame numbers read from the decoded pictures, video times and audio times (seconds)."""
    numbers, vtimes, atimes = [], [], []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            numbers.append(read_number(frame.to_ndarray(format="gray"), *DIGITS_AT, digits=len(str(numbers[-1] + 1))
                                       if numbers else 1) if not numbers else _read(frame))
            vtimes.append(float(frame.time))
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            atimes.append(float(frame.time))
    return numbers, vtimes, atimes


def _read(frame: av.VideoFrame) -> int:
    gray = frame.to_ndarray(format="gray")
    for digits in (3, 2, 1):
        try:
            return read_number(gray, *DIGITS_AT, digits=digits)
        except ValueError:
            continue
    raise AssertionError("no frame number in the picture")


def test_a_clean_recording_has_every_frame_in_order_and_audio_in_sync(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "lesson-1.rtpdump", _packets(6.0, 1000.0, 1111, 2222))
    info = finalise(dump)
    assert info.container == "webm" and info.path.suffix == ".webm" and info.frames_dropped == 0
    with av.open(str(info.path)) as c:
        assert {s.type for s in c.streams} == {"video", "audio"}
        assert abs(float(c.duration) / 1e6 - 6.0) < 0.5
        assert c.streams.video[0].codec_context.name == "vp8"
    numbers = [_read(f) for f in av.open(str(info.path)).decode(video=0)]
    assert numbers == list(range(int(6.0 * FPS)))
    with av.open(str(info.path)) as c:
        first_video = next(iter(c.decode(video=0))).time
    with av.open(str(info.path)) as c:
        first_audio = next(iter(c.decode(audio=0))).time
    assert abs(first_video - first_audio) < 0.1  # both started at the same moment
    assert len(info.sha256) == 64 and info.size_bytes == info.path.stat().st_size


def test_loss_and_reordering_drop_only_whole_frames_and_a_reconnect_continues_the_track(tmp_path: Path) -> None:
    rng = random.Random(5)
    first = _packets(4.0, 1000.0, 1111, 2222)
    # the publisher reconnects: new SSRCs, a new RTP clock, frame numbers go on
    second = _packets(4.0, 1004.5, 3333, 4444, first=int(4.0 * FPS), ts_base=123456789)
    packets = first + second
    lossy = [p for p in packets if not (p[1] == "camera" and rng.random() < 0.05)]
    for i in range(0, len(lossy) - 3, 7):  # neighbours swapped: reordering on the way
        lossy[i], lossy[i + 2] = lossy[i + 2], lossy[i]
    info = finalise(_dump(tmp_path / "lossy.rtpdump", lossy))
    decoded = list(av.open(str(info.path)).decode(video=0))
    numbers = [_read(f) for f in decoded]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)  # in order, none twice
    assert numbers[-1] >= int(7.0 * FPS)  # the second connection is in the same track
    # 5 % of the packets lost for good (no NACK here) and a keyframe a second: a frame after a loss waits for
    # the next keyframe, so at least a third of the pictures remain, and each of them is whole
    assert len(numbers) >= 8 * FPS / 3 and info.frames_dropped > 0
    times = [float(f.time) for f in decoded]
    gap = next(t for n, t in zip(numbers, times, strict=True) if n >= int(4.0 * FPS))
    assert 4.3 < gap - times[0] < 4.8  # the reconnect's half-second pause is where it was


def test_a_dump_cut_short_by_a_crash_plays_up_to_the_cut(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "killed.rtpdump", _packets(6.0, 1000.0, 1111, 2222))
    data = dump.read_bytes()
    dump.write_bytes(data[: int(len(data) * 0.6) + 5])  # mid-record, as a kill -9 leaves it
    info = finalise(dump)
    numbers = [_read(f) for f in av.open(str(info.path)).decode(video=0)]
    assert numbers == list(range(len(numbers))) and len(numbers) > 2 * FPS
    assert 2.0 < info.duration_s < 4.5


def test_nothing_to_record_and_not_a_dump_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.rtpdump"
    empty.write_bytes(MAGIC)
    with pytest.raises(RecordingError, match="no complete frame"):
        finalise(empty)
    junk = tmp_path / "junk.rtpdump"
    junk.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a recording dump"):
        finalise(junk)


async def test_the_rooms_recorder_takes_packets_from_its_sinks_and_finalises_one_file_per_publisher(
        tmp_path: Path) -> None:
    from media.recorder import LessonRecorder

    recorder = LessonRecorder(tmp_path, "lesson-9")
    sinks = {}
    for _arrival, slot, ssrc, data in _packets(3.0, 1000.0, 1111, 2222):
        if slot not in sinks:
            kind, codec, rate = ("video", "VP8", 90000) if slot == "camera" else ("audio", "opus", 48000)
            sinks[slot] = recorder.sink("lead-1", slot, kind, codec, rate, ssrc)
        # what the forwarding path hands on: the header's fields and the payload (RTX already unwrapped)
        packet = RtpPacket.parse(data)
        sinks[slot](packet.sequence_number, packet.timestamp, 0x80 if packet.marker else 0, packet.payload_type,
                    packet.payload)
    assert recorder.sink("lead-1", "camera", "video", "AV1", 90000, 5) is None  # not recordable: said, skipped
    [done] = await recorder.close()
    info = done.info
    assert info is not None and done.error is None and done.participant_id == "lead-1"
    assert info.path.parent == tmp_path / "lesson-9" and info.container == "webm"
    numbers = [_read(f) for f in av.open(str(info.path)).decode(video=0)]
    assert numbers == list(range(3 * FPS))
