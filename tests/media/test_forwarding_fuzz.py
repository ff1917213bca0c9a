"""The forwarding path itself (inbound track -> down track -> wire) under arbitrary packets and NACKs."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from media.api import SlotKind, TrackKind
from media.forwarding import CodecInfo, DownTrack, InboundTrack, Wire
from media.nack_tracker import NackTracker
from media.rtcp import ReportBlock
from media.rtp_header import RtpHeader


def make_path() -> tuple[InboundTrack, DownTrack, list[bytes], list[bytes]]:
    up: list[bytes] = []
    down: list[bytes] = []
    upstream = Wire()
    upstream.connect(bytes, bytes, lambda data, addr: up.append(data), ("127.0.0.1", 1))
    downstream = Wire()
    downstream.connect(bytes, bytes, lambda data, addr: down.append(data), ("127.0.0.1", 2))
    track = InboundTrack(
        participant_id="lead",
        kind=TrackKind.CAMERA,
        media_kind="video",
        mid="0",
        codecs={97: CodecInfo("vp8", "vp8", 90000), 99: CodecInfo("h264/1/42", "h264", 90000)},
        rtx_apt={98: 97},
        ssrc=1111,
        rtx_ssrc=2222,
        wire=upstream,
        rtcp_ssrc=5,
        fir_only=False,
        history_size=64,
        keyframe_interval=0.0,
        nack=NackTracker(),
        emit=lambda *a: None,
    )
    dt = DownTrack(
        participant_id="class-1",
        slot=SlotKind.CAMERA,
        mid="0",
        media_kind="video",
        ssrc=3333,
        rtx_ssrc=4444,
        pt_by_key={"vp8": 100},
        rtx_pt_by_pt={100: 101},
        clock_rate=90000,
        wire=downstream,
        emit=lambda *a: None,
    )
    dt.bind(("lead", TrackKind.CAMERA), track, 0.0)
    return track, dt, up, down


KEY = bytes([0x10, 0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A])


def test_held_until_keyframe_then_rewritten_and_repaired_on_rtx():
    track, dt, up, down = make_path()
    for seq, payload in [(10, b"\x10\x51delta"), (11, KEY), (13, b"\x00more")]:
        data = struct.pack("!BBHII", 0x80, 97, seq, 9000 + seq, 1111) + payload
        track.on_rtp(RtpHeader.parse(data), data, 1.0)
    assert len(down) == 2  # held until the keyframe at 11; 12 is missing
    first, second = (RtpHeader.parse(p) for p in down)
    assert (first.ssrc, first.payload_type) == (3333, 100)
    assert second.seq == (first.seq + 2) & 0xFFFF  # the gap is kept
    assert any(p[1] == 205 for p in up)  # and NACKed upstream at once
    dt.on_nack([(first.seq + 1) & 0xFFFF, first.seq])
    rtx = RtpHeader.parse(down[-1])
    assert (rtx.ssrc, rtx.payload_type) == (4444, 101)
    assert down[-1][rtx.payload_start : rtx.payload_start + 2] == struct.pack("!H", first.seq)
    assert down[-1][rtx.payload_start + 2 :] == KEY
    assert dt.unrepairable == 1 and dt.retransmitted == 1


packets = st.lists(
    st.tuples(
        st.integers(0, 0x3F),
        st.sampled_from([0, 96, 97, 98, 99, 127]),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFFFFFF),
        st.sampled_from([1111, 2222, 7]),
        st.binary(max_size=40),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(packets, st.lists(st.integers(0, 0xFFFF), max_size=40), st.binary(max_size=40))
def test_arbitrary_packets_and_feedback_never_raise(items, nacks, junk):
    track, dt, _up, down = make_path()
    for i, (bits, pt, seq, ts, ssrc, payload) in enumerate(items):
        data = struct.pack("!BBHII", 0x80 | bits, pt, seq, ts, ssrc) + payload
        hdr = RtpHeader.parse(data)
        if hdr is not None:
            track.on_rtp(hdr, data, i * 0.01)
        if i % 7 == 3:
            track.stats.on_sr(int.from_bytes(junk[:8].ljust(8, b"\0"), "big"), i * 0.01)
            dt.on_report(ReportBlock(3333, 1, -5, 9, 9, 1, 1), 77)
            dt.bind(("lead", TrackKind.CAMERA), track if i % 2 else None, i * 0.01)
    dt.on_nack(nacks)
    track.receiver_report(2.0, 1_000_000)
    dt.sender_report(2.0, 1 << 40)
    for p in down:
        hdr = RtpHeader.parse(p)
        assert hdr is not None and hdr.ssrc in (3333, 4444) and hdr.payload_type in (100, 101)
