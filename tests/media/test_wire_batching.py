"""Batched sending: a subscriber's share of one loop pass goes down in few system calls, in order."""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
import struct

import pytest

from media.api import SlotKind, TrackKind
from media.forwarding import CodecInfo, DownTrack, FanoutQueue, InboundTrack, Wire
from media.nack_tracker import NackTracker
from media.rtp_header import RtpHeader

KEY = bytes([0x10, 0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A])


def udp_pair() -> tuple[socket.socket, socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    return tx, rx


def drain(rx: socket.socket, count: int) -> list[bytes]:
    return [rx.recv(70000) for _ in range(count)]


def test_runs_of_equal_size_go_down_in_one_call_each_and_arrive_as_separate_datagrams_in_order():
    tx, rx = udp_pair()
    calls: list[int] = []

    def sendmsg(buffers, ancdata, flags, addr):
        calls.append(len(buffers))
        return tx.sendmsg(buffers, ancdata, flags, addr)

    wire = Wire()
    wire.connect(bytes, bytes, tx.sendto, rx.getsockname(), sendmsg)
    # a frame (five full packets and a short last one), then a bigger packet, which must start a new
    # run and which the next, shorter one ends, then 69 equal ones, more than one call may carry
    packets = [bytes([i]) * 1200 for i in range(5)] + [b"\x05" * 300, b"\x06" * 1300]
    packets += [bytes([7 + i % 200]) * 900 for i in range(70)]
    wire.send_protected(packets)
    received = drain(rx, len(packets))
    assert received == packets
    assert calls == [6, 2, 64, 5] and wire.errors == 0
    tx.close()
    rx.close()


def test_a_socket_that_refuses_segmentation_falls_back_to_one_send_per_packet():
    tx, rx = udp_pair()

    def refusing(*args):
        raise OSError(errno.EIO, "no checksum offload")

    wire = Wire()
    wire.connect(bytes, bytes, tx.sendto, rx.getsockname(), refusing)
    packets = [b"a" * 1000, b"b" * 1000, b"c" * 10]
    wire.send_protected(packets)
    wire.send_protected(packets)
    assert drain(rx, 6) == packets * 2
    assert wire.gso is False and wire.errors == 0
    tx.close()
    rx.close()


def make_track(fanout: FanoutQueue | None) -> InboundTrack:
    return InboundTrack(
        participant_id="lead",
        kind=TrackKind.CAMERA,
        media_kind="video",
        mid="0",
        codecs={97: CodecInfo("vp8", "vp8", 90000)},
        rtx_apt={},
        ssrc=1111,
        rtx_ssrc=None,
        wire=Wire(),
        rtcp_ssrc=5,
        fir_only=False,
        history_size=64,
        keyframe_interval=0.0,
        nack=NackTracker(),
        emit=lambda *a: None,
        fanout=fanout,
    )


class RecordingWire(Wire):
    """Keeps each call's packets instead of sending them."""

    def __init__(self, calls: list[list[bytes]]) -> None:
        super().__init__()
        self.calls = calls
        self.connect(bytes, bytes, lambda data, addr: None, ("127.0.0.1", 9))

    def send_protected(self, packets: list[bytes]) -> None:
        self.calls.append(list(packets))


def make_slot(track: InboundTrack, sent: list[list[bytes]], ssrc: int) -> DownTrack:
    wire = RecordingWire(sent)
    dt = DownTrack(
        participant_id=f"class-{ssrc}",
        slot=SlotKind.CAMERA,
        mid="0",
        media_kind="video",
        ssrc=ssrc,
        rtx_ssrc=ssrc + 1,
        pt_by_key={"vp8": 100},
        rtx_pt_by_pt={},
        clock_rate=90000,
        wire=wire,
        emit=lambda *a: None,
    )
    dt.bind(("lead", TrackKind.CAMERA), track, 0.0)
    return dt


def rtp(seq: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, 97 | (0x80 if marker else 0), seq, 9000, 1111) + payload


async def test_what_arrives_in_one_loop_pass_is_fanned_out_after_it_as_one_batch_per_subscriber():
    queue = FanoutQueue(asyncio.get_running_loop())
    track = make_track(queue)
    batches: dict[int, list[list[bytes]]] = {3001: [], 3003: []}
    for ssrc, sent in batches.items():
        make_slot(track, sent, ssrc)
    frame = [rtp(10, KEY), rtp(11, b"\x00two"), rtp(12, b"\x00three", marker=True)]
    for data in frame:
        track.on_rtp(RtpHeader.parse(data), data, 1.0)
    assert all(sent == [] for sent in batches.values())  # nothing sent inside the pass
    await asyncio.sleep(0)
    for ssrc, sent in batches.items():
        assert len(sent) == 1 and len(sent[0]) == 3  # one call with the whole frame
        headers = [RtpHeader.parse(p) for p in sent[0]]
        assert [h.ssrc for h in headers] == [ssrc] * 3
        assert [(h.seq - headers[0].seq) & 0xFFFF for h in headers] == [0, 1, 2]
        assert [p[12:] for p in sent[0]] == [d[12:] for d in frame]
    assert track.keyframe_packets == 3 and track.fanout_cost > 0
    # the next pass is a batch of its own
    data = rtp(13, b"\x00four")
    track.on_rtp(RtpHeader.parse(data), data, 1.1)
    await asyncio.sleep(0)
    assert [len(b) for b in batches[3001]] == [3, 1]


async def test_a_fault_in_one_tracks_fan_out_does_not_stop_the_others():
    queue = FanoutQueue(asyncio.get_running_loop())
    broken, healthy = make_track(queue), make_track(queue)
    sent: list[list[bytes]] = []
    make_slot(healthy, sent, 3001)
    bad = make_slot(broken, [], 4001)

    def explode(batch, now):
        raise RuntimeError("bug")

    bad.forward = explode  # type: ignore[method-assign]
    for track in (broken, healthy):
        data = rtp(10, KEY)
        track.on_rtp(RtpHeader.parse(data), data, 1.0)
    await asyncio.sleep(0)
    assert len(sent) == 1 and broken.pending == []


@pytest.mark.parametrize("size", [1, 2])
def test_without_a_queue_packets_go_out_at_once(size):
    track = make_track(None)
    sent: list[list[bytes]] = []
    make_slot(track, sent, 3001)
    for i in range(size):
        data = rtp(10 + i, KEY)
        track.on_rtp(RtpHeader.parse(data), data, 1.0)
    assert [len(b) for b in sent] == [1] * size


async def test_packets_before_a_stream_jump_in_the_same_pass_still_go_out():
    queue = FanoutQueue(asyncio.get_running_loop())
    track = make_track(queue)
    sent: list[list[bytes]] = []
    make_slot(track, sent, 3001)
    # a keyframe and a packet of the old stream, then the publisher restarts far away (a jump is
    # believed on the fourth packet in a row of the new numbering) with a new keyframe, all in one loop pass
    jump = [(30000, KEY), (30001, KEY), (30002, KEY), (30003, KEY), (30004, b"\x00new")]
    for seq, payload in [(10, KEY), (11, b"\x00old"), *jump]:
        data = rtp(seq, payload)
        track.on_rtp(RtpHeader.parse(data), data, 1.0)
    await asyncio.sleep(0)
    payloads = [p[12:] for call in sent for p in call]
    assert payloads[:2] == [KEY, b"\x00old"]  # sent under the old mapping before the restart
    assert payloads[-2:] == [KEY, b"\x00new"]  # the new stream resumes at its keyframe
    seqs = [RtpHeader.parse(p).seq for call in sent for p in call]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))  # one continuous numbering
