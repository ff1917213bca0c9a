"""Who may join which lesson, when: pure rules over a token's claims and the lesson's facts.

Kept free of I/O so the rules can be tested directly; `signaling.http` and `signaling.hub` look the
facts up and call these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from scheduler.model import Kind, Lesson, LessonStatus
from signaling.config import SignalingConfig
from signaling.tokens import Claims, Role, TokenRefused, TokenType

if TYPE_CHECKING:
    from signaling.store import Account

JOIN_ROLES = (Role.LEAD, Role.RECEIVER, Role.OBSERVER)
OPEN_STATUSES = (LessonStatus.SCHEDULED, LessonStatus.OPEN, LessonStatus.LIVE)


@dataclass(frozen=True)
class LessonFacts:
    """What admission needs to know about a lesson, times as epoch seconds."""

    lesson: Lesson
    opens: float
    closes: float
    community_teacher_ids: frozenset[int] = frozenset()


class Grantor(StrEnum):
    """Who granted a join token: it decides which audience rules apply to its holder."""

    ADMIN = "admin"  # an administrator: any role, for supervision and support
    TEACHER = "teacher"  # a logged-in teacher
    DEVICE = "device"  # an enrolled classroom PC


def community_may_watch(kind: Kind) -> bool:
    """Research-community observers (网络研修共同体) watch master lessons (名师课堂) only."""
    return kind == Kind.MASTER


def audience_refusal(
    facts: LessonFacts, role: Role, via: Grantor, classroom_id: int | None, teacher_id: int | None
) -> TokenRefused | None:
    """The lesson's audience by kind, in one place: None when the holder belongs to it, else why not.

    A lesson's lead teacher leads it (and may watch it from a second device); its receiving classrooms
    receive it, through their enrolled device or a token an administrator gave them; members of its
    research community observe it only when it is a master lesson; administrators may observe any lesson.
    No one else, whatever the kind.
    """
    lesson = facts.lesson
    if role == Role.RECEIVER:
        if via in (Grantor.ADMIN, Grantor.DEVICE) and classroom_id in lesson.receiving_classroom_ids:
            return None
        return TokenRefused("not_entitled", "this classroom does not receive this lesson")
    if via == Grantor.DEVICE:
        return TokenRefused("not_entitled", "a classroom device receives its lessons, nothing else")
    if role == Role.LEAD:
        if teacher_id is not None and teacher_id == lesson.lead_teacher_id:
            return None
        return TokenRefused("not_entitled", "only the lesson's lead teacher broadcasts it")
    if role == Role.OBSERVER:
        if via == Grantor.ADMIN:
            return None
        if teacher_id is not None and teacher_id == lesson.lead_teacher_id:
            return None
        if (
            teacher_id is not None
            and community_may_watch(lesson.kind)
            and lesson.community_id is not None
            and teacher_id in facts.community_teacher_ids
        ):
            return None
        if lesson.kind != Kind.MASTER:
            return TokenRefused("not_entitled", f"a {lesson.kind.value} lesson has no research-community observers")
        return TokenRefused("not_entitled", "you are not a member of this lesson's research community")
    return TokenRefused("not_entitled", "join tokens are for lead, receiver or observer")


def grantor_of(claims: Claims) -> Grantor:
    """Who granted a join token. A token without the mark (issued before it existed) gets the narrowest
    reading: a device's if it names one, else an administrator's for a classroom (only they and devices
    issue receiver tokens), else a teacher's (so no community observer of a non-master lesson slips in)."""
    if claims.via in (g.value for g in Grantor):
        return Grantor(claims.via)
    if claims.device_id is not None:
        return Grantor.DEVICE
    return Grantor.ADMIN if claims.role == Role.RECEIVER else Grantor.TEACHER


def check_current(claims: Claims, account: Account | None, device_id: str | None) -> None:
    """Raise TokenRefused unless the credential behind `claims` is still in force: the account exists, is
    not disabled and is at the generation the token was issued at (a password reset, a disable, a role or
    scope change moves it on); the device is still its classroom's enrolled device."""
    if claims.account_id is not None:
        if account is None or account.disabled:
            raise TokenRefused("account_disabled", "this account has been disabled")
        if claims.generation != account.generation:
            raise TokenRefused("credential_changed", "the account's password, role or scope changed: log in again")
    if claims.device_id is not None:
        if device_id is None:
            raise TokenRefused("device_withdrawn", "this classroom's enrolment has been withdrawn")
        if device_id != claims.device_id:
            raise TokenRefused("device_replaced", "another device has been enrolled for this classroom")


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
    refusal = audience_refusal(facts, claims.role, grantor_of(claims), claims.classroom_id, claims.teacher_id)
    if refusal is not None:
        raise refusal


def grantor_for(principal: Claims | None) -> Grantor | None:
    """Who is asking for a join token: None when the principal may not have one at all."""
    if principal is None or principal.role == Role.ADMIN:
        return Grantor.ADMIN
    if principal.typ == TokenType.DEVICE:
        return Grantor.DEVICE
    if principal.typ == TokenType.SESSION and principal.role == Role.TEACHER:
        return Grantor.TEACHER
    return None  # technicians and anything else: stream health comes from stats, not from watching


def may_issue(role: Role, principal: Claims | None, facts: LessonFacts, classroom_id: int | None) -> Grantor:
    """Whether the holder of `principal` (None: the administrator's token) may have a join token in `role`;
    returns who grants it (goes into the token and is checked again at join)."""
    via = grantor_for(principal)
    if via is None:
        raise TokenRefused("not_entitled", "you are not entitled to this lesson in that role")
    teacher_id = principal.teacher_id if principal is not None else None
    if via == Grantor.DEVICE:
        classroom_id = principal.classroom_id if principal is not None else None
    if via == Grantor.ADMIN and role == Role.LEAD:
        teacher_id = facts.lesson.lead_teacher_id  # an administrator may stand in for the lead
    refusal = audience_refusal(facts, role, via, classroom_id, teacher_id)
    if refusal is not None:
        raise refusal
    return via


def in_scope(principal: Claims, counties: frozenset[int], regions: frozenset[int]) -> bool:
    """Whether a technician (or administrator) looks after a lesson that touches `counties` (the counties of
    its lead and receiving classrooms) in `regions`: a county technician sees their county's lessons, a
    region technician the region's; a technician with neither sees nothing."""
    if principal.role == Role.ADMIN:
        return True
    if principal.role != Role.TECHNICIAN:
        return False
    return (principal.county_id is not None and principal.county_id in counties) or (
        principal.region_id is not None and principal.region_id in regions
    )


class _Socket(Protocol):
    address: str
    claims: Claims | None


def socket_refusal(config: SignalingConfig, address: str, sessions: Iterable[_Socket]) -> str | None:
    """Why a new WebSocket from `address` is refused, or None: too many of its sockets have not joined,
    too many sockets in all have not joined, or the address has too many sockets."""
    mine = unjoined = mine_unjoined = 0
    for s in sessions:
        waiting = s.claims is None
        unjoined += waiting
        if s.address == address:
            mine += 1
            mine_unjoined += waiting
    if mine_unjoined >= config.ws_max_unjoined_per_address:
        return "too many connections from this address that have not joined; retry shortly"
    if unjoined >= config.ws_max_unjoined:
        return "too many connections that have not joined; retry shortly"
    if mine >= config.ws_max_per_address:
        return "too many connections from this address"
    return None
