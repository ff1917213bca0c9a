"""Quotas: backbone teachers' online lessons per semester, schools' average lessons per teaching week."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Level
from scheduler.rules.quotas import (
    DEFAULT_LEVEL_MINIMUMS,
    DEFAULT_WEEKLY_RATE,
    Progress,
    QuotaStatus,
    school_rate,
    teacher_status,
)

MET, ON_TRACK, AT_RISK, NO_QUOTA = (
    QuotaStatus.MET,
    QuotaStatus.ON_TRACK,
    QuotaStatus.AT_RISK,
    QuotaStatus.NO_QUOTA,
)


def status(level: Level, delivered: int, missed: int = 0, remaining: int = 0) -> QuotaStatus:
    return teacher_status(level, Progress(delivered, missed, remaining), DEFAULT_LEVEL_MINIMUMS)[1]


# --- backbone teachers ---------------------------------------------------------------------------


def test_the_policy_minimums_are_15_10_and_5_lessons() -> None:
    assert teacher_status(Level.REGION, Progress(0, 0, 0), DEFAULT_LEVEL_MINIMUMS)[0] == 15
    assert teacher_status(Level.CITY, Progress(0, 0, 0), DEFAULT_LEVEL_MINIMUMS)[0] == 10
    assert teacher_status(Level.COUNTY, Progress(0, 0, 0), DEFAULT_LEVEL_MINIMUMS)[0] == 5


def test_a_region_level_teacher_at_14_of_15_is_at_risk_and_at_15_has_met_the_quota() -> None:
    assert status(Level.REGION, 14) == AT_RISK
    assert status(Level.REGION, 15) == MET
    assert status(Level.REGION, 16) == MET


def test_a_city_level_teacher_at_9_of_10_is_at_risk_and_at_10_has_met_the_quota() -> None:
    assert status(Level.CITY, 9) == AT_RISK
    assert status(Level.CITY, 10) == MET


def test_a_county_level_backbone_teacher_at_4_of_5_with_none_left_is_at_risk() -> None:
    assert status(Level.COUNTY, 4) == AT_RISK
    assert status(Level.COUNTY, 5) == MET


def test_a_teacher_with_enough_lessons_still_scheduled_is_on_track() -> None:
    assert status(Level.COUNTY, 3, remaining=2) == ON_TRACK
    assert status(Level.COUNTY, 3, remaining=1) == AT_RISK
    assert status(Level.REGION, 0, remaining=15) == ON_TRACK
    assert status(Level.REGION, 0, remaining=14) == AT_RISK


def test_a_met_quota_stays_met_whatever_is_missed_later() -> None:
    assert status(Level.REGION, 15, missed=20, remaining=0) == MET


def test_missed_lessons_discount_the_forecast_of_the_scheduled_ones() -> None:
    # Half the settled lessons were missed, so only half the remaining ones are expected.
    assert status(Level.REGION, 10, missed=10, remaining=10) == ON_TRACK  # 10 + 10 x 1/2 = 15
    assert status(Level.REGION, 10, missed=10, remaining=9) == AT_RISK  # 14.5
    assert Progress(10, 10, 9).forecast == 14.5


def test_a_teacher_who_missed_every_lesson_so_far_is_at_risk_however_many_are_scheduled() -> None:
    assert status(Level.COUNTY, 0, missed=3, remaining=40) == AT_RISK


def test_before_any_lesson_is_settled_every_scheduled_lesson_is_expected() -> None:
    assert Progress(0, 0, 12).delivery_rate == 1.0
    assert Progress(0, 0, 12).forecast == 12


def test_a_teacher_without_a_level_has_no_minimum() -> None:
    assert teacher_status(Level.NONE, Progress(0, 0, 0), DEFAULT_LEVEL_MINIMUMS) == (0, NO_QUOTA)
    assert teacher_status(Level.NONE, Progress(30, 1, 2), DEFAULT_LEVEL_MINIMUMS) == (0, NO_QUOTA)


def test_levels_may_be_given_as_their_stored_names() -> None:
    assert teacher_status("region", Progress(14, 0, 0), DEFAULT_LEVEL_MINIMUMS) == (15, AT_RISK)


def test_an_unknown_level_is_an_error_not_a_silent_exemption() -> None:
    with pytest.raises(ValueError):
        teacher_status("provincial", Progress(0, 0, 0), DEFAULT_LEVEL_MINIMUMS)


def test_a_county_may_configure_higher_minimums() -> None:
    minimums = {"region": 20, "city": 10, "county": 5, "none": 0}
    assert teacher_status(Level.REGION, Progress(19, 0, 0), minimums) == (20, AT_RISK)
    assert teacher_status(Level.REGION, Progress(20, 0, 0), minimums) == (20, MET)


def exact_status(minimum: int, delivered: int, missed: int, remaining: int) -> QuotaStatus:
    if minimum <= 0:
        return NO_QUOTA
    if delivered >= minimum:
        return MET
    settled = delivered + missed
    rate = Fraction(delivered, settled) if settled else Fraction(1)
    return ON_TRACK if delivered + remaining * rate >= minimum else AT_RISK


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(list(Level)),
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 40),
)
def test_teacher_status_agrees_with_exact_arithmetic(level: Level, delivered: int, missed: int, remaining: int) -> None:
    minimum = DEFAULT_LEVEL_MINIMUMS[level.value]
    assert teacher_status(level, Progress(delivered, missed, remaining), DEFAULT_LEVEL_MINIMUMS) == (
        minimum,
        exact_status(minimum, delivered, missed, remaining),
    )


# --- schools' average per teaching week ----------------------------------------------------------


def test_the_policy_rate_is_5_lessons_per_teaching_week() -> None:
    assert DEFAULT_WEEKLY_RATE == 5.0


def test_a_school_with_5_lessons_a_week_over_the_semester_has_met_the_rate() -> None:
    rate = school_rate(Progress(90, 0, 0), weeks_elapsed=18, weeks_total=18)
    assert rate.status == MET
    assert rate.average_per_week == 5.0
    assert rate.forecast_per_week == 5.0


def test_a_school_one_lesson_short_with_none_left_is_at_risk() -> None:
    rate = school_rate(Progress(89, 0, 0), weeks_elapsed=18, weeks_total=18)
    assert rate.status == AT_RISK
    assert rate.average_per_week == pytest.approx(4.944, abs=1e-3)


def test_a_school_whose_scheduled_lessons_reach_the_rate_is_on_track() -> None:
    assert school_rate(Progress(45, 0, 45), weeks_elapsed=9, weeks_total=18).status == ON_TRACK
    assert school_rate(Progress(45, 0, 44), weeks_elapsed=9, weeks_total=18).status == AT_RISK


def test_the_average_so_far_is_over_the_weeks_elapsed_and_the_forecast_over_all_weeks() -> None:
    rate = school_rate(Progress(30, 0, 40), weeks_elapsed=6, weeks_total=16)
    assert rate.average_per_week == 5.0
    assert rate.forecast_per_week == pytest.approx(70 / 16)
    assert rate.status == AT_RISK


def test_missed_lessons_discount_a_schools_forecast_too() -> None:
    # 40 delivered, 40 missed, 100 scheduled: 40 + 50 = 90 over 18 weeks, exactly 5.
    assert school_rate(Progress(40, 40, 100), weeks_elapsed=10, weeks_total=18).status == ON_TRACK
    assert school_rate(Progress(40, 40, 99), weeks_elapsed=10, weeks_total=18).status == AT_RISK


def test_before_the_first_teaching_week_the_average_is_zero_not_an_error() -> None:
    rate = school_rate(Progress(0, 0, 90), weeks_elapsed=0, weeks_total=18)
    assert rate.average_per_week == 0.0
    assert rate.status == ON_TRACK


def test_a_county_may_configure_the_weekly_rate() -> None:
    assert school_rate(Progress(54, 0, 0), 18, 18, minimum=3.0).status == MET
    assert school_rate(Progress(53, 0, 0), 18, 18, minimum=3.0).status == AT_RISK
    assert school_rate(Progress(0, 0, 0), 18, 18, minimum=0.0).status == NO_QUOTA


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 120), st.integers(0, 60), st.integers(0, 120), st.integers(1, 20))
def test_school_rate_agrees_with_exact_arithmetic(delivered: int, missed: int, remaining: int, weeks: int) -> None:
    settled = delivered + missed
    rate = Fraction(delivered, settled) if settled else Fraction(1)
    forecast = (delivered + remaining * rate) / weeks
    if Fraction(delivered, weeks) >= 5:
        expected = MET
    elif forecast >= 5:
        expected = ON_TRACK
    else:
        expected = AT_RISK
    result = school_rate(Progress(delivered, missed, remaining), weeks_elapsed=weeks, weeks_total=weeks)
    assert result.status == expected
    assert result.forecast_per_week == pytest.approx(float(forecast), abs=1e-3)
