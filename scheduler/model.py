"""Plain data of the school domain. Rules take and return these; storage maps them to rows.

Times of lessons are timezone-aware datetimes in UTC; dates of the semester calendar are local dates
of the district (Asia/Shanghai by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Kind(StrEnum):
    SPECIALISED = "specialised"  # 专递课堂
    MASTER = "master"  # 名师课堂
    FAMOUS_SCHOOL = "famous_school"  # 名校网络课堂


class Level(StrEnum):
    REGION = "region"  # 塞上名师, 自治区级骨干教师
    CITY = "city"  # 市级骨干教师
    COUNTY = "county"  # 县(区)级骨干教师
    NONE = "none"


class LessonStatus(StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"  # its window is open: entitled classrooms may join
    LIVE = "live"  # the lead is broadcasting
    # entered after its time: waits for evidence (an import) or an administrator's explicit settlement
    AWAITING_EVIDENCE = "awaiting_evidence"
    DELIVERED = "delivered"
    MISSED = "missed"
    CANCELLED = "cancelled"


SETTLED_STATUSES = frozenset({LessonStatus.DELIVERED, LessonStatus.MISSED, LessonStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Region:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class City:
    id: int
    region_id: int
    name: str


@dataclass(frozen=True, slots=True)
class County:
    id: int
    city_id: int
    name: str
    workload_factor: float = 1.5  # in force from today on; earlier lessons keep the factor of their date
    standard_lesson_minutes: int = 40  # one 课时


@dataclass(frozen=True, slots=True)
class School:
    id: int
    county_id: int
    name: str
    is_lead: bool = False  # may act as 主讲端
    is_receiving: bool = False  # may act as 接收端
    is_teaching_point: bool = False  # 教学点 (always a receiving end)
    bandwidth_mbps: float = 100.0


@dataclass(frozen=True, slots=True)
class Classroom:
    id: int
    school_id: int
    name: str


@dataclass(frozen=True, slots=True)
class Teacher:
    id: int
    school_id: int
    name: str
    level: Level = Level.NONE
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Semester:
    id: int
    name: str
    start: date  # first day (local)
    end: date  # last day (local), inclusive
    holidays: frozenset[date] = frozenset()
    makeup_days: frozenset[date] = frozenset()  # weekend days that are school days (调休补课)


@dataclass(frozen=True, slots=True)
class Community:
    """A research community (网络研修共同体) that receives master lessons."""

    id: int
    county_id: int
    name: str
    member_teacher_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Lesson:
    id: int
    kind: Kind
    subject: str
    grade: str
    lead_teacher_id: int
    lead_classroom_id: int
    start: datetime  # UTC, aware
    end: datetime  # UTC, aware
    receiving_classroom_ids: tuple[int, ...] = ()
    community_id: int | None = None
    semester_id: int | None = None
    series_id: str | None = None  # the weekly recurrence it was expanded from
    status: LessonStatus = LessonStatus.SCHEDULED
    hours: int = 1  # lesson hours (课时) it counts for when delivered
    # a replay (录播) of this recording's approved lesson to its receiving classrooms; None: a live lesson.
    # Its kind, subject, grade, lead teacher and classroom are the recorded lesson's (who is credited, if anyone)
    replay_of: int | None = None
    credits_lead: bool = True  # a replay: whether it credits the recorded lesson's lead (the county's policy)

    @property
    def is_replay(self) -> bool:
        return self.replay_of is not None


@dataclass(frozen=True, slots=True)
class LessonDraft:
    """A lesson not yet stored: what an import row or an API request asks for."""

    kind: Kind
    subject: str
    grade: str
    lead_teacher_id: int
    lead_classroom_id: int
    start: datetime
    end: datetime
    receiving_classroom_ids: tuple[int, ...] = ()
    community_id: int | None = None
    semester_id: int | None = None
    series_id: str | None = None
    hours: int | None = None  # 课时 as the timetable gives it; None: from its duration and the county's standard
    replay_of: int | None = None  # the approved recording it replays (录播); None: a live lesson
    credits_lead: bool | None = None  # a replay: None until the timetable applies the county's policy

    @property
    def is_replay(self) -> bool:
        return self.replay_of is not None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (severity "error": refused) or worth knowing ("warning") about a draft."""

    code: str  # machine-readable, e.g. "teacher_busy", "on_holiday", "over_bandwidth"
    message: str  # for people, names the problem
    severity: str = "error"
    line: int | None = None  # CSV line, when it came from an import
    related_lesson_id: int | None = None
    message_zh: str = ""  # the same in Simplified Chinese, for the pages (falls back to `message`)
    sheet: str = ""  # the XLSX sheet of `line` (then a row number), when it came from a workbook


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the media/monitoring side recorded about one lesson."""

    lesson_id: int
    lead_minutes: float
    attended_minutes: dict[int, float] = field(default_factory=dict)  # classroom id -> minutes
    # research-community members watching a master lesson on their own devices: teacher id -> minutes
    attended_teachers: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    lesson_id: int
    entry_type: str  # "teacher_workload" | "school_credit"
    teacher_id: int | None
    school_id: int | None
    base_hours: float  # ordinary lesson hours (课时) before weighting; negative when reversing
    factor: float
    weighted_hours: float
    created_at: datetime
    actor: str  # "system" or the person who corrected
    reason: str
    reverses_id: int | None = None
