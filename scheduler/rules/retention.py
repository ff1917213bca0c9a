"""How long recordings are kept and how much disk a county's recordings may use: pure rules.

A recording is kept `retention_days` after it was made (its county's own setting, else `[recording]
retention_days`; 0: kept until someone deletes it), then the retention job deletes its files and the
catalogue says `deleted`, audited as the system. A recording that a replay is still scheduled from is
kept until that replay has aired. A county's recordings may use `quota_gb` of disk (its own setting, else
`[recording] quota_gb`; 0: no quota): above `quota_warn_share` of it, the technicians are alerted before
the disk fills; the data folder's own disk-full alert still applies to everyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Kept:
    """A recording with files on disk, as the retention rules see it."""

    recording_id: int
    county_id: int | None  # of its lesson's lead classroom
    made_at: float  # epoch seconds: when it finished (else started)
    size_bytes: int
    replay_pending: bool = False  # a replay of it is scheduled and has not aired yet


@dataclass(frozen=True, slots=True)
class CountyPolicy:
    retention_days: int | None = None  # None: the installation's default
    quota_mb: int | None = None


def retention_of(county_id: int | None, policies: Mapping[int, CountyPolicy], default_days: int) -> int:
    policy = policies.get(county_id) if county_id is not None else None
    if policy is not None and policy.retention_days is not None:
        return policy.retention_days
    return default_days


def quota_bytes_of(county_id: int | None, policies: Mapping[int, CountyPolicy], default_gb: float) -> int:
    """The county's quota in bytes (0: none)."""
    policy = policies.get(county_id) if county_id is not None else None
    if policy is not None and policy.quota_mb is not None:
        return policy.quota_mb * 1024 * 1024
    return int(default_gb * 1024**3)


def expired(kept: Iterable[Kept], policies: Mapping[int, CountyPolicy], default_days: int, now: float) -> list[int]:
    """The recordings whose retention period is over (and no replay still waits for them), oldest first."""
    out = []
    for k in sorted(kept, key=lambda k: (k.made_at, k.recording_id)):
        days = retention_of(k.county_id, policies, default_days)
        if days > 0 and not k.replay_pending and now - k.made_at >= days * DAY_S:
            out.append(k.recording_id)
    return out


class QuotaLevel(StrEnum):
    OK = "ok"
    NEAR = "near"  # above the warning share
    OVER = "over"  # at or above the quota


@dataclass(frozen=True, slots=True)
class CountyUsage:
    county_id: int
    used_bytes: int
    quota_bytes: int  # 0: none
    level: QuotaLevel


def usage_by_county(
    kept: Iterable[Kept], policies: Mapping[int, CountyPolicy], default_gb: float, warn_share: float
) -> list[CountyUsage]:
    """Each county's recordings' disk use against its quota (counties without a quota are left out)."""
    used: dict[int, int] = {}
    for k in kept:
        if k.county_id is not None:
            used[k.county_id] = used.get(k.county_id, 0) + max(0, k.size_bytes)
    out = []
    for county in sorted(set(used) | {c for c, p in policies.items() if p.quota_mb is not None}):
        quota = quota_bytes_of(county, policies, default_gb)
        if quota <= 0:
            continue
        n = used.get(county, 0)
        level = QuotaLevel.OVER if n >= quota else QuotaLevel.NEAR if n >= warn_share * quota else QuotaLevel.OK
        out.append(CountyUsage(county, n, quota, level))
    return out
