"""The pure rules of review and replay: who decides, what a replay may show, what it holds, what it credits,
and who may watch a recording once it is reviewed or replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.model import Evidence, Kind, Lesson
from scheduler.rules.conflicts import booking_conflicts, resources_of
from scheduler.rules.recording import RecordingAudience, RecordingConfig, Viewer, is_recorded, playback_refusal
from scheduler.rules.replay import (
    ReplaySource,
    ReviewFacts,
    credits_lead_of,
    parse_uses,
    replay_draft,
    replay_due_problem,
    replay_source_problem,
    replay_window_problems,
    review_refusal,
)
from scheduler.rules.workload import DeliveryThresholds, FactorTooLow, delivery_entries, is_delivered

START = datetime(2026, 9, 7, 0, 0, tzinfo=UTC)
RECORDED = Lesson(1, Kind.SPECIALISED, "英语", "三年级", lead_teacher_id=10, lead_classroom_id=100,
                  start=START, end=START + timedelta(minutes=40), receiving_classroom_ids=(200,), hours=1)


def source(state: str = "ready", review: str = "approved", uses: tuple[str, ...] = ("replay",)) -> ReplaySource:
    return ReplaySource(7, state, review, frozenset(uses), RECORDED, 2400.0)


def replay(at: datetime, rooms: tuple[int, ...] = (300,), credits: bool | None = False) -> Lesson:
    d = replay_draft(source(), rooms, at, None, 1, credits)
    return Lesson(50, d.kind, d.subject, d.grade, d.lead_teacher_id, d.lead_classroom_id, d.start, d.end,
                  d.receiving_classroom_ids, hours=d.hours or 1, replay_of=d.replay_of,
                  credits_lead=bool(d.credits_lead))


def test_uses_are_replay_model_or_both() -> None:
    assert parse_uses("model,replay") == ("replay", "model")
    assert parse_uses(["replay"]) == ("replay",)
    for bad in ("", "broadcast", ["replay", "public"], 3):
        with pytest.raises(ValueError):
            parse_uses(bad)


def test_only_a_reviewer_of_the_county_decides_with_a_reason_on_a_finished_recording() -> None:
    facts = ReviewFacts("ready", frozenset({1}))
    assert review_refusal(facts, frozenset({1}), True, "fits the syllabus") is None
    assert review_refusal(facts, frozenset({2}), True, "ok")[0] == "not_reviewer"  # type: ignore[index]
    assert review_refusal(facts, frozenset(), False, "ok")[0] == "not_reviewer"  # type: ignore[index]
    assert review_refusal(facts, frozenset({1}), True, "  ")[0] == "reason_needed"  # type: ignore[index]
    assert review_refusal(ReviewFacts("recording", frozenset({1})), frozenset({1}), True, "ok")[0] == "not_ready"  # type: ignore[index]
    # a recording still being made may be refused (a reviewer watching it live saw a problem)
    assert review_refusal(ReviewFacts("recording", frozenset({1})), frozenset({1}), False, "a face") is None


def test_a_replay_shows_only_a_finished_recording_approved_for_replay() -> None:
    assert replay_source_problem(7, None).code == "no_recording"  # type: ignore[union-attr]
    assert replay_source_problem(7, source(state="failed")).code == "no_recording"  # type: ignore[union-attr]
    assert replay_source_problem(7, source(review="pending")).code == "not_approved"  # type: ignore[union-attr]
    assert replay_source_problem(7, source(review="refused")).code == "not_approved"  # type: ignore[union-attr]
    assert replay_source_problem(7, source(uses=("model",))).code == "not_approved"  # type: ignore[union-attr]
    problem = replay_source_problem(7, source(review="pending"))
    assert problem is not None and "待审查" in problem.message_zh
    assert replay_source_problem(7, source()) is None


def test_a_replay_is_the_recorded_lesson_at_another_time_for_other_classrooms() -> None:
    at = START + timedelta(days=2)
    d = replay_draft(source(), (300, 301), at, None, 1, None)
    assert (d.kind, d.subject, d.grade, d.lead_teacher_id, d.lead_classroom_id) == (
        Kind.SPECIALISED, "英语", "三年级", 10, 100)
    assert d.end - d.start == timedelta(minutes=40) and d.replay_of == 7 and d.credits_lead is None
    short = replay_draft(source(), (300,), at, at + timedelta(minutes=30), 1, None)
    assert [p.code for p in replay_window_problems(short, source())] == ["replay_cut"]
    assert replay_window_problems(d, source()) == []
    assert credits_lead_of(None) is False and credits_lead_of(True) is True


def test_a_replay_is_never_recorded_again() -> None:
    config = RecordingConfig()
    assert is_recorded(config, RECORDED, 1, None)
    assert not is_recorded(config, replay(START + timedelta(days=2)), 1, None)
    assert not is_recorded(config, replay(START + timedelta(days=2)), 1, True)


def test_a_replay_holds_its_receiving_classrooms_not_the_recorded_teacher_or_classroom() -> None:
    at = START + timedelta(days=2)
    r = replay(at, (300,))
    assert resources_of(r) == [("classroom", 300)]
    live = Lesson(60, Kind.SPECIALISED, "英语", "三年级", 10, 100, at, at + timedelta(minutes=40), (400,))
    assert booking_conflicts(live, [r]) == []  # the teacher teaches live while her recording replays elsewhere
    other = Lesson(61, Kind.SPECIALISED, "数学", "三年级", 11, 101, at, at + timedelta(minutes=40), (300,))
    assert [p.code for p in booking_conflicts(other, [r])] == ["classroom_busy"]


def test_a_delivered_replay_credits_the_recorded_teacher_only_when_the_county_says_so() -> None:
    at = START + timedelta(days=2)
    evidence = Evidence(50, 40.0, {300: 36.0})
    assert is_delivered(replay(at), evidence, DeliveryThresholds())  # the replay was on air, a classroom attended
    assert not is_delivered(replay(at), Evidence(50, 40.0, {300: 10.0}), DeliveryThresholds())
    assert delivery_entries(replay(at, credits=False), 1, 1.5) == []
    (entry,) = delivery_entries(replay(at, credits=True), 1, 2.0)
    assert (entry.entry_type, entry.teacher_id, entry.weighted_hours) == ("teacher_workload", 10, 2.0)
    with pytest.raises(FactorTooLow):  # the 1:1.5 floor holds for credited replays too
        delivery_entries(replay(at, credits=True), 1, 1.2)


def test_a_replay_due_is_reported_when_its_recording_or_file_is_gone_or_no_longer_approved() -> None:
    assert replay_due_problem(source(), True) is None
    assert replay_due_problem(None, False)[0] == "replay_no_recording"  # type: ignore[index]
    assert replay_due_problem(source(state="deleted"), False)[0] == "replay_no_recording"  # type: ignore[index]
    assert replay_due_problem(source(), False)[0] == "replay_file_missing"  # type: ignore[index]
    assert replay_due_problem(source(review="refused"), True)[0] == "replay_not_approved"  # type: ignore[index]


def audience(**kw: object) -> RecordingAudience:
    base: dict[str, object] = {"lesson": RECORDED, "county_ids": frozenset({1}),
                               "receiving_school_ids": frozenset({20}), "community_teacher_ids": frozenset(),
                               "lead_county_id": 1}
    return RecordingAudience(**{**base, **kw})  # type: ignore[arg-type]


def test_who_may_watch_a_recording_before_and_after_review_and_replay() -> None:
    lead = Viewer(admin=False, county_id=1, teacher_id=10, school_id=10)
    onsite = Viewer(admin=False, county_id=1, teacher_id=21, school_id=20)
    colleague = Viewer(admin=False, county_id=1, teacher_id=31, school_id=30)  # same county, not in the lesson
    far = Viewer(admin=False, county_id=2, teacher_id=41, school_id=40)  # a replay's receiving school elsewhere
    reviewer = Viewer(admin=False, county_id=1, teacher_id=51, school_id=50, reviewer_county_ids=frozenset({1}))
    far_admin = Viewer(admin=True, county_id=2)
    receivers_reviewer = Viewer(admin=False, county_id=2, teacher_id=61, school_id=60,
                                reviewer_county_ids=frozenset({2}))
    pending = audience()
    # a receiving county's reviewer does not decide on another county's lesson, nor watch it for that
    assert playback_refusal(receivers_reviewer, audience(county_ids=frozenset({1, 2}))) is not None
    assert [playback_refusal(v, pending) is None for v in (lead, onsite, colleague, far, reviewer, far_admin)] == [
        True, True, False, False, True, False]
    model = audience(uses=frozenset({"model"}))
    assert playback_refusal(colleague, model) is None and playback_refusal(far, model) is not None
    replayed = audience(uses=frozenset({"replay"}), replay_school_ids=frozenset({40}),
                        replay_county_ids=frozenset({2}))
    assert playback_refusal(far, replayed) is None and playback_refusal(far_admin, replayed) is None
    assert playback_refusal(colleague, replayed) is not None  # replay approval alone opens it to no one else
    assert playback_refusal(Viewer(admin=False), model) is not None  # a classroom device or technician
