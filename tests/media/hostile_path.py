"""A forwarding path with real SRTP (pylibsrtp) on both wires, for the hostile-peer tests."""

from __future__ import annotations

import struct

import pylibsrtp

from media.api import SlotKind, TrackKind
from media.forwarding import CodecInfo, DownTrack, InboundTrack, Wire
from media.nack_tracker import NackTracker

KEY = bytes([0x10, 0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A])  # VP8 keyframe start
DELTA = bytes([0x10, 0x51, 0x2A])  # VP8 delta frame start


def srtp_session() -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=bytes(range(30)), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    return pylibsrtp.Session(policy=policy)


def srtp_wire(sink: list[bytes]) -> Wire:
    session = srtp_session()
    wire = Wire()
    wire.connect(session.protect, session.protect_rtcp, lambda data, addr: sink.append(data), ("127.0.0.1", 9))
    return wire


def make_track(up: list[bytes], *, history: int = 64, nack: NackTracker | None = None) -> InboundTrack:
    return InboundTrack(
        participant_id="lead",
        kind=TrackKind.CAMERA,
        media_kind="video",
        mid="0",
        codecs={97: CodecInfo("vp8", "vp8", 90000)},
        rtx_apt={98: 97},
        ssrc=1111,
        rtx_ssrc=2222,
        wire=srtp_wire(up),
        rtcp_ssrc=5,
        fir_only=False,
        history_size=history,
        keyframe_interval=0.0,
        nack=nack or NackTracker(),
        emit=lambda *a: None,
    )


def make_down(track: InboundTrack, down: list[bytes], name: str = "class-1", ssrc: int = 3333) -> DownTrack:
    dt = DownTrack(
        participant_id=name,
        slot=SlotKind.CAMERA,
        mid="0",
        media_kind="video",
        ssrc=ssrc,
        rtx_ssrc=ssrc + 1,
        pt_by_key={"vp8": 100},
        rtx_pt_by_pt={100: 101},
        clock_rate=90000,
        wire=srtp_wire(down),
        emit=lambda *a: None,
    )
    dt.bind(("lead", TrackKind.CAMERA), track, 0.0)
    return dt


def rtp(seq: int, payload: bytes, pt: int = 97, ssrc: int = 1111, ts: int | None = None) -> bytes:
    stamp = (9000 + seq * 3000) & 0xFFFFFFFF if ts is None else ts
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, stamp, ssrc) + payload
