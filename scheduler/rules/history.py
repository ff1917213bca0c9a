"""What the system knew at a past moment: a lesson's status, and the workload factor in force on a day.

A report "as of" a date is computed from the same records as today's, cut at the end of that date:
a lesson counts only if it was in the timetable by then, it is settled only if its settlement came by
then, and each correction applies from the moment it was made. Nothing is recomputed from evidence,
so a number can change only through a record with a time stamp (settlement, correction, ledger row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

UNSETTLED = "remaining"  # in the timetable, not yet settled (scheduled, open, live, awaiting evidence)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A correction (or cancellation) of a lesson's status, at epoch second `at`."""

    at: int
    from_status: str
    to_status: str


def status_as_of(
    created_at: int,
    settled_at: int | None,
    current: str,
    changes: Sequence[StatusChange],
    cutoff: int,
) -> str | None:
    """The status a lesson had at `cutoff` (epoch seconds): None if it was not yet in the timetable,
    `remaining` if not yet settled, else `delivered`, `missed` or `cancelled`.

    `changes` are the lesson's corrections in the order they were made; the status a settlement gave
    is the one the first correction started from (or the current status if there was none).
    """
    if created_at > cutoff:
        return None
    done = [c for c in changes if c.at <= cutoff]
    if done:
        to = done[-1].to_status
        return UNSETTLED if to in ("scheduled", "open", "live", "awaiting_evidence") else to
    if settled_at is not None and settled_at <= cutoff:
        settled = changes[0].from_status if changes else current
        return settled if settled in ("delivered", "missed", "cancelled") else UNSETTLED
    return UNSETTLED


@dataclass(frozen=True, slots=True)
class FactorPeriod:
    """A county's workload factor from `since` (a local date) until the next period begins."""

    since: date
    factor: float


def factor_on(periods: Sequence[FactorPeriod], day: date, default: float) -> float:
    """The factor in force on `day`: that of the latest period begun by then, else `default`."""
    best: FactorPeriod | None = None
    for p in periods:
        if p.since <= day and (best is None or p.since >= best.since):
            best = p
    return best.factor if best is not None else default
