"""Quotas: backbone teachers' online lessons per semester, and schools' average per teaching week.

Progress is judged on delivered lessons only. The forecast discounts the lessons still scheduled by
the share of settled lessons that were actually delivered so far: a teacher who missed half their
lessons is not trusted to deliver all the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from scheduler.model import Level

DEFAULT_LEVEL_MINIMUMS: Mapping[str, int] = {"region": 15, "city": 10, "county": 5, "none": 0}
DEFAULT_WEEKLY_RATE = 5.0  # 平均开课率不低于5课时/周


class QuotaStatus(StrEnum):
    MET = "met"  # the minimum is reached with delivered lessons
    ON_TRACK = "on_track"  # the forecast reaches it
    AT_RISK = "at_risk"  # the forecast falls short
    NO_QUOTA = "no_quota"  # no minimum applies


@dataclass(frozen=True, slots=True)
class Progress:
    delivered: int
    missed: int
    remaining: int  # still scheduled (or open/live) in the semester

    @property
    def delivery_rate(self) -> float:
        settled = self.delivered + self.missed
        return self.delivered / settled if settled else 1.0

    @property
    def forecast(self) -> float:
        return self.delivered + self.remaining * self.delivery_rate


def teacher_status(level: Level | str, progress: Progress, minimums: Mapping[str, int]) -> tuple[int, QuotaStatus]:
    minimum = int(minimums.get(Level(level).value, 0))
    if minimum <= 0:
        return 0, QuotaStatus.NO_QUOTA
    if progress.delivered >= minimum:
        return minimum, QuotaStatus.MET
    if progress.forecast >= minimum:
        return minimum, QuotaStatus.ON_TRACK
    return minimum, QuotaStatus.AT_RISK


@dataclass(frozen=True, slots=True)
class SchoolRate:
    average_per_week: float  # delivered / teaching weeks elapsed
    forecast_per_week: float  # forecast / all teaching weeks
    status: QuotaStatus


def school_rate(
    progress: Progress, weeks_elapsed: int, weeks_total: int, minimum: float = DEFAULT_WEEKLY_RATE
) -> SchoolRate:
    average = progress.delivered / weeks_elapsed if weeks_elapsed else 0.0
    forecast = progress.forecast / weeks_total if weeks_total else 0.0
    if minimum <= 0:
        status = QuotaStatus.NO_QUOTA
    elif weeks_total and progress.delivered / weeks_total >= minimum:
        status = QuotaStatus.MET
    elif forecast >= minimum:
        status = QuotaStatus.ON_TRACK
    else:
        status = QuotaStatus.AT_RISK
    return SchoolRate(round(average, 3), round(forecast, 3), status)
