from hypothesis import given
from hypothesis import strategies as st

from media.rewriter import SeqTsRewriter


def test_first_source_starts_at_the_chosen_origin():
    rw = SeqTsRewriter(90000, initial_seq=1000, initial_ts=5000)
    rw.begin(seq=40000, ts=123, now=10.0)
    assert rw.map(40000, 123, 10.0) == 1000 and rw.out_ts(123) == 5000
    assert rw.map(40001, 3123, 10.03) == 1001 and rw.out_ts(3123) == 8000


def test_switch_continues_numbering_and_advances_time_by_the_pause():
    rw = SeqTsRewriter(90000, initial_seq=65534, initial_ts=0xFFFFFF00)
    rw.begin(10, 0, now=1.0)
    assert [rw.map(s, 0, 1.0) for s in (10, 11, 12)] == [65534, 65535, 0]  # wraps
    rw.stop()
    rw.begin(seq=777, ts=999, now=1.5)  # another source, half a second later
    assert rw.map(777, 999, 1.5) == 1
    assert rw.out_ts(999) == (0xFFFFFF00 + 45000) & 0xFFFFFFFF


def test_packets_from_before_the_switch_point_are_dropped_and_gaps_kept():
    rw = SeqTsRewriter(48000, 100, 0)
    rw.begin(500, 0, 0.0)
    assert rw.map(499, 0, 0.0) == -1
    assert rw.map(502, 0, 0.0) == 102  # a gap stays a gap, so a NACK maps back exactly
    assert rw.map(501, 0, 0.0) == 101  # late packet fills it
    assert rw.last_seq == 102
    assert rw.to_source_seq(101) == 501 and rw.to_source_seq(99) == -1 and rw.to_source_seq(103) == -1


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(1, 50)), max_size=8),
)
def test_any_sequence_of_switches_yields_a_continuous_stream(seq0, ts0, sources):
    rw = SeqTsRewriter(90000, seq0, ts0)
    now = 0.0
    expected = seq0
    last_ts = None
    for in_seq, in_ts, count in sources:
        rw.stop()
        now += 0.1
        rw.begin(in_seq, in_ts, now)
        for i in range(count):
            out = rw.map((in_seq + i) & 0xFFFF, (in_ts + 3000 * i) & 0xFFFFFFFF, now)
            assert out == expected & 0xFFFF
            ts = rw.out_ts((in_ts + 3000 * i) & 0xFFFFFFFF)
            if last_ts is not None:
                assert 0 < (ts - last_ts) & 0xFFFFFFFF < 0x80000000  # time only moves forward
            last_ts = ts
            expected += 1


@given(st.integers(-(2**40), 2**40), st.integers(-(2**40), 2**40), st.floats(-1e6, 1e6))
def test_rewriter_accepts_any_numbers(seq, ts, now):
    rw = SeqTsRewriter(90000, 0, 0)
    rw.begin(seq & 0xFFFF, ts & 0xFFFFFFFF, now)
    out = rw.map(seq & 0xFFFF, ts & 0xFFFFFFFF, now)
    assert 0 <= out <= 0xFFFF and 0 <= rw.out_ts(ts & 0xFFFFFFFF) <= 0xFFFFFFFF
