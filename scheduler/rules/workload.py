"""Workload weighting, delivery from evidence, and the ledger entries a settled lesson makes.

A delivered online lesson counts for its lesson hours (课时, see `hours.py`: 1 for a standard-length
lesson); the lead teacher's `specialised` and `master` lessons count at the factor the lesson's county
had in force on the lesson's date (default 1.5, never below). `famous_school` lessons credit the lead
school instead. A receiving school is credited with a delivered lesson where one of its classrooms
attended; settlement records which classrooms did, and only a correction changes that afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.model import Evidence, Kind, Lesson

MIN_FACTOR = 1.5
WEIGHTED_KINDS = frozenset({Kind.SPECIALISED, Kind.MASTER})


class FactorTooLow(ValueError):
    pass


def validate_factor(factor: float) -> float:
    """The policy floor: one online lesson hour counts as at least 1.5 ordinary ones."""
    try:
        value = float(factor)
    except (TypeError, ValueError) as exc:
        raise FactorTooLow(f"workload factor {factor!r} is not a number") from exc
    if math.isinf(value):  # would make every weighted hour infinite in the ledger and the reports
        raise FactorTooLow(f"workload factor {factor!r} is not a finite number")
    if not value >= MIN_FACTOR:  # also refuses NaN
        raise FactorTooLow(f"workload factor {value} is below the policy minimum of {MIN_FACTOR} (1:1.5)")
    return value


@dataclass(frozen=True, slots=True)
class DeliveryThresholds:
    lead_share: float = 0.8  # the lead broadcast at least this share of the scheduled duration
    receiver_share: float = 0.8  # and at least one receiving classroom attended this share


def scheduled_minutes(lesson: Lesson) -> float:
    return (lesson.end - lesson.start).total_seconds() / 60.0


def is_delivered(lesson: Lesson, evidence: Evidence, thresholds: DeliveryThresholds) -> bool:
    minutes = scheduled_minutes(lesson)
    # Compare shares, not products: share x minutes can round above the exact boundary (0.55 x 45 is
    # 24.750000000000004), refusing a lesson held for exactly the required time.
    if minutes <= 0 or evidence.lead_minutes / minutes < thresholds.lead_share:
        return False
    entitled = set(lesson.receiving_classroom_ids)
    attended = [m for room, m in evidence.attended_minutes.items() if not entitled or room in entitled]
    if lesson.community_id is not None:  # a master lesson's community members count as receiving ends
        attended.extend(evidence.attended_teachers.values())
    return any(m / minutes >= thresholds.receiver_share for m in attended)


def attending_classrooms(lesson: Lesson, evidence: Evidence, thresholds: DeliveryThresholds) -> list[int]:
    """The lesson's receiving classrooms that attended at least the receiver share of its time."""
    minutes = scheduled_minutes(lesson)
    if minutes <= 0:
        return []
    return sorted(
        room
        for room, m in evidence.attended_minutes.items()
        if room in lesson.receiving_classroom_ids and m / minutes >= thresholds.receiver_share
    )


@dataclass(frozen=True, slots=True)
class EntryDraft:
    entry_type: str  # "teacher_workload" | "school_credit"
    teacher_id: int | None
    school_id: int | None
    base_hours: float
    factor: float

    @property
    def weighted_hours(self) -> float:
        return round(self.base_hours * self.factor, 4)


def delivery_entries(lesson: Lesson, lead_school_id: int, factor: float, hours: float = 1.0) -> list[EntryDraft]:
    """What the ledger gains when a lesson is delivered (a reversal uses the same rows negated). A replay
    (录播) credits the recorded lesson's lead only when its county's policy said so when it was scheduled;
    then at the same factor as a live lesson (never below 1.5)."""
    if lesson.replay_of is not None and not lesson.credits_lead:
        return []
    if lesson.kind in WEIGHTED_KINDS:
        return [EntryDraft("teacher_workload", lesson.lead_teacher_id, lead_school_id, hours, validate_factor(factor))]
    return [EntryDraft("school_credit", None, lead_school_id, hours, 1.0)]


def factor_for(county_factors: Mapping[int, float], county_id: int, default: float = MIN_FACTOR) -> float:
    return validate_factor(county_factors.get(county_id, default))
