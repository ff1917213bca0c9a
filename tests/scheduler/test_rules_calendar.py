"""The semester calendar: which days are teaching days and which weeks are teaching weeks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.model import Semester
from scheduler.rules.calendar import (
    is_teaching_day,
    local_date,
    teaching_weeks,
    teaching_weeks_elapsed,
    week_monday,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")

# Autumn semester: Monday 1 September 2025 to Friday 19 December 2025 (16 calendar weeks).
START = date(2025, 9, 1)
END = date(2025, 12, 19)


def days(first: date, count: int) -> frozenset[date]:
    return frozenset(first + timedelta(days=i) for i in range(count))


def semester(start: date = START, end: date = END, holidays: frozenset[date] = frozenset()) -> Semester:
    return Semester(id=1, name="2025 autumn", start=start, end=end, holidays=holidays)


def test_an_ordinary_semester_has_one_teaching_week_per_calendar_week() -> None:
    weeks = teaching_weeks(semester())
    assert len(weeks) == 16
    assert weeks[0] == START
    assert weeks[-1] == date(2025, 12, 15)
    assert all(w.weekday() == 0 for w in weeks)


def test_a_week_with_a_one_day_holiday_is_still_a_teaching_week() -> None:
    mid_autumn = date(2025, 10, 6)  # a Monday
    sem = semester(holidays=frozenset({mid_autumn}))
    assert not is_teaching_day(sem, mid_autumn)
    assert is_teaching_day(sem, mid_autumn + timedelta(days=1))
    assert mid_autumn in teaching_weeks(sem)
    assert len(teaching_weeks(sem)) == 16


def test_a_week_with_four_holidays_and_one_teaching_day_still_counts() -> None:
    sem = semester(holidays=days(date(2025, 9, 29), 4))  # Mon-Thu off, Friday taught
    assert date(2025, 9, 29) in teaching_weeks(sem)


def test_a_week_that_is_all_holiday_is_not_a_teaching_week() -> None:
    golden_week = date(2025, 9, 29)
    sem = semester(holidays=days(golden_week, 5))  # Monday to Friday all holiday
    weeks = teaching_weeks(sem)
    assert golden_week not in weeks
    assert len(weeks) == 15


def test_weekend_holidays_do_not_matter_to_teaching_weeks() -> None:
    sem = semester(holidays=days(date(2025, 10, 4), 2))  # Saturday and Sunday
    assert len(teaching_weeks(sem)) == 16


def test_weekends_are_not_teaching_days() -> None:
    sem = semester()
    assert is_teaching_day(sem, date(2025, 9, 5))  # Friday
    assert not is_teaching_day(sem, date(2025, 9, 6))  # Saturday
    assert not is_teaching_day(sem, date(2025, 9, 7))  # Sunday


def test_the_first_and_last_days_of_the_semester_are_teaching_days_and_the_days_around_are_not() -> None:
    sem = semester()
    assert is_teaching_day(sem, START)
    assert is_teaching_day(sem, END)
    assert not is_teaching_day(sem, START - timedelta(days=3))  # the Friday before
    assert not is_teaching_day(sem, END + timedelta(days=3))  # the Monday after


def test_a_semester_starting_on_a_wednesday_counts_that_week() -> None:
    sem = semester(start=date(2025, 9, 3), end=date(2025, 9, 12))
    assert teaching_weeks(sem) == [date(2025, 9, 1), date(2025, 9, 8)]


def test_a_semester_ending_on_a_saturday_does_not_gain_a_week() -> None:
    sem = semester(end=date(2025, 12, 20))
    assert len(teaching_weeks(sem)) == 16


def test_a_semester_starting_on_a_saturday_begins_with_the_next_week() -> None:
    sem = semester(start=date(2025, 8, 30), end=date(2025, 9, 12))
    assert teaching_weeks(sem) == [date(2025, 9, 1), date(2025, 9, 8)]


def test_weeks_elapsed_counts_the_current_week_once_it_has_begun() -> None:
    sem = semester()
    assert teaching_weeks_elapsed(sem, START - timedelta(days=1)) == 0
    assert teaching_weeks_elapsed(sem, START) == 1
    assert teaching_weeks_elapsed(sem, date(2025, 9, 7)) == 1  # the Sunday of the first week
    assert teaching_weeks_elapsed(sem, date(2025, 9, 8)) == 2
    assert teaching_weeks_elapsed(sem, date(2026, 3, 1)) == 16


def test_weeks_elapsed_skips_an_all_holiday_week() -> None:
    sem = semester(holidays=days(date(2025, 9, 29), 5))
    assert teaching_weeks_elapsed(sem, date(2025, 9, 28)) == 4
    assert teaching_weeks_elapsed(sem, date(2025, 10, 3)) == 4
    assert teaching_weeks_elapsed(sem, date(2025, 10, 6)) == 5


def test_no_week_has_elapsed_before_a_midweek_semester_start() -> None:
    sem = semester(start=date(2025, 9, 3))  # a Wednesday
    assert teaching_weeks_elapsed(sem, date(2025, 9, 1)) == 0
    assert teaching_weeks_elapsed(sem, date(2025, 9, 2)) == 0
    assert teaching_weeks_elapsed(sem, date(2025, 9, 3)) == 1


def test_week_monday_of_every_day_of_a_week() -> None:
    for i in range(7):
        assert week_monday(date(2025, 9, 1) + timedelta(days=i)) == date(2025, 9, 1)
    assert week_monday(date(2025, 9, 8)) == date(2025, 9, 8)


def test_local_date_is_the_districts_date_not_utcs() -> None:
    # 23:30 UTC on Sunday is 07:30 on Monday in Shanghai.
    moment = datetime(2025, 9, 7, 23, 30, tzinfo=UTC)
    assert local_date(moment, SHANGHAI) == date(2025, 9, 8)
    # 15:59 UTC is still 23:59 the same day; 16:00 UTC is the next local day.
    assert local_date(datetime(2025, 9, 8, 15, 59, tzinfo=UTC), SHANGHAI) == date(2025, 9, 8)
    assert local_date(datetime(2025, 9, 8, 16, 0, tzinfo=UTC), SHANGHAI) == date(2025, 9, 9)
