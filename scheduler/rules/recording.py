"""Which lessons are recorded, and who may watch a recording: pure rules and their `[recording]` settings.

Recording (`media/recorder.py`) keeps the lead's camera, courseware and audio as they were forwarded.
Whether a lesson is recorded is decided when its room opens, in this order:

1. the lesson's own choice, set by an administrator (`PUT /api/v1/lessons/{id}/recording`);
2. its county's: `counties_on` / `counties_off`;
3. its kind's: `kinds` (default: specialised lessons, 专递课堂, which may be pushed as recorded lessons).

A replay of a recording (`lesson.replay_of`) is never recorded again.

A recording is the lesson's: before a reviewer approves it for wider use, only the lesson's audience
may watch it — its lead teacher, the teachers of its receiving schools (the on-site teachers), the
members of its research community for a master lesson — and the administrators of its counties (a
district-wide administrator: all). Technicians and classroom devices are not viewers.

Review widens that (scheduler/rules/replay.py): the reviewers of the lesson's (lead's) county watch it to
review it; approved as a model lesson (案例观摩), every teacher of the lesson's county may watch it; replayed to
other classrooms, the teachers of the replays' receiving schools and the administrators of their
counties may watch it.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.model import Kind, Lesson


@dataclass(frozen=True)
class RecordingConfig:
    enabled: bool = True  # false: nothing is recorded anywhere
    kinds: tuple[str, ...] = (Kind.SPECIALISED.value,)  # lesson kinds recorded by default
    counties_on: tuple[str, ...] = ()  # county ids recorded whatever the kind
    counties_off: tuple[str, ...] = ()  # county ids never recorded (unless a lesson says so)
    folder: str = ""  # where recordings are written; default <data_dir>/recordings
    keyframe_every_s: float = 4.0  # a keyframe asked of the lead this often while recording
    link_ttl_s: float = 600.0  # how long a playback link stays valid
    # kept this many days after they were made, then deleted with their files (a county may set its own;
    # 0: kept until deleted by hand); a recording a replay is still scheduled from is kept until it has aired
    retention_days: int = 365
    quota_gb: float = 0.0  # each county's recordings may use this much disk (a county may set its own; 0: none)
    quota_warn_share: float = 0.9  # a county's recordings above this share of its quota: a monitoring alert
    replay_check_min: float = 30.0  # a replay whose window opens within this is checked (file, approval)

    def __post_init__(self) -> None:
        known = {k.value for k in Kind}
        for kind in self.kinds:
            if kind not in known:
                raise ValueError(f"kinds: {kind!r} is not a lesson kind ({', '.join(sorted(known))})")
        for name in ("counties_on", "counties_off"):
            for county in getattr(self, name):
                if not str(county).isdigit():
                    raise ValueError(f"{name}: {county!r} is not a county id")
        if self.keyframe_every_s < 1:
            raise ValueError("keyframe_every_s must be at least 1")
        if not 10 <= self.link_ttl_s <= 86400:
            raise ValueError("link_ttl_s must be between 10 and 86400")
        if self.retention_days < 0:
            raise ValueError("retention_days must be 0 (keep) or more")
        if self.quota_gb < 0:
            raise ValueError("quota_gb must be 0 (none) or more")
        if not 0 < self.quota_warn_share <= 1:
            raise ValueError("quota_warn_share must be above 0 and at most 1")
        if not 1 <= self.replay_check_min <= 24 * 60:
            raise ValueError("replay_check_min must be between 1 and 1440")


def is_recorded(config: RecordingConfig, lesson: Lesson, lead_county_id: int | None, choice: bool | None,
                county_full: bool = False) -> bool:
    """Whether the lesson's room records: its own choice, else its county's, else its kind's. A replay (录播)
    is never recorded again: its recording exists. A county whose recordings have used its disk quota
    (`county_full`) records no new lesson, whatever was chosen: the quota keeps one county from filling a
    disk that others share (the technicians have the `recording_quota` alert)."""
    if not config.enabled or lesson.replay_of is not None or county_full:
        return False
    if choice is not None:
        return choice
    county = str(lead_county_id) if lead_county_id is not None else None
    if county is not None and county in config.counties_off:
        return False
    if county is not None and county in config.counties_on:
        return True
    return lesson.kind.value in config.kinds


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks to watch: an administrator (county-scoped or district-wide) or a teacher (with its school)."""

    admin: bool
    county_id: int | None = None  # an administrator's county (None: the whole district); a teacher's school's
    teacher_id: int | None = None
    school_id: int | None = None  # the teacher's school
    reviewer_county_ids: frozenset[int] = frozenset()  # the counties a teacher reviews recordings for


@dataclass(frozen=True, slots=True)
class RecordingAudience:
    """What the rule needs to know of a recorded lesson."""

    lesson: Lesson
    county_ids: frozenset[int]  # of its lead and receiving classrooms
    receiving_school_ids: frozenset[int]
    community_teacher_ids: frozenset[int]
    lead_county_id: int | None = None
    uses: frozenset[str] = frozenset()  # what a reviewer approved the recording for ("replay", "model")
    replay_school_ids: frozenset[int] = frozenset()  # receiving schools of replays scheduled from it
    replay_county_ids: frozenset[int] = frozenset()  # their counties


def playback_refusal(viewer: Viewer, audience: RecordingAudience) -> str | None:
    """None when the viewer may watch the recording, else why not (in one line, for the refusal)."""
    lesson = audience.lesson
    if viewer.admin:
        if viewer.county_id is None or viewer.county_id in audience.county_ids | audience.replay_county_ids:
            return None
        return "this lesson is not in your county"
    if viewer.teacher_id is None:
        return "only teachers and administrators watch recordings"
    if viewer.teacher_id == lesson.lead_teacher_id:
        return None
    if viewer.school_id is not None and viewer.school_id in audience.receiving_school_ids | audience.replay_school_ids:
        return None
    if lesson.kind == Kind.MASTER and viewer.teacher_id in audience.community_teacher_ids:
        return None
    if audience.lead_county_id is not None and audience.lead_county_id in viewer.reviewer_county_ids:
        return None  # the reviewers of the lesson's county, who decide on it
    if "model" in audience.uses and viewer.county_id is not None and viewer.county_id == audience.lead_county_id:
        return None
    return "this recording is for its lesson's audience"
