"""The semester calendar: teaching days and teaching weeks.

A teaching day is a Monday-to-Friday date inside the semester that is not a holiday, or a weekend
make-up day (调休补课) the district declared. A teaching week
is a calendar week (Monday to Sunday) of the semester with at least one teaching day: a week with a
one-day holiday still counts, a week that is all holiday (the National Day "golden week") does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.model import Semester


def is_teaching_day(semester: Semester, day: date) -> bool:
    if not semester.start <= day <= semester.end or day in semester.holidays:
        return False
    return day.weekday() < 5 or day in semester.makeup_days


def week_monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def teaching_weeks(semester: Semester) -> list[date]:
    """The Mondays of the semester's teaching weeks, in order."""
    weeks: list[date] = []
    monday = week_monday(semester.start)
    while monday <= semester.end:
        if any(is_teaching_day(semester, monday + timedelta(days=i)) for i in range(7)):
            weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


def teaching_weeks_elapsed(semester: Semester, today: date) -> int:
    """Teaching weeks that have begun by `today` (the current week counts once it has begun)."""
    # The first week begins with the semester, not with its Monday, when the semester starts midweek.
    return sum(1 for monday in teaching_weeks(semester) if max(monday, semester.start) <= today)


def current_semester(semesters: Sequence[Semester], today: date) -> Semester | None:
    """The semester around `today`, else the latest one that has begun (between semesters); None before any."""
    around = [s for s in semesters if s.start <= today <= s.end]
    if around:
        return around[0]
    return max((s for s in semesters if s.start <= today), key=lambda s: s.start, default=None)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()
