from hypothesis import given
from hypothesis import strategies as st

from media.nack_tracker import NackTracker
from media.receive_stats import ReceiveStats


def test_gap_is_nacked_at_once_then_retried_then_given_up():
    t = NackTracker(max_gap=100, max_retries=2, retry_interval=0.05)
    assert t.on_packet(10, 0.0) is None
    assert t.on_packet(13, 0.0) == [11, 12]
    assert t.on_packet(14, 0.01) is None  # too soon to ask again
    assert t.due(0.06) == [11, 12]
    assert t.on_packet(11, 0.07) is None  # 11 arrived
    assert t.due(0.2) is None and not t.missing  # 12 was asked twice: given up


def test_wraparound_and_jumps():
    t = NackTracker(max_gap=10)
    t.on_packet(65534, 0.0)
    assert t.on_packet(1, 0.0) == [65535, 0]
    t.on_packet(5000, 0.0)  # a restarted source: not a gap of thousands
    assert not t.missing


@given(st.lists(st.integers(0, 0xFFFF), max_size=300))
def test_tracker_stays_bounded(seqs):
    t = NackTracker(max_gap=64)
    for i, s in enumerate(seqs):
        t.on_packet(s, i * 0.01)
    assert len(t.missing) <= 64 * 2


def test_receive_stats_loss_and_report():
    s = ReceiveStats(90000)
    for seq in [65534, 65535, 1, 2]:  # 0 lost, across the wrap
        s.on_packet(seq, 0, 0.0)
    s.on_sr(0x1122334455667788, 1.0)
    block = s.report(99, 1.5)
    assert block.packets_lost == 1 and block.highest_seq == 65536 + 2
    assert block.fraction_lost == 256 // 5 and block.lsr == 0x33445566 and block.dlsr == 32768
