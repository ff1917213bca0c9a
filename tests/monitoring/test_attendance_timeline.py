"""The attendance timeline as a technician reads it: who was there when, for how long, and how well.

Pure rules, no server: random sequences of presence marks and stats ticks, with the wall clock stepping
back and forward and the event loop stalling, never give negative or double-counted minutes and never
credit more than the time that passed.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.attendance import (
    LEAD,
    Closed,
    LessonRule,
    Mark,
    Opened,
    Sample,
    Timeline,
    credited_key,
    restored,
)

RULE = LessonRule(1, frozenset({3, 4}), frozenset({7}), scheduled_s=40 * 60)
T0 = 1_790_000_000.0


def test_a_classroom_that_drops_out_and_comes_back_has_two_segments_and_the_gap_between() -> None:
    t = Timeline(RULE, max_step_s=2.0)
    wall, mono = T0, 100.0
    t.mark("classroom-3", Mark.JOINED, wall, mono)
    for _ in range(10):
        wall, mono = wall + 1, mono + 1
        t.tick(wall, mono, True, {"classroom-3": 4.0})
    t.mark("classroom-3", Mark.LOST, wall + 0.5, mono + 0.5)
    for _ in range(20):  # twenty seconds without the classroom
        wall, mono = wall + 1, mono + 1
        t.tick(wall, mono, True, {})
    t.mark("classroom-3", Mark.BACK, wall, mono)
    for q in (2.0, 3.0, 4.0, 5.0, 1.0):
        wall, mono = wall + 1, mono + 1
        t.tick(wall, mono, True, {"classroom-3": q})
    t.close()
    first, second = t.segments["classroom-3"]
    assert (first.opened_by, first.closed_by) == (Opened.JOINED, Closed.DROPPED)
    assert (second.opened_by, second.closed_by) == (Opened.REJOINED, Closed.CLOSED)
    assert second.start - first.end == 20.0
    assert first.seconds == 10.0 and second.seconds == 5.0
    assert (second.quality_min, second.quality_mean) == (1.0, 3.0)
    assert t.seconds(LEAD) == 35.0
    assert [e.what for e in t.events] == [Mark.JOINED, Mark.LOST, Mark.BACK]
    lead, rooms, teachers = t.minutes()
    assert (lead, rooms, teachers) == (round(35 / 60, 4), {3: 0.25}, {})
    assert t.share("classroom-3") == round(15 / 2400, 4)


def test_crediting_follows_the_settlement_rule() -> None:
    def key(**kw: object) -> str | None:
        base: dict[str, object] = {"participant_id": "classroom-3", "role": "receiver", "connection": "connected",
                                   "link": "ok"}
        return credited_key(RULE, Sample(**{**base, **kw}))  # type: ignore[arg-type]

    assert key() == "classroom-3"
    assert key(link="unknown") == "classroom-3"  # a late heartbeat is not an outage
    assert key(link="lost") is None  # a cable out is not attending, whatever ICE believes
    assert key(connection="checking") is None
    assert key(participant_id="classroom-9") is None  # not a receiver of this lesson
    assert key(participant_id="observer-abc", role="observer", teacher_id=7) == "teacher-7"
    assert key(participant_id="observer-abc", role="observer", teacher_id=8) is None  # not a community member
    assert key(participant_id="observer-abc", role="observer", teacher_id=None) is None
    assert key(participant_id="lead-1", role="lead") is None  # the lead counts on air, not as a viewer


def test_a_stall_credits_at_most_two_intervals_and_bad_quality_is_not_stored() -> None:
    t = Timeline(RULE, max_step_s=2.0)
    t.tick(T0, 0.0, False, {"classroom-4": 9.0})  # the first tick stands for one interval
    t.tick(T0 + 60, 60.0, False, {"classroom-4": float("nan")})  # a minute-long stall
    (seg,) = t.segments["classroom-4"]
    assert seg.seconds == 3.0 and seg.end - seg.start == 61.0
    assert seg.quality_n == 0 and seg.quality_min is None


def test_after_a_restart_the_timeline_continues_and_counts_nothing_twice() -> None:
    t = Timeline(RULE, max_step_s=2.0)
    for i in range(1, 11):
        t.tick(T0 + i, float(i), True, {"classroom-3": None})
    stored = ([s for segs in t.segments.values() for s in segs], list(t.events), t.last_at, t.closed)
    # the new process's wall clock stands before the last recorded position (it stepped back)
    again = restored(RULE, 2.0, *stored)
    assert again.segments["classroom-3"][0].closed_by == Closed.INTERRUPTED
    again.tick(T0 + 5, 9000.0, True, {"classroom-3": None})
    again.tick(T0 + 6, 9001.0, True, {"classroom-3": None})
    first, second = again.segments["classroom-3"]
    assert second.opened_by == Opened.REJOINED and second.start >= first.end
    assert second.seconds == 1.0  # the first tick after the restart credits nothing: no time had passed
    assert again.seconds("classroom-3") == 11.0


def test_after_settlement_nothing_more_is_credited() -> None:
    t = Timeline(RULE, max_step_s=2.0)
    t.tick(T0, 0.0, True, {"classroom-3": None})
    t.close()
    t.tick(T0 + 1, 1.0, True, {"classroom-3": None})
    assert t.mark("classroom-3", Mark.LEFT, T0 + 2, 2.0) is None
    assert t.seconds("classroom-3") == 1.0 and t.segments["classroom-3"][0].closed_by == Closed.CLOSED


KEYS = ["classroom-3", "classroom-4", "teacher-7"]
STEP = st.one_of(
    st.tuples(st.just("tick"), st.floats(0, 5), st.floats(-3600, 3600), st.booleans(),
              st.dictionaries(st.sampled_from(KEYS), st.none() | st.floats(-10, 10) | st.just(float("nan")))),
    st.tuples(st.just("mark"), st.floats(0, 5), st.floats(-3600, 3600), st.sampled_from(KEYS), st.sampled_from(Mark)),
    st.tuples(st.just("restart"), st.floats(0, 120), st.floats(-3600, 3600)),
)


@settings(max_examples=400, deadline=None)
@given(steps=st.lists(STEP, max_size=60))
def test_clock_jumps_restarts_and_stalls_never_give_negative_or_double_counted_minutes(steps: list[tuple]) -> None:
    t = Timeline(RULE, max_step_s=2.0)
    true_now, mono = 0.0, 1000.0  # real time since the start; this process's monotonic clock
    credited_bound = 0.0  # the most any participant may have: real time passed, two intervals a tick at most
    since_tick = 0.0
    for step in steps:
        kind, advance, jump = step[0], step[1], step[2]
        true_now += advance
        since_tick += advance
        mono += advance
        wall = T0 + true_now + jump  # a wall clock off by up to an hour, either way, changing at every step
        if kind == "tick":
            # the first tick of a process stands for one interval (1 s) before it
            credited_bound += min(since_tick, 2.0) if t._tick_mono is not None else 1.0
            since_tick = 0.0
            t.tick(wall, mono, step[3], step[4])
        elif kind == "mark":
            t.mark(step[3], step[4], wall, mono)
        else:  # the server restarts: a new monotonic clock, the timeline read back from storage
            mono = 50.0 + advance
            t = restored(RULE, 2.0, [s for segs in t.segments.values() for s in segs], list(t.events),
                         t.last_at, t.closed)
    positions = [s for segs in t.segments.values() for s in segs]
    for key, segs in t.segments.items():
        total = 0.0
        for i, seg in enumerate(segs):
            assert seg.seconds >= 0
            assert seg.seconds <= seg.end - seg.start + 1e-6  # never more than the time it spans
            assert seg.seq == i
            if i:
                assert seg.start >= segs[i - 1].end - 1e-6  # no two segments of a participant overlap
                assert segs[i - 1].closed_by is not None
            if seg.quality_n:
                assert seg.quality_min is not None and 1 <= seg.quality_min <= seg.quality_sum / seg.quality_n <= 5
            total += seg.seconds
        assert total <= credited_bound + 1e-6, key
        assert total == t.seconds(key)
    if positions:
        span = max(s.end for s in positions) - min(s.start for s in positions)
        assert all(t.seconds(k) <= span + 1e-6 for k in t.segments)
    lead, rooms, teachers = t.minutes()
    assert lead >= 0 and all(m >= 0 for m in [*rooms.values(), *teachers.values()])
    assert all(0 <= t.share(k) <= 1 for k in t.segments)
