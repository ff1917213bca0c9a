"""The alert rules and the firing/clearing state machine: pure, with the clocks given."""

from __future__ import annotations

import dataclasses

from monitoring.alerts import (
    AlertConfig,
    AlertEngine,
    DiskHealth,
    ProcessHealth,
    lesson_conditions,
    quality_conditions,
    system_conditions,
)
from monitoring.observation import LessonSample, ParticipantSample

CFG = AlertConfig()
START = 1_000_000.0


def _sample(at: float, **kw: object) -> LessonSample:
    base = dict(lesson_id=7, kind="specialised", subject="数学", lead_name="一中 101", county_ids=frozenset({3}),
                region_ids=frozenset({1}), starts_at=START, ends_at=START + 2700, wall=at, mono=at,
                lead_state="on_air", lead_expected=frozenset({"camera"}), lead_live=frozenset({"camera", "audio"}),
                talkback=None, receivers={"classroom-2": "二小 1班", "classroom-3": "三小 1班"}, absent={},
                participants=())
    base.update(kw)
    return LessonSample(**base)  # type: ignore[arg-type]


def test_the_lead_not_on_air_two_minutes_after_the_start_and_only_then() -> None:
    assert [c.rule for c in lesson_conditions(_sample(START + 119, lead_state="off_air",
                                                      lead_expected=frozenset()), CFG)] == []
    conds = lesson_conditions(_sample(START + 121, lead_state="off_air", lead_expected=frozenset()), CFG)
    assert [c.rule for c in conds] == ["lead_not_on_air"] and "仍未开播" in conds[0].summary_zh
    assert conds[0].county_ids == frozenset({3})
    assert lesson_conditions(_sample(START + 2701, lead_state="off_air"), CFG) == []  # the lesson is over


def test_a_receiving_classroom_absent_five_minutes_after_the_start_or_dropped_for_30_s() -> None:
    early = lesson_conditions(_sample(START + 200, absent={"classroom-3": "absent"}), CFG)
    assert early == []
    late = lesson_conditions(_sample(START + 301, absent={"classroom-3": "absent"}), CFG)
    assert [(c.rule, c.subject, c.for_s) for c in late] == [("classroom_absent", "classroom-3", 0.0)]
    dropped = lesson_conditions(_sample(START + 100, absent={"classroom-3": "lost"}), CFG)
    assert [(c.rule, c.for_s) for c in dropped] == [("classroom_absent", 30.0)] and "断线" in dropped[0].summary_zh


def test_the_leads_camera_that_stopped_sending_is_a_frozen_stream() -> None:
    conds = lesson_conditions(_sample(START + 60, lead_live=frozenset({"audio"}), lead_state="on_air"), CFG)
    assert [(c.rule, c.subject, c.for_s) for c in conds] == [("stream_frozen", "lead:camera", 3.0)]
    # the teacher turned the camera off on the page: not expected, no alert
    assert lesson_conditions(_sample(START + 60, lead_live=frozenset({"audio"}), lead_expected=frozenset()), CFG) == []


def test_freezes_and_loss_from_quality() -> None:
    p = ParticipantSample("classroom-2", "receiver", "二小 1班", 2, "ok", {}, {})
    s = _sample(START + 60, participants=(p,))
    conds = quality_conditions(s, {"classroom-2": {"reasons": ["freeze"], "loss": 0.12}}, CFG)
    assert sorted(c.rule for c in conds) == ["high_loss", "picture_frozen"]
    # a classroom whose link is lost is the absence rule's, not a freeze
    lost = dataclasses.replace(p, link="lost")
    assert quality_conditions(_sample(START + 60, participants=(lost,)), {"classroom-2": {"reasons": ["freeze"]}},
                              CFG) == []


def test_process_and_disk_health() -> None:
    conds = system_conditions([ProcessHealth("worker 42", 97.0, 600.0), ProcessHealth("control", 10.0, 3.0)],
                              [DiskHealth("/data", 100 * 1024**2, 100 * 1024**3)], CFG)
    assert sorted(c.rule for c in conds) == ["cpu_hot", "disk_full", "loop_lag"]


def test_an_alert_fires_after_its_condition_held_and_clears_by_itself_once_gone() -> None:
    engine = AlertEngine(clear_after_s=5.0)
    frozen = lesson_conditions(_sample(START, lead_live=frozenset({"audio"})), CFG)
    assert engine.evaluate(frozen, 0.0, START) == []
    assert engine.evaluate(frozen, 2.0, START + 2) == []
    fired = engine.evaluate(frozen, 3.0, START + 3)
    assert [c.kind for c in fired] == ["fired"] and fired[0].alert.fired_at == START + 3
    assert engine.evaluate(frozen, 4.0, START + 4) == []  # fires once
    # the video is back: cleared only after clear_after_s without the condition (no flapping)
    assert engine.evaluate([], 5.0, START + 5) == []
    assert engine.evaluate(frozen, 6.0, START + 6) == []  # back again: the same alert goes on
    assert engine.evaluate([], 7.0, START + 7) == []
    cleared = engine.evaluate([], 12.0, START + 12)
    assert [c.kind for c in cleared] == ["cleared"] and cleared[0].alert.cleared_at == START + 12
    # a condition shorter than its rule's for_s never fires
    assert engine.evaluate(frozen, 20.0, START + 20) == []
    assert engine.evaluate([], 21.0, START + 21) == []
    assert engine.evaluate(frozen, 22.0, START + 22) == []
    assert engine.evaluate(frozen, 24.0, START + 24) == []


def test_a_closed_lesson_clears_its_alerts_and_a_restart_keeps_firing_ones() -> None:
    engine = AlertEngine(clear_after_s=5.0)
    conds = lesson_conditions(_sample(START + 130, lead_state="off_air", lead_expected=frozenset()), CFG)
    [fired] = engine.evaluate(conds, 0.0, START + 130)
    fired.alert.id = 1
    after_restart = AlertEngine(clear_after_s=5.0)
    after_restart.restore([fired.alert])
    assert after_restart.evaluate(conds, 100.0, START + 131) == []  # still the same alert, not a new one
    [cleared] = after_restart.forget_lesson(7, START + 140)
    assert cleared.kind == "cleared" and not after_restart.firing
