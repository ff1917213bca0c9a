"""Settings of the school domain, filled from the `[scheduler]` section of the TOML configuration."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from scheduler.rules.capacity import CapacityLimits
from scheduler.rules.hours import validate_standard
from scheduler.rules.quotas import DEFAULT_LEVEL_MINIMUMS
from scheduler.rules.workload import DeliveryThresholds, validate_factor


@dataclass(frozen=True)
class SchedulerConfig:
    timezone: str = "Asia/Shanghai"
    window_open_before_min: int = 10  # a lesson's window opens this long before its start
    window_close_grace_min: int = 15  # and closes (and is settled) this long after its end
    lead_share: float = 0.8
    receiver_share: float = 0.8
    default_workload_factor: float = 1.5
    standard_lesson_minutes: int = 40  # one 课时 for new counties; each county sets its own
    weekly_rate_min: float = 5.0
    min_lessons_region: int = DEFAULT_LEVEL_MINIMUMS["region"]
    min_lessons_city: int = DEFAULT_LEVEL_MINIMUMS["city"]
    min_lessons_county: int = DEFAULT_LEVEL_MINIMUMS["county"]
    max_receivers_specialised: int = 6
    max_receivers_master: int = 60
    max_receivers_famous_school: int = 100
    media_capacity_streams: int = 600
    stream_mbps: float = 2.5
    bandwidth_share: float = 0.5
    job_horizon_hours: int = 24  # timed jobs are planned this far ahead, re-planned every minute and on change
    weekly_report_day: str = "mon"
    weekly_report_time: str = "06:00"

    def __post_init__(self) -> None:
        validate_factor(self.default_workload_factor)
        validate_standard(self.standard_lesson_minutes)
        ZoneInfo(self.timezone)
        if not 0 < self.lead_share <= 1 or not 0 < self.receiver_share <= 1:
            raise ValueError("lead_share and receiver_share must be within (0, 1]")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def thresholds(self) -> DeliveryThresholds:
        return DeliveryThresholds(self.lead_share, self.receiver_share)

    @property
    def level_minimums(self) -> dict[str, int]:
        return {
            "region": self.min_lessons_region,
            "city": self.min_lessons_city,
            "county": self.min_lessons_county,
            "none": 0,
        }

    @property
    def capacity(self) -> CapacityLimits:
        return CapacityLimits(
            max_receivers={
                "specialised": self.max_receivers_specialised,
                "master": self.max_receivers_master,
                "famous_school": self.max_receivers_famous_school,
            },
            media_capacity_streams=self.media_capacity_streams,
            stream_mbps=self.stream_mbps,
            bandwidth_share=self.bandwidth_share,
        )
