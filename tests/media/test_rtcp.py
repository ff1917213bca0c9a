from hypothesis import given
from hypothesis import strategies as st

from media.rtcp import (
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    SenderReport,
    build_fir,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sr,
    nack_items,
    parse_compound,
)

BLOCK = ReportBlock(ssrc=7, fraction_lost=12, packets_lost=-3, highest_seq=70000, jitter=90, lsr=0x1234, dlsr=65536)


def test_sr_and_rr_round_trip_in_one_compound():
    data = build_sr(1, 0x0102030405060708, 90000, 10, 1000, [BLOCK]) + build_rr(2, [BLOCK])
    assert data[:2] == bytes([0x81, 200]) and len(data) == 52 + 32
    sr, rr = parse_compound(data)
    assert sr == SenderReport(1, 0x0102030405060708, 90000, 10, 1000, [BLOCK])
    assert rr == ReceiverReport(2, [BLOCK])


def test_nack_packs_pid_and_bitmask():
    assert nack_items([65535, 0, 1, 20]) == [(0, 0b1), (20, 0), (65535, 0)]
    data = build_nack(1, 2, [100, 101, 116, 117])
    assert data[:2] == bytes([0x81, 205])
    (nack,) = parse_compound(data)
    assert nack == Nack(1, 2, [100, 101, 116, 117])


def test_pli_fir_remb():
    assert build_pli(1, 2) == bytes([0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2])
    assert parse_compound(build_pli(1, 2)) == [Pli(1, 2)]
    assert parse_compound(build_fir(1, 9, 5)) == [Fir(1, 0, [(9, 5)])]
    (remb,) = parse_compound(build_remb(1, 2_500_000, [9, 10]))
    assert isinstance(remb, Remb) and remb.ssrcs == [9, 10] and abs(remb.bitrate - 2_500_000) < 2_500_000 / 2**17


def test_broken_packet_keeps_what_came_before():
    good = build_pli(1, 2)
    assert parse_compound(good + bytes([0x81, 206, 0, 40])) == [Pli(1, 2)]
    assert parse_compound(b"\x00\x00\x00\x00" + good) == []


@given(st.binary(max_size=300))
def test_parse_never_raises(data):
    parse_compound(data)
    parse_compound(build_pli(1, 2) + data)


@given(st.lists(st.integers(0, 0xFFFF), max_size=100))
def test_any_nack_list_round_trips(lost):
    (nack,) = parse_compound(build_nack(1, 2, lost))
    assert set(nack.lost) == set(lost)
