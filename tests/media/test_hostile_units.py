"""The pure parts of the media plane under hostile input: sizes, sequence numbers, NACK state, budgets."""

from __future__ import annotations

from hostile_path import DELTA, KEY, make_down, make_track, rtp

from media.limits import MAX_PAYLOAD, SRTP_MAX_RTCP
from media.rtcp import Nack, build_nacks, parse_compound
from media.rtp_header import RtpHeader


def feed(track, data: bytes, now: float = 1.0) -> None:
    track.on_rtp(RtpHeader.parse(data), data, now)


# -- defect 1: oversized packets ---------------------------------------------------------------------


def test_an_oversized_payload_is_refused_where_it_enters_and_the_rest_is_forwarded():
    up: list[bytes] = []
    track = make_track(up)
    downs = [[] for _ in range(3)]
    slots = [make_down(track, sink, f"class-{i}", 3000 + 10 * i) for i, sink in enumerate(downs)]
    feed(track, rtp(10, KEY))
    # 1,344 bytes of payload: 1,356 as RTP, 1,358 on RTX, beyond what SRTP protects.
    feed(track, rtp(11, DELTA + bytes(MAX_PAYLOAD + 2 - len(DELTA))))
    feed(track, rtp(12, DELTA + bytes(100)))
    assert track.oversized == 1
    assert [len(sink) for sink in downs] == [2, 2, 2]
    assert all(dt.wire.errors == 0 for dt in slots)


def test_a_batch_with_a_packet_srtp_refuses_loses_only_that_packet():
    up: list[bytes] = []
    track = make_track(up)
    downs = [[] for _ in range(2)]
    slots = [make_down(track, sink, f"class-{i}", 3000 + 10 * i) for i, sink in enumerate(downs)]
    batch = [(10, 0, 0, 97, KEY, True), (11, 0, 0, 97, bytes(1400), False), (12, 0, 0, 97, DELTA, False)]
    for dt in slots:
        dt.forward(batch, 1.0)
    assert [len(sink) for sink in downs] == [2, 2]
    assert [dt.wire.errors for dt in slots] == [1, 1]


def test_the_largest_accepted_payload_can_be_retransmitted_on_rtx():
    up: list[bytes] = []
    down: list[bytes] = []
    track = make_track(up)
    dt = make_down(track, down)
    feed(track, rtp(10, KEY + bytes(MAX_PAYLOAD - len(KEY))))
    feed(track, rtp(11, DELTA))
    first = RtpHeader.parse(down[0])  # protected, but the header stays readable
    dt.on_nack([first.seq, (first.seq + 1) & 0xFFFF, (first.seq + 2) & 0xFFFF])
    assert dt.retransmitted == 2 and dt.wire.errors == 0 and len(down) == 4
    assert len(down[2]) > MAX_PAYLOAD + 14  # the big one went out on RTX


def test_a_long_upstream_nack_is_split_into_packets_srtp_takes():
    up: list[bytes] = []
    track = make_track(up)
    lost = list(range(0, 2000, 5))  # 400 items, one per number
    track.send_nack(lost)
    assert track.wire.errors == 0 and len(up) > 1
    packets = build_nacks(5, 1111, lost)
    assert max(len(p) for p in packets) <= SRTP_MAX_RTCP
    got = [n for p in packets for item in parse_compound(p) if isinstance(item, Nack) for n in item.lost]
    assert got == lost


def test_a_nack_packet_is_not_unpacked_beyond_a_bound():
    (nack,) = build_nacks(1, 2, range(0, 20000, 1), items_per_packet=10_000)[:1]
    (parsed,) = parse_compound(nack)
    assert len(parsed.lost) <= 512 + 16  # whole items: the last one may carry 16 more
