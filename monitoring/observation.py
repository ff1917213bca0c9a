"""What signaling hands monitoring each stats tick: plain, immutable facts about one live lesson.

The hub builds a `LessonSample` per live lesson from the media plane's room snapshot and its own
sessions (link state, the page's last `stats` report); monitoring never reaches back into the hub.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ParticipantSample:
    participant_id: str
    role: str  # lead | receiver | observer
    name: str
    classroom_id: int | None
    link: str  # signaling.liveness.LinkState value: ok, unknown, lost (absent/left are not sampled)
    media: Mapping[str, Any]  # this participant in the room snapshot ({} when not in the media plane)
    client: Mapping[str, float]  # the page's last accepted `stats` report, cleaned ({} when none or stale)


@dataclass(frozen=True, slots=True)
class LessonSample:
    lesson_id: int
    kind: str  # the lesson kind (scheduler.model.LessonKind value)
    subject: str
    lead_name: str
    county_ids: frozenset[int]
    region_ids: frozenset[int]
    starts_at: float  # wall-clock seconds
    ends_at: float
    wall: float  # when the sample was taken (wall clock)
    mono: float  # the same moment on the monotonic clock
    lead_state: str  # on_air | interrupted | off_air (signaling.layout.LessonPicture.lead_state)
    lead_expected: frozenset[str]  # lead tracks that should be sending now (started or declared)
    lead_live: frozenset[str]  # lead tracks whose packets flow now
    talkback: str | None
    receivers: Mapping[str, str]  # every receiving classroom of the lesson: participant id -> name
    absent: Mapping[str, str]  # receiving classrooms not connected: participant id -> absent | lost | left
    participants: tuple[ParticipantSample, ...]
    node: str = ""
    worker_pid: int | None = None
    snapshot: Mapping[str, Any] = field(default_factory=dict)  # the room snapshot as the media plane gave it
