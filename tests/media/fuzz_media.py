"""Fuzz target of the whole packet path: a publisher's and a subscriber's inbound RTP/RTCP through
`Peer`, `InboundTrack`, `DownTrack`, the fan-out queue and the room's housekeeping tick.

Used by `test_fuzz_media.py` (a short pass in CI) and by `scripts/fuzz-media` (as long as one wants:
`MEDIA_FUZZ_EXAMPLES`, hypothesis's coverage-guided search with its example database). The seed
corpus is generated here from the formats (VP8 keyframes and deltas, RTX, SR/RR, NACK, PLI, FIR, REMB,
sizes at the limits, sequence jumps and restarts), plus a small corpus recorded from real headless
Chromium (`corpus/`, re-recorded with `scripts/record-media-corpus`): its RTP with header
extensions, RTX answers and padding probes, Opus, SR/RR/SDES, and a subscriber's RR/NACK/REMB.

Properties: no exception reaches a handler's catch-all (`Peer.errors` stays 0) or the tick (no
"tick:" cause logged), every packet sent to the subscriber is well-formed RTP on its own SSRCs within
SRTP's size limit, and SRTP never refuses one (the wire's `errors` stays 0).
"""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path
from typing import Any

import pylibsrtp
from hypothesis import strategies as st

import media.room
from media.api import ParticipantRole, SlotKind, TrackKind
from media.config import MediaConfig
from media.forwarding import CodecInfo, DownTrack, InboundTrack, Wire
from media.limits import SRTP_MAX_RTP
from media.nack_tracker import NackTracker
from media.peer import Peer
from media.room import Participant, Room
from media.rtcp import ReportBlock, build_fir, build_nack, build_pli, build_remb, build_rr, build_sr
from media.rtp_header import RtpHeader, is_rtcp

PUB_SSRC, PUB_RTX_SSRC, AUDIO_SSRC = 1111, 2222, 5555
SUB_SSRC = 3333
VP8, RTX, OPUS = 97, 98, 111
KEY = bytes([0x10, 0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A])
DELTA = bytes([0x10, 0x51, 0x2A])


def rtp(seq: int, payload: bytes, pt: int = VP8, ssrc: int = PUB_SSRC, ts: int = 0, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def seed_corpus() -> list[tuple[str, bytes]]:
    """(target, datagram) pairs: 'pub-rtp', 'pub-rtcp', 'sub-rtcp', as a real session would send."""
    seeds: list[tuple[str, bytes]] = []
    for i in range(12):
        seeds.append(("pub-rtp", rtp(100 + i, KEY if i == 0 else DELTA + bytes(i * 50), ts=3000 * (i // 3))))
    seeds.append(("pub-rtp", rtp(113, struct.pack("!H", 105) + DELTA, pt=RTX, ssrc=PUB_RTX_SSRC)))
    seeds.append(("pub-rtp", rtp(7, b"\xfc\xff\xfe", pt=OPUS, ssrc=AUDIO_SSRC)))
    for size in (1341, 1342, 1343, 1344, 1356, 1450):  # around the limits (media/limits.py)
        seeds.append(("pub-rtp", rtp(120, DELTA + bytes(size - len(DELTA)))))
    for seq in (30000, 30001, 30002, 30003, 90, 40, 41, 42, 43, 44):  # a jump and a restart lower down
        seeds.append(("pub-rtp", rtp(seq, KEY, ts=seq * 7)))
    ext = struct.pack("!BBHII", 0x90, VP8, 130, 0, PUB_SSRC) + struct.pack("!HH", 0xBEDE, 1) + b"\x10\x00\x00\x00"
    seeds.append(("pub-rtp", ext + DELTA))
    seeds.append(("pub-rtp", struct.pack("!BBHII", 0xA0, VP8, 131, 0, PUB_SSRC) + DELTA + b"\x00\x00\x03"))
    block = ReportBlock(SUB_SSRC, 12, 3, 65536 + 200, 40, 0, 0)
    seeds.append(("pub-rtcp", build_sr(PUB_SSRC, 1 << 60, 90000, 10, 1000)))
    seeds.append(("sub-rtcp", build_rr(9, [block]) + build_remb(9, 1_500_000, [SUB_SSRC])))
    seeds.append(("sub-rtcp", build_nack(9, SUB_SSRC, range(0, 60000, 7))))
    seeds.append(("sub-rtcp", build_nack(9, SUB_SSRC, [1, 2, 3])))
    seeds.append(("sub-rtcp", build_pli(9, SUB_SSRC)))
    seeds.append(("sub-rtcp", build_fir(9, SUB_SSRC, 1)))
    seeds.append(("sub-rtcp", build_pli(9, 4294967295)))
    return seeds


CORPUS = Path(__file__).resolve().parent / "corpus"
TARGETS = ("pub-rtp", "pub-rtcp", "sub-rtcp")


def recorded_corpus(folder: Path = CORPUS) -> list[tuple[str, bytes]]:
    """Datagrams recorded from headless Chromium at the SFU's `Peer` (`record_corpus.py`), SSRCs and
    payload types rewritten to this target's: (target, datagram) in file-name order, which is the
    order a session sends them in."""
    out: list[tuple[str, bytes]] = []
    for path in sorted(folder.glob("*.bin")):
        target = path.stem.rsplit("-", 1)[0]
        if target in TARGETS:
            out.append((target, path.read_bytes()))
    return out


RECORDED = recorded_corpus()
SEEDS = seed_corpus() + RECORDED


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for pos, value in flips:
        if out:
            out[pos % len(out)] = value
    return bytes(out[: max(0, len(out) - cut)]) if cut else bytes(out)


operation = st.one_of(
    st.tuples(  # a seed, maybe mutated
        st.sampled_from(SEEDS),
        st.lists(st.tuples(st.integers(0, 1500), st.integers(0, 255)), max_size=4),
        st.integers(0, 8),
    ).map(lambda t: (t[0][0], _mutate(t[0][1], t[1], t[2]))),
    st.tuples(st.sampled_from(["pub-rtp", "pub-rtcp", "sub-rtcp"]), st.binary(max_size=1500)),
    st.tuples(  # a well-formed RTP packet with arbitrary fields on a known SSRC
        st.just("pub-rtp"),
        st.builds(
            lambda bits, pt, seq, ts, ssrc, payload: struct.pack("!BBHII", 0x80 | bits, pt, seq, ts, ssrc) + payload,
            st.integers(0, 0x3F),
            st.sampled_from([VP8, RTX, OPUS, 0, 127, VP8 | 0x80]),
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.sampled_from([PUB_SSRC, PUB_RTX_SSRC, AUDIO_SSRC, 7]),
            st.binary(max_size=1460),
        ),
    ),
    st.tuples(st.just("tick"), st.just(b"")),
)
scenarios = st.lists(operation, max_size=60)


def _srtp_wire(sink: list[bytes]) -> Wire:
    policy = pylibsrtp.Policy(key=bytes(range(30)), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    session = pylibsrtp.Session(policy=policy)
    wire = Wire()
    wire.connect(session.protect, session.protect_rtcp, lambda data, addr: sink.append(data), ("127.0.0.1", 9))
    return wire


async def run_scenario(ops: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Play `ops` into a room with one publisher and one subscriber; return what to check."""
    config = MediaConfig(report_interval=0.001, send_history_packets=64, misbehaving_errors=0)
    saved_tick = media.room._TICK
    media.room._TICK = 0.0  # the housekeeping tick runs on every pass of the loop
    room = Room("fuzz", config, lambda *a: None)
    try:
        up: list[bytes] = []
        down: list[bytes] = []
        pub_peer = Peer(config, room._on_peer_state, room.ratelog)
        sub_peer = Peer(config, room._on_peer_state, room.ratelog)
        pub_wire, sub_wire = _srtp_wire(up), _srtp_wire(down)
        pub_peer.wires[0], sub_peer.wires[0] = pub_wire, sub_wire
        lead = Participant("lead", ParticipantRole.LEAD, pub_peer)
        klass = Participant("class-1", ParticipantRole.RECEIVER, sub_peer)
        common = {"wire": pub_wire, "rtcp_ssrc": 5, "fir_only": False, "history_size": 64, "emit": room.emit}
        common |= {"keyframe_interval": 0.0, "fanout": room.fanout}
        lead.inbound[TrackKind.CAMERA] = InboundTrack(
            participant_id="lead", kind=TrackKind.CAMERA, media_kind="video", mid="0",
            codecs={VP8: CodecInfo("vp8", "vp8", 90000)}, rtx_apt={RTX: VP8}, ssrc=PUB_SSRC,
            rtx_ssrc=PUB_RTX_SSRC, nack=NackTracker(), **common,
        )
        lead.inbound[TrackKind.AUDIO] = InboundTrack(
            participant_id="lead", kind=TrackKind.AUDIO, media_kind="audio", mid="1",
            codecs={OPUS: CodecInfo("opus", "opus", 48000)}, rtx_apt={}, ssrc=AUDIO_SSRC, rtx_ssrc=None,
            nack=NackTracker(), **common,
        )
        klass.slots.append(
            DownTrack(
                participant_id="class-1", slot=SlotKind.CAMERA, mid="0", media_kind="video", ssrc=SUB_SSRC,
                rtx_ssrc=SUB_SSRC + 1, pt_by_key={"vp8": 100}, rtx_pt_by_pt={100: 101}, clock_rate=90000,
                wire=sub_wire, emit=room.emit, room_budget=room.retransmit_budget,
            )
        )
        pub_peer.register(list(lead.inbound.values()), [])
        sub_peer.register([], klass.slots)
        for p in (lead, klass):
            p.peer.connected = True
            p.peer.last_rtcp = time.monotonic() + 3600  # never reaped as silent during a scenario
            room.participants[p.id] = p
        for kind, track in lead.inbound.items():
            room.sources[(lead.id, kind)] = track
        room.lead_id = "lead"
        room._rebind(0.0)
        for target, data in ops:
            if target == "pub-rtp":
                await pub_peer._on_rtp(data, 0)
            elif target == "pub-rtcp":
                await pub_peer._on_rtcp(data)
            elif target == "sub-rtcp":
                await sub_peer._on_rtcp(data)
            else:
                await asyncio.sleep(0)
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        room.fanout.flush()
        return {
            "errors": pub_peer.errors + sub_peer.errors,
            "tick_failures": {k: v for k, v in room.ratelog.counts.items() if k.startswith("tick:")},
            "wire_errors": pub_wire.errors + sub_wire.errors,
            "down": down,
            "snapshot": room.snapshot(),
        }
    finally:
        room._task.cancel()
        media.room._TICK = saved_tick
        for p in list(room.participants.values()):
            p.peer.wires.clear()
            await p.peer.close()


def check(result: dict[str, Any]) -> None:
    assert result["errors"] == 0, "an exception reached a packet handler's catch-all"
    assert not result["tick_failures"], result["tick_failures"]
    assert result["wire_errors"] == 0, "SRTP refused a packet the SFU had accepted"
    for packet in result["down"]:
        if is_rtcp(packet):
            continue  # the subscriber's sender reports
        hdr = RtpHeader.parse(packet)
        assert hdr is not None and hdr.ssrc in (SUB_SSRC, SUB_SSRC + 1), packet[:12].hex()
        assert len(packet) - 10 <= SRTP_MAX_RTP  # protected: plaintext plus the 10-byte auth tag


def play(ops: list[tuple[str, bytes]]) -> None:
    check(asyncio.run(run_scenario(ops)))
