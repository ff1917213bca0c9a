"""Lesson hours (课时): round(duration / standard), halves up, at least 1, or as the timetable says."""

from __future__ import annotations

import pytest

from scheduler.rules.hours import lesson_hours, validate_standard


@pytest.mark.parametrize(
    ("minutes", "standard", "hours"),
    [
        (40, 40, 1),  # a standard lesson
        (45, 40, 1),  # a little longer is still one
        (59, 40, 1),  # 1.475
        (60, 40, 2),  # 1.5: halves round up (Python's round() would say 2 here but 2 for 2.5 too)
        (80, 40, 2),  # 连堂: a double period
        (90, 45, 2),
        (100, 40, 3),  # 2.5 rounds up to 3, not down to the even 2
        (20, 40, 1),  # never less than one
        (1, 45, 1),
        (240, 40, 6),
    ],
)
def test_a_lesson_counts_its_duration_over_the_standard_rounded(minutes: float, standard: int, hours: int) -> None:
    assert lesson_hours(minutes, standard) == hours


def test_a_given_number_wins_within_bounds() -> None:
    assert lesson_hours(40, 40, given=3) == 3
    assert lesson_hours(200, 40, given=1) == 1
    for bad in (0, 13):
        with pytest.raises(ValueError, match="1 to 12"):
            lesson_hours(40, 40, given=bad)


@pytest.mark.parametrize("value", [9, 241, 40.5, "forty", True, None])
def test_a_standard_outside_10_to_240_whole_minutes_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        validate_standard(value)


@pytest.mark.parametrize(("value", "minutes"), [(10, 10), (240, 240), (45.0, 45), ("40", 40)])
def test_standard_boundaries_are_accepted(value: object, minutes: int) -> None:
    assert validate_standard(value) == minutes
