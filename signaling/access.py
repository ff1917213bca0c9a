"""Who may join which lesson, when: pure rules over a token's claims and the lesson's facts.

Kept free of I/O so the rules can be tested directly; `signaling.http` and `signaling.hub` look the
facts up and call these.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.model import Lesson, LessonStatus
from signaling.tokens import Claims, Role, TokenRefused, TokenType

JOIN_ROLES = (Role.LEAD, Role.RECEIVER, Role.OBSERVER)
OPEN_STATUSES = (LessonStatus.SCHEDULED, LessonStatus.OPEN, LessonStatus.LIVE)


@dataclass(frozen=True)
class LessonFacts:
    """What admission needs to know about a lesson, times as epoch seconds."""

    lesson: Lesson
    opens: float
    closes: float
    community_teacher_ids: frozenset[int] = frozenset()


def check_window(facts: LessonFacts, now: float) -> None:
    lesson = facts.lesson
    if lesson.status == LessonStatus.CANCELLED:
        raise TokenRefused("lesson_cancelled", f"lesson #{lesson.id} was cancelled")
    if lesson.status not in OPEN_STATUSES or now >= facts.closes:
        raise TokenRefused("window_closed", f"the window of lesson #{lesson.id} has closed")
    if now < facts.opens:
        raise TokenRefused("window_not_open", f"the window of lesson #{lesson.id} is not open yet")


def check_join(claims: Claims, facts: LessonFacts | None, lesson_id: int | None, now: float) -> None:
    """Raise TokenRefused unless `claims` (a verified join token) admits its holder to the lesson now."""
    if claims.typ != TokenType.JOIN or claims.role not in JOIN_ROLES:
        raise TokenRefused("wrong_type", "this token does not admit to a lesson")
    if lesson_id is not None and claims.lesson_id != lesson_id:
        raise TokenRefused("wrong_lesson", f"this token is for another lesson, not lesson #{lesson_id}")
    if facts is None:
        raise TokenRefused("unknown_lesson", "no such lesson")
    lesson = facts.lesson
    if claims.lesson_id != lesson.id:
        raise TokenRefused("wrong_lesson", f"this token is for another lesson, not lesson #{lesson.id}")
    check_window(facts, now)
    if claims.role == Role.RECEIVER and claims.classroom_id not in lesson.receiving_classroom_ids:
        raise TokenRefused("not_entitled", "this classroom does not receive this lesson")
    if claims.role == Role.LEAD and claims.teacher_id != lesson.lead_teacher_id:
        raise TokenRefused("not_entitled", "only the lesson's lead teacher broadcasts it")


def may_issue(role: Role, principal: Claims | None, facts: LessonFacts, classroom_id: int | None) -> None:
    """Whether the holder of `principal` (None: the administrator's token) may have a join token in `role`."""
    lesson = facts.lesson
    if principal is None or principal.role == Role.ADMIN:
        if role == Role.RECEIVER and classroom_id not in lesson.receiving_classroom_ids:
            raise TokenRefused("not_entitled", "that classroom does not receive this lesson")
        return
    if principal.typ == TokenType.DEVICE:
        if role != Role.RECEIVER or principal.classroom_id not in lesson.receiving_classroom_ids:
            raise TokenRefused("not_entitled", "this classroom does not receive this lesson")
        return
    if principal.typ == TokenType.SESSION and principal.role == Role.TEACHER:
        if role == Role.LEAD and principal.teacher_id == lesson.lead_teacher_id:
            return
        if role == Role.OBSERVER and (
            principal.teacher_id == lesson.lead_teacher_id or principal.teacher_id in facts.community_teacher_ids
        ):
            return
        raise TokenRefused("not_entitled", "you are not entitled to this lesson in that role")
    raise TokenRefused("not_entitled", "you are not entitled to this lesson in that role")
