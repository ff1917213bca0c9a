"""A lesson's history as JSON (docs/api.md, "Attendance"): pure functions over a timeline and names.

Every receiving classroom of the lesson is listed, the absent ones too (no segments, 0 minutes);
community observers are listed when they were credited. `share` is minutes present over the
scheduled duration, at most 1; `attended` applies the settlement's receiver share to it, so the page
and the settlement can never disagree about who attended.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from monitoring.attendance import LEAD, Event, Segment, Timeline, classroom_key, parse_key, teacher_key
from scheduler.model import Lesson


def _iso(at: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(at, UTC).astimezone(tz).isoformat(timespec="seconds")


def segment_json(s: Segment, tz: tzinfo) -> dict[str, Any]:
    mean = s.quality_mean
    return {
        "from": _iso(s.start, tz),
        "to": _iso(s.end, tz),
        "seconds": round(s.seconds, 1),
        "opened_by": s.opened_by.value,
        "closed_by": s.closed_by.value if s.closed_by else None,  # null: still going
        "quality": None if mean is None else
        {"min": round(s.quality_min or 0.0, 2), "mean": round(mean, 2), "samples": s.quality_n},
    }


def _events(events: list[Event], key: str, tz: tzinfo) -> list[dict[str, Any]]:
    return [{"at": _iso(e.at, tz), "what": e.what.value} for e in events if e.participant == key]


def participant_json(timeline: Timeline | None, key: str, tz: tzinfo, receiver_share: float) -> dict[str, Any]:
    segments = timeline.segments.get(key, []) if timeline else []
    share = timeline.share(key) if timeline else 0.0
    return {
        "minutes": round(timeline.seconds(key) / 60.0, 2) if timeline else 0.0,
        "share": share,
        "attended": share >= receiver_share,
        "segments": [segment_json(s, tz) for s in segments],
        "events": _events(timeline.events, key, tz) if timeline else [],
    }


def lesson_attendance(
    lesson: Lesson,
    timeline: Timeline | None,
    classroom_names: Mapping[int, str],
    teacher_names: Mapping[int, str],
    tz: tzinfo,
    *,
    live: bool,
    lead_share: float,
    receiver_share: float,
) -> dict[str, Any]:
    """The whole attendance of one lesson: the lead's on-air timeline, every classroom, the observers."""
    lead = participant_json(timeline, LEAD, tz, lead_share)
    lead["on_air_enough"] = lead.pop("attended")
    observers = sorted(
        parse_key(k)[1] or 0 for k in (timeline.segments if timeline else {}) if k.startswith("teacher-")
    )
    return {
        "lesson_id": lesson.id,
        "kind": lesson.kind.value,
        "subject": lesson.subject,
        "grade": lesson.grade,
        "status": lesson.status.value,
        "start": lesson.start.astimezone(tz).isoformat(),
        "end": lesson.end.astimezone(tz).isoformat(),
        "scheduled_minutes": round((lesson.end - lesson.start).total_seconds() / 60.0, 2),
        "recorded": timeline is not None,
        "live": live,
        "lead": {"teacher_id": lesson.lead_teacher_id, "teacher": teacher_names.get(lesson.lead_teacher_id, ""),
                 "classroom_id": lesson.lead_classroom_id, "name": classroom_names.get(lesson.lead_classroom_id, ""),
                 **lead},
        "classrooms": [
            {"classroom_id": c, "name": classroom_names.get(c, ""),
             **participant_json(timeline, classroom_key(c), tz, receiver_share)}
            for c in lesson.receiving_classroom_ids
        ],
        "observers": [
            {"teacher_id": t, "name": teacher_names.get(t, ""),
             **participant_json(timeline, teacher_key(t), tz, receiver_share)}
            for t in observers
        ],
    }


def lesson_summary(full: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the history list, from `lesson_attendance`'s answer."""
    rooms = full["classrooms"]
    return {
        key: full[key] for key in ("lesson_id", "kind", "subject", "grade", "status", "start", "end",
                                   "scheduled_minutes", "recorded", "live")
    } | {
        "lead": full["lead"]["name"],
        "teacher": full["lead"]["teacher"],
        "lead_minutes": full["lead"]["minutes"],
        "lead_share": full["lead"]["share"],
        "classrooms": len(rooms),
        "classrooms_attended": sum(1 for r in rooms if r["attended"]),
        "classrooms_absent": sum(1 for r in rooms if not r["segments"]),
        "drops": sum(1 for r in rooms for s in r["segments"] if s["closed_by"] == "dropped"),
        "observers": len(full["observers"]),
    }
