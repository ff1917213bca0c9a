"""The fan-out benchmark: a short real run (our SFU and the MediaRelay baseline) and its helpers.

These assert behaviour only: the JSON has its keys, subscribers received media, loss is small, lost
packets get repaired. Figures are for `classroom bench fanout` runs, never for test thresholds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import struct
from pathlib import Path

import pytest
from aiortc.rtp import RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from media import bench
from media.bench_clip import ClipSpec, draw_number, load_clip, read_number
from media.bench_peers import FastPath, SlotCounter, _log_sends, _Stream, vp8_keyframe_start

KEYS = (
    "subs",
    "sfu_cpu_cores",
    "cpu_ms_per_sub_s",
    "per_sub_mbps",
    "loss",
    "first_keyframe_p95_ms",
    "forward_latency_p99_ms",
    "rss_per_sub_kib",
)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code = bench.main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_fanout_short_run_against_the_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(["fanout", "--subs", "3", "--duration", "3", "--baseline-subs", "1", "--json"], capsys)
    for key in (*KEYS, "baseline", "speedup_vs_baseline"):
        assert key in result, key
    assert result["subs"] == 3
    assert result["valid"] and result["problems"] == []
    assert result["subs_receiving"] == 3
    assert result["per_sub_mbps"] > 0.5  # the ~2 Mbit/s source arrives, not a trickle
    assert result["video_fps"] > 10
    assert result["loss"] is not None and result["loss"] < 0.01
    assert 0.9 < result["delivered_fraction"] <= 1.05  # every frame the publisher sent, to everyone
    assert result["sfu_cpu_cores"] > 0 and result["cpu_ms_per_sub_s"] > 0
    assert result["first_keyframe_p95_ms"] is not None
    # Payloads arrive unchanged, so the publisher's send log matches what subscribers received.
    assert result["latency_samples"] > 0 and result["forward_latency_p99_ms"] > 0
    base = result["baseline"]
    for key in KEYS:
        assert key in base, key
    assert base["subs"] == 1 and base["subs_receiving"] == 1
    assert base["cpu_ms_per_sub_s"] > 0
    assert result["speedup_vs_baseline"] > 0


def test_fanout_repairs_injected_loss(capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(["fanout", "--subs", "2", "--duration", "3", "--loss-percent", "5", "--no-baseline"], capsys)
    assert "baseline" not in result
    assert result["dropped_injected"] > 0
    assert result["retransmissions_received"] > 0
    assert result["repaired_fraction"] > 0.8
    assert result["video_loss"] < 0.02


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["fanout", "--subs", "0"]) == 2
    with pytest.raises(SystemExit):
        bench.main(["nonsense"])
    capsys.readouterr()


def test_clip_is_720p_vp8_of_about_2_mbps_with_frame_numbers(tmp_path: Path) -> None:
    import av
    import numpy as np

    spec = ClipSpec(seconds=1)
    clip = load_clip(spec, cache_dir=tmp_path)
    assert len(clip.video) == len(clip.video_intra) == 30
    assert 1.0 < clip.video_mbps < 3.0
    assert not clip.video[0][0] & 1 and all(not f[0] & 1 for f in clip.video_intra)
    assert all(f[0] & 1 for f in clip.video[1:])  # inter frames after the first
    assert len(clip.audio) >= 49
    decoder = av.CodecContext.create("libvpx", "r")
    seen = []
    for data in clip.video[:12]:
        for frame in decoder.decode(av.Packet(data)):
            assert (frame.width, frame.height) == (1280, 720)
            plane = frame.planes[0]
            luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:720, :1280]
            seen.append(read_number(luma, 40, 40, 120, len(str(len(seen)))))
    assert seen == list(range(12))
    again = load_clip(spec, cache_dir=tmp_path)  # from the cache this time
    assert again.video == clip.video


@given(st.integers(min_value=0, max_value=99999))
def test_drawn_numbers_read_back(number: int) -> None:
    import numpy as np

    image = np.full((200, 600), 100, dtype=np.uint8)
    draw_number(image, number, 20, 30, 100)
    assert read_number(image, 20, 30, 100, len(str(number))) == number


def test_vp8_keyframe_detection() -> None:
    key_frame_tag = bytes([0x50, 0x00, 0x00])  # P bit clear: keyframe
    inter_tag = bytes([0x51, 0x00, 0x00])
    plain = bytes([0x10])  # S=1, PID=0, no extension
    with_picture_id = bytes([0x90, 0x80, 0x81, 0x23])  # X, I, 15-bit picture id
    assert vp8_keyframe_start(plain + key_frame_tag)
    assert not vp8_keyframe_start(plain + inter_tag)
    assert vp8_keyframe_start(with_picture_id + key_frame_tag)
    assert not vp8_keyframe_start(bytes([0x00]) + key_frame_tag)  # not a partition start
    assert not vp8_keyframe_start(b"")
    assert not vp8_keyframe_start(with_picture_id)


@given(st.integers(0, 0xFFFF), st.lists(st.integers(-300, 300), max_size=50))
def test_extended_sequence_numbers_unwrap(first: int, steps: list[int]) -> None:
    stream = _Stream(first)
    ext = first
    for step in steps:
        ext += step
        assert stream.extend(ext & 0xFFFF) == ext


class _FakeReceiver:
    def __init__(self) -> None:
        self.nacks: list[list[int]] = []

    async def _send_rtcp_nack(self, media_ssrc: int, lost: list[int]) -> None:
        self.nacks.append(lost)


def _vp8(seq: int, marker: bool = False) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=seq * 3000, ssrc=1234)
    packet.marker = int(marker)
    packet.payload = bytes([0x10, 0x51]) + seq.to_bytes(4, "big") * 8
    return packet


async def test_counter_accounts_loss_repair_and_latency() -> None:
    receiver = _FakeReceiver()
    counter = SlotCounter(receiver, "video", 0.0, random.Random(1), FastPath([]))  # type: ignore[arg-type]
    counter.clock_rates[96] = 90000
    await counter.handle(_vp8(65530), 0)
    counter.start_window()
    for seq in (65531, 65532, 65534, 65535, 65536, 65537):  # 65533 missing, across the wrap
        await counter.handle(_vp8(seq, marker=seq % 2 == 0), 0)  # 65532, 65536: frame ends and 4th
    assert receiver.nacks == [[65533]]
    counter.stop_window()
    await counter.handle(_vp8(65533), 0)  # a late retransmission still repairs the window
    log = {_vp8(s).payload[-16:]: [0.0] for s in range(65530, 65538)}
    report = counter.report(log)
    assert report["expected"] == 7 and report["received"] == 7
    assert report["frames"] == 3 and len(report["frame_latencies_ms"]) == 3 and report["unmatched"] == 0
    assert len(report["latencies_ms"]) == 2  # 65532 and 65536 (sequence numbers divisible by 4)


async def test_counter_drops_before_nack_and_counts_repairs() -> None:
    receiver = _FakeReceiver()
    counter = SlotCounter(receiver, "video", 0.5, random.Random(3), FastPath([]))  # type: ignore[arg-type]
    counter.clock_rates[96] = 90000
    counter.start_window()
    for seq in range(1000, 1200):
        await counter.handle(_vp8(seq), 0)
    counter.stop_window()
    dropped = set().union(*(s.dropped for s in counter.streams.values()))
    assert dropped and receiver.nacks  # drops are seen as loss and NACKed
    counter.loss = 0.0
    for seq in sorted(dropped)[:10]:
        await counter.handle(_vp8(seq), 0)
    report = counter.report({})
    assert report["dropped"] == len(dropped)
    assert report["repaired"] == 10


def test_percentile_and_profile_summary(tmp_path: Path) -> None:
    assert bench.percentile([], 99) is None
    assert bench.percentile([5.0], 99) == 5.0
    assert bench.percentile([float(i) for i in range(1, 101)], 99) == 99.0
    raw = tmp_path / "sfu-1.txt"
    raw.write_text(
        "main (a.py:1);loop (a.py:2);forward (f.py:3) 30\nmain (a.py:1);loop (a.py:2);protect (s.so) 50\n"
        "main (a.py:1);idle (f.py:9) 20\n"
    )
    summary = bench.summarize_profile([raw])
    assert summary["samples"] == 100
    assert summary["own"][0] == {"function": "protect (s.so)", "percent": 50.0}
    assert {"function": "loop (a.py:2)", "percent": 80.0} in summary["inclusive"]
    assert summary["own_by_module"][0] == {"function": "f.py", "percent": 50.0}


async def test_publisher_pacing_spreads_video_packets_and_leaves_audio_alone() -> None:
    loop = asyncio.get_running_loop()
    sent: list[tuple[int, float]] = []

    class Transport:
        async def _send_rtp(self, data: bytes) -> None:
            sent.append((int.from_bytes(data[8:12], "big"), loop.time()))

    transport = Transport()
    log: dict = {}
    _log_sends(transport, log, paced_ssrc=1, pacing_bps=400_000)  # 1,000 bytes every 20 ms

    def packet(ssrc: int, n: int) -> bytes:
        return struct.pack("!BBHII", 0x80, 96, n, 0, ssrc) + bytes([n]) * 988

    started = loop.time()
    await asyncio.gather(*(transport._send_rtp(packet(1, n)) for n in range(4)), transport._send_rtp(packet(2, 9)))
    video = [t - started for ssrc, t in sent if ssrc == 1]
    audio = [t - started for ssrc, t in sent if ssrc == 2]
    assert len(video) == 4 and len(audio) == 1
    assert audio[0] < 0.015  # not queued behind the video
    assert all(b - a >= 0.018 for a, b in itertools.pairwise(video))
    assert len(log) == 5  # every packet stamped when it left


def test_record_bench_measures_recording_and_replay_beside_forwarding(capsys: pytest.CaptureFixture[str]) -> None:
    from media import bench_record

    code = bench_record.main(["--subs", "2", "--duration", "2", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out)
    for key in ("streams", "cpu_pct_per_stream", "replay_cpu_pct_per_stream", "recording_latency_p99_delta_ms",
                "finalise_cpu_pct_of_lesson", "cpu_pct_per_stream_inside"):
        assert result[key] is not None, key
    assert result["valid"] and set(result["runs"]) == {"one_off", "one_on", "subs_off", "subs_on"}
    recorded = result["recorded"]
    assert recorded["file"].endswith(".webm") and recorded["duration_s"] > 2 and recorded["keyframes"] >= 1
    # the replay published the whole file, paced: it took about as long as the recording lasts
    replay = result["replay"]
    assert replay["replay_reached_end"] and replay["replay_packets"] > 0
    assert abs(replay["replay_wall_s"] - recorded["duration_s"]) < 3, (replay, recorded)
