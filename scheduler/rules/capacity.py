"""Capacity: how many receiving ends a lesson may have, and what a time slot asks of the network.

The receiving-end maximum per kind is a rule (a lesson over it is refused); media-node capacity and a
receiving school's bandwidth give warnings, because a district may knowingly run over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from zoneinfo import ZoneInfo

from scheduler.model import Kind, Lesson, LessonDraft, LessonStatus, Problem


@dataclass(frozen=True, slots=True)
class CapacityLimits:
    max_receivers: Mapping[str, int] = field(
        default_factory=lambda: {"specialised": 6, "master": 60, "famous_school": 100}
    )
    media_capacity_streams: int = 600  # subscriber streams all media nodes carry at once
    stream_mbps: float = 2.5  # one lesson's downstream to one receiving classroom (video+audio+screen)
    bandwidth_share: float = 0.5  # part of a school's bandwidth that live lessons may use


def receiver_problems(draft: LessonDraft | Lesson, limits: CapacityLimits, community_size: int = 0) -> list[Problem]:
    count = len(draft.receiving_classroom_ids) + community_size
    cap = limits.max_receivers.get(Kind(draft.kind).value, 0)
    if count > cap:
        return [
            Problem(
                "too_many_receivers",
                f"{count} receiving ends exceed the maximum of {cap} for a {Kind(draft.kind).value} lesson",
                message_zh=f"接收端 {count} 个，超过该类课堂的上限 {cap} 个",
            )
        ]
    return []


def streams_of(lesson: Lesson | LessonDraft, community_size: int = 0) -> int:
    """Subscriber streams a lesson needs on the media nodes: receivers, plus the lead's talk-back view."""
    return len(lesson.receiving_classroom_ids) + community_size + 1


def slot_warnings(
    lessons: Sequence[Lesson | LessonDraft],
    *,
    school_of_classroom: Mapping[int, int],
    school_bandwidth: Mapping[int, float],
    school_names: Mapping[int, str],
    limits: CapacityLimits,
    community_sizes: Mapping[int, int] | None = None,
    tz: ZoneInfo | None = None,
) -> list[Problem]:
    """Warnings for the moments when concurrent lessons exceed media capacity or a school's bandwidth.

    Sweeps the start/end events once; each distinct overload is reported once, at its peak. Moments are
    written in `tz` (the district's zone) when given, else in UTC.
    """

    def when(moment: datetime) -> str:
        return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}" if tz is not None else f"{moment:%Y-%m-%d %H:%M} UTC"

    sizes = community_sizes or {}
    live = [x for x in lessons if getattr(x, "status", LessonStatus.SCHEDULED) != LessonStatus.CANCELLED]
    events: list[tuple[datetime, int, int]] = []
    for i, x in enumerate(live):
        events.append((x.start, 1, i))
        events.append((x.end, -1, i))
    events.sort(key=lambda e: e[0])
    streams = 0
    per_school: dict[int, int] = {}
    # An overload is a stretch of time above the limit. Its warning is written when it begins and
    # rewritten while it grows, so it ends up naming the peak; the list stays in order of beginnings.
    media_overload: tuple[int, int] | None = None  # (index in problems, peak streams)
    school_overload: dict[int, tuple[int, int]] = {}  # school -> (index in problems, peak classrooms)
    problems: list[Problem] = []
    # All lessons starting or ending at one instant are applied together before judging it: judging
    # half-applied instants misses peaks and splits one continuing overload in two.
    for moment, group in groupby(events, key=lambda e: e[0]):
        touched: set[int] = set()
        for _, delta, i in group:
            x = live[i]
            cs = sizes.get(x.community_id, 0) if x.community_id is not None else 0
            streams += delta * streams_of(x, cs)
            for c in x.receiving_classroom_ids:
                if c in school_of_classroom:
                    school = school_of_classroom[c]
                    per_school[school] = per_school.get(school, 0) + delta
                    touched.add(school)
        if streams <= limits.media_capacity_streams:
            media_overload = None
        elif media_overload is None or streams > media_overload[1]:
            warning = Problem(
                "over_media_capacity",
                f"at {when(moment)} {streams} concurrent streams exceed the media "
                f"capacity of {limits.media_capacity_streams}",
                severity="warning",
                message_zh=f"{when(moment)} 同时有 {streams} 路流，超过媒体容量 {limits.media_capacity_streams}",
            )
            index = _place(problems, warning, media_overload)
            media_overload = (index, streams)
        for school in sorted(touched):
            count = per_school[school]
            need = count * limits.stream_mbps
            budget = school_bandwidth.get(school, 0.0) * limits.bandwidth_share
            current = school_overload.get(school)
            if need <= budget:
                school_overload.pop(school, None)
            elif current is None or count > current[1]:
                warning = Problem(
                    "over_bandwidth",
                    f"at {when(moment)} {school_names.get(school, school)} receives "
                    f"{count} concurrent lessons ({need:.0f} Mbit/s) over its "
                    f"{budget:.0f} Mbit/s for live lessons",
                    severity="warning",
                    message_zh=f"{when(moment)} {school_names.get(school, school)}同时接收 {count} 节课"
                    f"（{need:.0f} Mbit/s），超过其可用于直播的 {budget:.0f} Mbit/s",
                )
                school_overload[school] = (_place(problems, warning, current), count)
    return problems


def _place(problems: list[Problem], warning: Problem, overload: tuple[int, int] | None) -> int:
    """Append the warning of a new overload, or replace the one of an overload that has grown."""
    if overload is None:
        problems.append(warning)
        return len(problems) - 1
    problems[overload[0]] = warning
    return overload[0]
