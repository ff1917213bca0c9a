"""Review of recordings and scheduled replays (录播): pure rules.

A recording is its lesson's until a reviewer (a teacher the county's administrator made one, e.g. a
教研员) approves it for one or both uses:

- `replay`: an administrator may schedule it as a lesson of other receiving classrooms (a replay);
- `model`: the county's teachers may watch it as a model lesson (案例观摩).

A refusal (or a later withdrawal) takes every use away. Reviews are kept with who, when and why.

A replay is a lesson: it has a window, receiving classrooms, attendance and evidence, and is settled as
a live lesson is (the replay publisher is on air as the lead). It takes the recorded lesson's kind,
subject, grade, lead teacher and lead classroom, so reports can name what was shown, but it occupies
only its receiving classrooms: the lead teacher and lead classroom are free at that time. It counts for
its receiving schools' opening rate when delivered; whether it also credits the recorded lesson's lead
(the teacher's workload and backbone minimum, or the lead school for a 名校网络课堂 lesson) is the county's
policy when the replay is scheduled, default no.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.model import Lesson, LessonDraft, Problem

REVIEW_STATES = ("pending", "approved", "refused")
USES = ("replay", "model")


def parse_uses(value: object) -> tuple[str, ...]:
    """`"replay"`, `"model"`, `"replay,model"` or a list of them, in canonical order; ValueError otherwise."""
    if isinstance(value, str):
        items: Iterable[object] = [x.strip() for x in value.split(",") if x.strip()]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ValueError("use is replay, model or both")
    uses = {str(x) for x in items}
    unknown = sorted(uses - set(USES))
    if unknown or not uses:
        raise ValueError(f"use is replay, model or both, not {', '.join(unknown) or 'nothing'}")
    return tuple(u for u in USES if u in uses)


@dataclass(frozen=True, slots=True)
class ReviewFacts:
    """What a review decision needs to know of a recording."""

    state: str  # recording / ready / failed / deleted
    county_ids: frozenset[int]  # the recorded lesson's lead county (and its receivers')


def review_refusal(
    facts: ReviewFacts, reviewer_counties: frozenset[int], approved: bool, reason: str
) -> tuple[str, str] | None:
    """None when this reviewer may make this decision, else (code, why)."""
    if not facts.county_ids & reviewer_counties:
        return "not_reviewer", "you are not a reviewer of this recording's county"
    if not reason.strip():
        return "reason_needed", "a review needs a reason"
    if approved and facts.state != "ready":
        return "not_ready", f"only a finished recording can be approved (this one is {facts.state})"
    if facts.state == "deleted":
        return "not_ready", "this recording was deleted"
    return None


@dataclass(frozen=True, slots=True)
class ReplaySource:
    """The recording a replay would show, and its lesson."""

    recording_id: int
    state: str
    review: str
    uses: frozenset[str]
    lesson: Lesson
    duration_s: float | None


def replay_source_problem(recording_id: int, source: ReplaySource | None) -> Problem | None:
    """Why this recording cannot be replayed (`no_recording`, `not_approved`), or None."""
    if source is None:
        return Problem("no_recording", f"there is no recording #{recording_id}",
                       message_zh=f"没有录像 #{recording_id}")
    if source.state != "ready":
        return Problem("no_recording", f"recording #{recording_id} is {source.state}, not ready to replay",
                       message_zh=f"录像 #{recording_id} 尚不可用（{_STATE_ZH.get(source.state, source.state)}）")
    if source.review != "approved" or "replay" not in source.uses:
        return Problem("not_approved", f"recording #{recording_id} is not approved for replay "
                       f"(its review is {source.review})",
                       message_zh=f"录像 #{recording_id} 未经审查批准用于录播（{_REVIEW_ZH[source.review]}）")
    return None


_STATE_ZH = {"recording": "录制中", "failed": "录制失败", "deleted": "已删除"}
_REVIEW_ZH = {"pending": "待审查", "approved": "仅批准用于案例观摩", "refused": "未通过审查"}


def replay_draft(
    source: ReplaySource,
    receiving_classroom_ids: tuple[int, ...],
    start: datetime,
    end: datetime | None,
    semester_id: int | None,
    credits_lead: bool | None,
    series_id: str | None = None,
) -> LessonDraft:
    """The lesson a replay is: the recorded lesson's kind, subject, grade and lead, shown to other classrooms
    at another time; without an end, as long as the recorded lesson was. `credits_lead` None: the timetable
    applies the county's policy when it stores it."""
    lesson = source.lesson
    return LessonDraft(
        kind=lesson.kind,
        subject=lesson.subject,
        grade=lesson.grade,
        lead_teacher_id=lesson.lead_teacher_id,
        lead_classroom_id=lesson.lead_classroom_id,
        start=start,
        end=end if end is not None else start + (lesson.end - lesson.start),
        receiving_classroom_ids=receiving_classroom_ids,
        community_id=None,
        semester_id=semester_id,
        series_id=series_id,
        hours=lesson.hours,
        replay_of=source.recording_id,
        credits_lead=credits_lead,
    )


def replay_window_problems(draft: LessonDraft, source: ReplaySource) -> list[Problem]:
    """A replay shorter than its recording is cut off at its end: a warning, not a refusal."""
    if source.duration_s is None:
        return []
    if draft.end - draft.start < timedelta(seconds=source.duration_s):
        minutes = round(source.duration_s / 60)
        return [Problem("replay_cut", f"the recording lasts {minutes} min, longer than this replay's time: "
                        "its end is not shown", "warning",
                        message_zh=f"录像时长 {minutes} 分钟，长于本次录播时间，结尾不会播放")]
    return []


def credits_lead_of(county_policy: bool | None) -> bool:
    """Whether a replay credits the recorded lesson's lead: the county's setting, default no extra credit."""
    return bool(county_policy)


def replay_due_problem(
    source: ReplaySource | None, file_present: bool
) -> tuple[str, str, str] | None:
    """Checked before a replay's window opens: (code, English, Chinese) of what will stop it playing, or None."""
    if source is None or source.state != "ready":
        return "replay_no_recording", "its recording is gone", "录像已不存在"
    if not file_present:
        return "replay_file_missing", "its recording's file is missing on the server", "录像文件在服务器上缺失"
    if source.review != "approved" or "replay" not in source.uses:
        return "replay_not_approved", "its recording is no longer approved for replay", "录像已不再获准录播"
    return None
