"""What the system knew at a moment: a lesson's status, the factor in force on a day."""

from __future__ import annotations

from datetime import date

from scheduler.rules.history import FactorPeriod, StatusChange, factor_on, status_as_of

CREATED, SETTLED, CORRECTED = 100, 200, 300


def test_a_lesson_is_unknown_before_it_was_entered_and_remaining_until_settled() -> None:
    assert status_as_of(CREATED, SETTLED, "delivered", [], CREATED - 1) is None
    assert status_as_of(CREATED, SETTLED, "delivered", [], CREATED) == "remaining"
    assert status_as_of(CREATED, SETTLED, "delivered", [], SETTLED - 1) == "remaining"
    assert status_as_of(CREATED, SETTLED, "delivered", [], SETTLED) == "delivered"
    assert status_as_of(CREATED, None, "awaiting_evidence", [], 10**9) == "remaining"


def test_a_correction_counts_from_the_second_it_was_made() -> None:
    changes = [StatusChange(CORRECTED, "delivered", "missed")]
    assert status_as_of(CREATED, SETTLED, "missed", changes, CORRECTED - 1) == "delivered"
    assert status_as_of(CREATED, SETTLED, "missed", changes, CORRECTED) == "missed"
    twice = [*changes, StatusChange(CORRECTED + 50, "missed", "delivered")]
    assert status_as_of(CREATED, SETTLED, "delivered", twice, CORRECTED + 49) == "missed"
    assert status_as_of(CREATED, SETTLED, "delivered", twice, CORRECTED + 50) == "delivered"


def test_a_late_settlement_and_a_cancellation_are_changes_too() -> None:
    settled = [StatusChange(SETTLED, "awaiting_evidence", "delivered")]
    assert status_as_of(CREATED, SETTLED, "delivered", settled, SETTLED - 1) == "remaining"
    assert status_as_of(CREATED, SETTLED, "delivered", settled, SETTLED) == "delivered"
    cancelled = [StatusChange(SETTLED, "scheduled", "cancelled")]
    assert status_as_of(CREATED, None, "cancelled", cancelled, SETTLED - 1) == "remaining"
    assert status_as_of(CREATED, None, "cancelled", cancelled, SETTLED) == "cancelled"


def test_the_factor_in_force_is_the_latest_begun_by_the_day() -> None:
    periods = [FactorPeriod(date(1, 1, 1), 1.5), FactorPeriod(date(2026, 11, 2), 2.0)]
    assert factor_on(periods, date(2026, 11, 1), 1.5) == 1.5
    assert factor_on(periods, date(2026, 11, 2), 1.5) == 2.0  # from its first day
    assert factor_on(list(reversed(periods)), date(2027, 1, 1), 1.5) == 2.0  # order of the rows does not matter
    assert factor_on([], date(2026, 9, 1), 1.7) == 1.7
