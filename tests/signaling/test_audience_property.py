"""The audience of a lesson, as a property: for random lessons, accounts, devices and states (issued in
one state, joined in another), no one outside the lesson's audience is ever admitted.

The pipeline under test is the real one minus the sockets: `may_issue` -> `TokenService.issue` ->
`TokenService.verify` -> `check_current` -> `check_join`. The oracle below is the policy written out
independently (POLICY.md, docs/security.md), not a copy of the code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.db import Database
from scheduler.model import Kind, Lesson, LessonStatus
from signaling.access import LessonFacts, check_current, check_join, community_may_watch, in_scope, may_issue
from signaling.store import Account
from signaling.tokens import Claims, Role, TokenRefused, TokenService, TokenType, load_or_create_key

NOW = 1_800_000_000.0
TEACHERS = st.integers(1, 5)
CLASSROOMS = st.integers(10, 15)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class World:
    """What admission looks at: the lesson with its window and community, the account, the device."""

    lesson: Lesson
    opens: float
    closes: float
    members: frozenset[int]
    account: Account | None  # the principal's account (None: the administrator token, or a device)
    device: str | None  # the classroom's enrolled device now

    def facts(self) -> LessonFacts:
        return LessonFacts(self.lesson, self.opens, self.closes, self.members)


@dataclass(frozen=True)
class Who:
    kind: str  # "admin-token", "admin", "teacher", "technician", "device"
    teacher_id: int | None
    classroom_id: int | None
    device_id: str | None
    county_id: int | None


@st.composite
def worlds(draw: st.DrawFn) -> World:
    start = datetime.fromtimestamp(NOW + draw(st.integers(-3600, 3600)), UTC)
    lesson = Lesson(
        id=7,
        kind=draw(st.sampled_from(list(Kind))),
        subject="数学",
        grade="",
        lead_teacher_id=draw(TEACHERS),
        lead_classroom_id=1,
        start=start,
        end=start + timedelta(minutes=40),
        receiving_classroom_ids=tuple(draw(st.sets(CLASSROOMS, max_size=4))),
        community_id=draw(st.none() | st.just(5)),
        status=draw(st.sampled_from(list(LessonStatus))),
    )
    opens = start.timestamp() - 600
    closes = start.timestamp() + 40 * 60 + 600
    account = draw(st.none() | st.builds(
        Account, id=st.just(3), username=st.just("x"), role=st.just("teacher"), teacher_id=st.none(),
        county_id=st.none(), disabled=st.booleans(), generation=st.integers(0, 2)))
    return World(lesson, opens, closes, frozenset(draw(st.sets(TEACHERS, max_size=3))), account,
                 draw(st.sampled_from(["dev-a", "dev-b", None])))


WHO = st.one_of(
    st.builds(Who, st.just("admin-token"), st.none(), st.none(), st.none(), st.none()),
    st.builds(Who, st.just("admin"), st.none(), st.none(), st.none(), st.none()),
    st.builds(Who, st.just("teacher"), TEACHERS, st.none(), st.none(), st.none()),
    st.builds(Who, st.just("technician"), st.none(), st.none(), st.none(), st.integers(1, 3)),
    st.builds(Who, st.just("device"), st.none(), CLASSROOMS, st.sampled_from(["dev-a", "dev-b"]), st.none()),
)


def in_audience(w: World, who: Who, role: Role, at_issue: World) -> bool:
    """The policy: who may be admitted to the lesson, in `w` (the state at join), with a token got in
    `at_issue` (the state when it was issued)."""
    lesson = w.lesson
    if lesson.status not in (LessonStatus.SCHEDULED, LessonStatus.OPEN, LessonStatus.LIVE):
        return False
    if not w.opens <= NOW < w.closes:
        return False
    if who.kind in ("admin", "teacher"):
        # the account must be the one the token came from, enabled, and unchanged since
        if w.account is None or at_issue.account is None or w.account.disabled:
            return False
        if w.account.generation != at_issue.account.generation:
            return False
    if who.kind == "technician":
        return False
    if who.kind == "device":
        if w.device != who.device_id:
            return False
        return role == Role.RECEIVER and who.classroom_id in lesson.receiving_classroom_ids
    if role == Role.RECEIVER:
        # an administrator's token for one of the lesson's receiving classrooms
        return who.kind in ("admin", "admin-token") and who.classroom_id in lesson.receiving_classroom_ids
    if who.kind in ("admin", "admin-token"):
        return True  # supervision: lead stand-in or observer
    if role == Role.LEAD:
        return who.teacher_id == lesson.lead_teacher_id
    return who.teacher_id == lesson.lead_teacher_id or (
        lesson.kind == Kind.MASTER and lesson.community_id is not None and who.teacher_id in w.members
    )


def principal(tokens: TokenService, who: Who, w: World) -> Claims | None:
    gen = w.account.generation if w.account is not None else 0
    if who.kind == "admin-token":
        return None
    if who.kind == "device":
        return tokens.issue(TokenType.DEVICE, Role.RECEIVER, f"classroom:{who.classroom_id}", expires_at=NOW + 9e6,
                            classroom_id=who.classroom_id, device_id=who.device_id)[1]
    role = {"admin": Role.ADMIN, "teacher": Role.TEACHER, "technician": Role.TECHNICIAN}[who.kind]
    return tokens.issue(TokenType.SESSION, role, "account:3", expires_at=NOW + 9e6, account_id=3, generation=gen,
                        teacher_id=who.teacher_id, county_id=who.county_id)[1]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> TokenService:
    path: Path = tmp_path_factory.mktemp("audience")
    return TokenService(load_or_create_key(path / "key"), Database(path / "db.sqlite3"), Clock())


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at_issue=worlds(), changed=st.booleans(), later=worlds(), who=WHO,
       role=st.sampled_from([Role.LEAD, Role.RECEIVER, Role.OBSERVER]), classroom=st.none() | CLASSROOMS)
def test_no_one_outside_the_audience_is_ever_admitted(
    tokens: TokenService, at_issue: World, changed: bool, later: World, who: Who, role: Role, classroom: int | None
) -> None:
    # the join happens in the same state, or after the lesson, the account and the device changed
    at_join = later if changed else at_issue
    at_join = replace(at_join, lesson=replace(at_join.lesson, id=at_issue.lesson.id))
    p = principal(tokens, who, at_issue)
    try:
        if p is not None:
            check_current(p, at_issue.account if p.account_id else None, at_issue.device)
        via = may_issue(role, p, at_issue.facts(), classroom)
    except TokenRefused:
        return  # nothing issued, nothing to admit
    lesson = at_issue.lesson
    facts = at_issue.facts()
    token, _ = tokens.issue(
        TokenType.JOIN, role, p.sub if p is not None else "admin-token", expires_at=facts.closes,
        not_before=facts.opens, lesson_id=lesson.id,
        classroom_id=(p.classroom_id if p is not None and p.typ == TokenType.DEVICE else classroom)
        if role == Role.RECEIVER else None,
        teacher_id=lesson.lead_teacher_id if role == Role.LEAD else (p.teacher_id if p is not None else None),
        device_id=p.device_id if p is not None else None, account_id=p.account_id if p is not None else None,
        generation=p.generation if p is not None else None, via=via.value,
    )
    effective = Who(who.kind, who.teacher_id, classroom if who.kind != "device" else who.classroom_id,
                    who.device_id, who.county_id)
    try:
        claims = tokens.verify(token, [TokenType.JOIN])
        check_current(claims, at_join.account if claims.account_id is not None else None, at_join.device)
        check_join(claims, at_join.facts(), None, NOW)
    except TokenRefused:
        admitted = False
    else:
        admitted = True
    allowed = in_audience(at_join, effective, role, at_issue) and (
        # the lead stand-in token names the lead at issue: it admits only while that teacher still leads
        role != Role.LEAD or who.kind not in ("admin", "admin-token")
        or at_issue.lesson.lead_teacher_id == at_join.lesson.lead_teacher_id
    )
    assert not admitted or allowed, (who, role, at_issue, at_join)
    assert admitted or not allowed or not in_audience(at_issue, effective, role, at_issue), (who, role, at_join)


def test_community_observers_belong_to_master_lessons_only() -> None:
    assert [k for k in Kind if community_may_watch(k)] == [Kind.MASTER]


def test_technician_scope() -> None:
    tokens = TokenService(b"k" * 32, None, Clock())  # type: ignore[arg-type]
    county = tokens.issue(TokenType.SESSION, Role.TECHNICIAN, "account:1", expires_at=NOW + 60, county_id=4)[1]
    region = tokens.issue(TokenType.SESSION, Role.TECHNICIAN, "account:2", expires_at=NOW + 60, region_id=9)[1]
    nowhere = tokens.issue(TokenType.SESSION, Role.TECHNICIAN, "account:3", expires_at=NOW + 60)[1]
    teacher = tokens.issue(TokenType.SESSION, Role.TEACHER, "account:4", expires_at=NOW + 60, county_id=4)[1]
    assert in_scope(county, frozenset({4, 5}), frozenset({1}))
    assert not in_scope(county, frozenset({5}), frozenset({9}))
    assert in_scope(region, frozenset({5}), frozenset({9}))
    assert not in_scope(region, frozenset({4}), frozenset({1}))
    assert not in_scope(nowhere, frozenset({4}), frozenset({9}))
    assert not in_scope(teacher, frozenset({4}), frozenset({9}))


def test_a_credential_in_force_and_the_reason_when_not() -> None:
    tokens = TokenService(b"k" * 32, None, Clock())  # type: ignore[arg-type]
    session = tokens.issue(TokenType.SESSION, Role.TEACHER, "account:3", expires_at=NOW + 60, account_id=3,
                           generation=2, teacher_id=1)[1]
    device = tokens.issue(TokenType.DEVICE, Role.RECEIVER, "classroom:11", expires_at=NOW + 60, classroom_id=11,
                          device_id="dev-a")[1]
    account = Account(3, "wang", "teacher", 1, None, False, generation=2)
    check_current(session, account, None)
    check_current(device, None, "dev-a")
    cases = [
        (session, replace(account, disabled=True), None, "account_disabled"),
        (session, None, None, "account_disabled"),
        (session, replace(account, generation=3), None, "credential_changed"),
        (device, None, "dev-b", "device_replaced"),
        (device, None, None, "device_withdrawn"),
    ]
    for claims, acct, dev, code in cases:
        with pytest.raises(TokenRefused) as e:
            check_current(claims, acct, dev)
        assert e.value.code == code
