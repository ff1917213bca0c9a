"""Lesson hours (课时): what one timetabled lesson counts for.

A county sets its standard lesson length (default 40 minutes). A lesson counts as its duration divided
by that standard, rounded to the nearest whole 课时 with halves rounded up, and never less than 1: a
40-minute lesson at a 40-minute standard is 1 课时, a double period (连堂) of 80 or 90 minutes is 2, a
60-minute lesson is 2 (1.5 rounds up), a 20-minute one still 1. A timetable row may give its 课时
explicitly instead; weighting and quotas then use that number.
"""

from __future__ import annotations

import math

DEFAULT_STANDARD_MINUTES = 40
MIN_STANDARD_MINUTES = 10
MAX_STANDARD_MINUTES = 240
MAX_GIVEN_HOURS = 12


def validate_standard(minutes: object) -> int:
    """A county's standard lesson length in whole minutes, within 10 to 240."""
    if isinstance(minutes, bool):
        raise ValueError("the standard lesson length is a number of minutes")
    try:
        value = float(minutes)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"the standard lesson length {minutes!r} is not a number of minutes") from None
    if not value.is_integer() or not MIN_STANDARD_MINUTES <= value <= MAX_STANDARD_MINUTES:
        raise ValueError(
            f"the standard lesson length must be whole minutes from {MIN_STANDARD_MINUTES} to "
            f"{MAX_STANDARD_MINUTES}, not {minutes}"
        )
    return int(value)


def lesson_hours(duration_minutes: float, standard_minutes: int, given: int | None = None) -> int:
    """The 课时 a lesson counts for: `given` when the timetable says so, else round(duration / standard)."""
    if given is not None:
        if not 1 <= given <= MAX_GIVEN_HOURS:
            raise ValueError(f"课时 must be a whole number from 1 to {MAX_GIVEN_HOURS}, not {given}")
        return given
    if standard_minutes <= 0:
        raise ValueError("the standard lesson length must be positive")
    # floor(x + 0.5), not round(): Python's round() sends 2.5 to 2 (banker's rounding)
    return max(1, math.floor(duration_minutes / standard_minutes + 0.5))
