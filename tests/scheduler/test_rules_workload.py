"""Workload weighting (1:1.5), delivery judged from evidence, and the ledger a delivered lesson makes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Evidence, Kind, Lesson
from scheduler.rules.workload import (
    MIN_FACTOR,
    DeliveryThresholds,
    EntryDraft,
    FactorTooLow,
    delivery_entries,
    factor_for,
    is_delivered,
    scheduled_minutes,
    validate_factor,
)

START = datetime(2025, 9, 8, 1, 0, tzinfo=UTC)


def lesson(minutes: int = 60, kind: Kind = Kind.SPECIALISED, receivers: tuple[int, ...] = (201, 202)) -> Lesson:
    return Lesson(
        id=1,
        kind=kind,
        subject="English",
        grade="5",
        lead_teacher_id=11,
        lead_classroom_id=101,
        start=START,
        end=START + timedelta(minutes=minutes),
        receiving_classroom_ids=receivers,
    )


DEFAULT = DeliveryThresholds()


# --- the factor --------------------------------------------------------------------------------


def test_a_factor_of_exactly_1_5_is_accepted() -> None:
    assert MIN_FACTOR == 1.5
    assert validate_factor(1.5) == 1.5
    assert validate_factor("1.5") == 1.5  # as read from a config file or form


def test_a_higher_factor_is_accepted() -> None:
    assert validate_factor(2) == 2.0


@pytest.mark.parametrize("factor", [1.49, 1.4999999, 1.0, 0.0, -1.5])
def test_a_factor_below_1_5_is_refused(factor: float) -> None:
    with pytest.raises(FactorTooLow, match=r"1\.5"):
        validate_factor(factor)


@pytest.mark.parametrize("factor", [math.nan, math.inf, "abc", None, ""])
def test_a_factor_that_is_not_a_finite_number_is_refused(factor: object) -> None:
    with pytest.raises(FactorTooLow):
        validate_factor(factor)  # type: ignore[arg-type]


def test_a_refused_factor_is_a_value_error_for_callers_that_catch_those() -> None:
    with pytest.raises(ValueError):
        validate_factor(1.2)


def test_each_county_has_its_own_factor_and_the_default_is_1_5() -> None:
    factors = {1: 2.0, 2: 1.5}
    assert factor_for(factors, 1) == 2.0
    assert factor_for(factors, 2) == 1.5
    assert factor_for(factors, 3) == 1.5
    with pytest.raises(FactorTooLow):
        factor_for({4: 1.2}, 4)


# --- delivery from evidence ----------------------------------------------------------------------


def test_lead_at_79_percent_of_the_scheduled_duration_is_not_delivered_at_80_it_is() -> None:
    attended = {201: 60.0}
    assert not is_delivered(lesson(60), Evidence(1, lead_minutes=47.4, attended_minutes=attended), DEFAULT)
    assert is_delivered(lesson(60), Evidence(1, lead_minutes=48.0, attended_minutes=attended), DEFAULT)


def test_a_receiving_classroom_at_79_percent_is_not_enough_at_80_it_is() -> None:
    assert not is_delivered(lesson(60), Evidence(1, 60.0, {201: 47.4, 202: 47.9}), DEFAULT)
    assert is_delivered(lesson(60), Evidence(1, 60.0, {201: 48.0, 202: 0.0}), DEFAULT)


def test_a_lesson_nobody_received_is_not_delivered() -> None:
    assert not is_delivered(lesson(60), Evidence(1, 60.0, {}), DEFAULT)


def test_attendance_of_a_classroom_not_entitled_to_the_lesson_does_not_count() -> None:
    assert not is_delivered(lesson(60), Evidence(1, 60.0, {999: 60.0}), DEFAULT)


def test_a_master_lesson_for_a_community_counts_any_attending_classroom() -> None:
    master = lesson(60, kind=Kind.MASTER, receivers=())
    assert is_delivered(master, Evidence(1, 60.0, {999: 50.0}), DEFAULT)


def test_a_lesson_of_no_duration_is_never_delivered() -> None:
    assert scheduled_minutes(lesson(0)) == 0
    assert not is_delivered(lesson(0), Evidence(1, 10.0, {201: 10.0}), DEFAULT)


def test_exactly_at_a_configured_threshold_is_delivered() -> None:
    # 55 % of a 45-minute lesson is exactly 24 min 45 s; 0.55 x 45 in floating point is 24.750000000000004.
    fifty_five = DeliveryThresholds(lead_share=0.55, receiver_share=0.55)
    assert is_delivered(lesson(45), Evidence(1, 24.75, {201: 24.75}), fifty_five)
    assert not is_delivered(lesson(45), Evidence(1, 24.7, {201: 24.75}), fifty_five)
    assert not is_delivered(lesson(45), Evidence(1, 24.75, {201: 24.7}), fifty_five)


SHARES = ["0.5", "0.55", "0.56", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95", "1"]


QUARTERS = st.one_of(st.integers(0, 240 * 4), st.sampled_from([-1, 0, 1]).map(lambda d: ("boundary", d)))


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.sampled_from([40, 45, 50, 90]), st.integers(1, 240)),  # usual lesson lengths, and any
    st.sampled_from(SHARES),
    st.sampled_from(SHARES),
    QUARTERS,
    QUARTERS,
)
def test_delivery_agrees_with_exact_arithmetic_at_every_threshold(
    minutes: int, lead_share: str, receiver_share: str, lead: int | tuple, room: int | tuple
) -> None:
    # Evidence in quarter minutes, often right at or one quarter either side of the exact boundary.
    def minutes_of(drawn: int | tuple, share: str) -> Fraction:
        if isinstance(drawn, tuple):
            return Fraction(math.ceil(Fraction(share) * minutes * 4) + drawn[1], 4)
        return Fraction(drawn, 4)

    lead_minutes, room_minutes = minutes_of(lead, lead_share), minutes_of(room, receiver_share)
    expected = lead_minutes >= Fraction(lead_share) * minutes and room_minutes >= Fraction(receiver_share) * minutes
    thresholds = DeliveryThresholds(lead_share=float(lead_share), receiver_share=float(receiver_share))
    evidence = Evidence(1, float(lead_minutes), {201: float(room_minutes)})
    assert is_delivered(lesson(minutes), evidence, thresholds) == expected


# --- the ledger ----------------------------------------------------------------------------------


def test_a_specialised_lesson_counts_one_and_a_half_hours_for_its_teacher() -> None:
    [entry] = delivery_entries(lesson(kind=Kind.SPECIALISED), lead_school_id=7, factor=1.5)
    assert entry.entry_type == "teacher_workload"
    assert entry.teacher_id == 11
    assert entry.school_id == 7
    assert entry.base_hours == 1.0
    assert entry.factor == 1.5
    assert entry.weighted_hours == 1.5


def test_a_master_lesson_is_weighted_like_a_specialised_one() -> None:
    [entry] = delivery_entries(lesson(kind=Kind.MASTER), lead_school_id=7, factor=2.0)
    assert (entry.entry_type, entry.teacher_id, entry.weighted_hours) == ("teacher_workload", 11, 2.0)


def test_a_famous_school_lesson_credits_the_lead_school_not_the_teachers_weighted_hours() -> None:
    entries = delivery_entries(lesson(kind=Kind.FAMOUS_SCHOOL), lead_school_id=7, factor=1.5)
    assert entries == [EntryDraft("school_credit", None, 7, 1.0, 1.0)]
    assert not any(e.entry_type == "teacher_workload" for e in entries)
    assert entries[0].weighted_hours == 1.0


def test_a_weighted_lesson_with_a_factor_below_1_5_writes_nothing() -> None:
    with pytest.raises(FactorTooLow):
        delivery_entries(lesson(kind=Kind.SPECIALISED), lead_school_id=7, factor=1.49)


def test_a_double_period_counts_twice_the_hours() -> None:
    [entry] = delivery_entries(lesson(kind=Kind.SPECIALISED), lead_school_id=7, factor=1.5, hours=2.0)
    assert entry.weighted_hours == 3.0


def test_a_reversal_cancels_the_weighted_hours_exactly() -> None:
    [entry] = delivery_entries(lesson(kind=Kind.SPECIALISED), lead_school_id=7, factor=1.7)
    reversal = EntryDraft(entry.entry_type, entry.teacher_id, entry.school_id, -entry.base_hours, entry.factor)
    assert entry.weighted_hours + reversal.weighted_hours == 0.0
