"""Tokens, passwords, admission rules, rate limits and message validation, at their edges."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.db import Database
from scheduler.model import Kind, Lesson, LessonStatus
from signaling import protocol
from signaling.access import LessonFacts, check_join, may_issue
from signaling.passwords import WeakPassword, hash_password, verify_password
from signaling.ratelimit import RateLimiter
from signaling.tokens import Role, TokenRefused, TokenService, TokenType, load_or_create_key

NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tokens(tmp_path: Path) -> TokenService:
    return TokenService(load_or_create_key(tmp_path / "signing-key"), Database(tmp_path / "db.sqlite3"), Clock())


def _lesson(status: LessonStatus = LessonStatus.OPEN) -> Lesson:
    start = datetime.fromtimestamp(NOW, UTC)
    return Lesson(7, Kind.MASTER, "数学", "一年级", 3, 1, start, start + timedelta(minutes=40), (11, 12), 5, 1, None,
                  status)


def _facts(status: LessonStatus = LessonStatus.OPEN) -> LessonFacts:
    return LessonFacts(_lesson(status), NOW - 600, NOW + 55 * 60, frozenset({4}))


def test_signing_key_is_made_once_and_owner_only(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "k")
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert load_or_create_key(tmp_path / "k") == key and len(key) == 32


def test_a_join_token_is_valid_exactly_inside_its_window(tokens: TokenService) -> None:
    clock = tokens.clock
    assert isinstance(clock, Clock)
    token, _ = tokens.issue(TokenType.JOIN, Role.RECEIVER, "classroom:11", expires_at=NOW + 100, not_before=NOW - 100,
                            lesson_id=7, classroom_id=11)
    clock.now = NOW - 101
    with pytest.raises(TokenRefused) as e:
        tokens.verify(token, [TokenType.JOIN])
    assert e.value.code == "not_yet_valid"
    clock.now = NOW - 100
    assert tokens.verify(token, [TokenType.JOIN]).classroom_id == 11
    clock.now = NOW + 99.9
    tokens.verify(token, [TokenType.JOIN])
    clock.now = NOW + 100
    with pytest.raises(TokenRefused) as e:
        tokens.verify(token, [TokenType.JOIN])
    assert e.value.code == "expired"


def test_forged_unsigned_and_wrong_type_tokens_are_refused(tokens: TokenService) -> None:
    claims = {"iss": "live-classroom", "jti": "x", "typ": "join", "role": "lead", "sub": "teacher:3", "iat": int(NOW),
              "exp": int(NOW + 60), "lesson": 7, "teacher": 3}
    forged = jwt.encode(claims, b"k" * 32, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    cases = ((forged, "bad_signature"), (unsigned, "malformed"), ("not.a.jwt", "malformed"), ("", "missing_token"),
             (None, "missing_token"), ("x" * 5000, "malformed"))
    for token, code in cases:
        with pytest.raises(TokenRefused) as e:
            tokens.verify(token, [TokenType.JOIN])
        assert e.value.code == code, token
    session, _ = tokens.issue(TokenType.SESSION, Role.ADMIN, "admin-token", expires_at=NOW + 60)
    with pytest.raises(TokenRefused) as e:
        tokens.verify(session, [TokenType.JOIN])
    assert e.value.code == "wrong_type"


def test_a_revoked_token_is_refused(tokens: TokenService) -> None:
    token, claims = tokens.issue(TokenType.DEVICE, Role.RECEIVER, "classroom:11", expires_at=NOW + 60,
                                 classroom_id=11, device_id="d1")
    tokens.verify(token, [TokenType.DEVICE])
    tokens.revoke(claims, "admin", "stolen laptop")
    with pytest.raises(TokenRefused) as e:
        tokens.verify(token, [TokenType.DEVICE])
    assert e.value.code == "revoked"


def test_admission_rules(tokens: TokenService) -> None:
    def claims(role: Role, **scope: int) -> object:
        return tokens.verify(tokens.issue(TokenType.JOIN, role, "x", expires_at=NOW + 60, **scope)[0], [TokenType.JOIN])

    facts = _facts()
    check_join(claims(Role.RECEIVER, lesson_id=7, classroom_id=11), facts, 7, NOW)  # type: ignore[arg-type]
    check_join(claims(Role.LEAD, lesson_id=7, teacher_id=3), facts, None, NOW)  # type: ignore[arg-type]
    refusals = [
        (claims(Role.RECEIVER, lesson_id=8, classroom_id=11), facts, 7, NOW, "wrong_lesson"),
        (claims(Role.RECEIVER, lesson_id=7, classroom_id=99), facts, 7, NOW, "not_entitled"),
        (claims(Role.LEAD, lesson_id=7, teacher_id=4), facts, 7, NOW, "not_entitled"),
        (claims(Role.RECEIVER, lesson_id=7, classroom_id=11), facts, 7, NOW + 55 * 60, "window_closed"),
        (claims(Role.RECEIVER, lesson_id=7, classroom_id=11), facts, 7, NOW - 601, "window_not_open"),
        (claims(Role.RECEIVER, lesson_id=7, classroom_id=11), _facts(LessonStatus.CANCELLED), 7, NOW,
         "lesson_cancelled"),
        (claims(Role.RECEIVER, lesson_id=7, classroom_id=11), _facts(LessonStatus.DELIVERED), 7, NOW,
         "window_closed"),
        (claims(Role.ADMIN, lesson_id=7), facts, 7, NOW, "wrong_type"),
    ]
    for c, f, lesson_id, now, code in refusals:
        with pytest.raises(TokenRefused) as e:
            check_join(c, f, lesson_id, now)  # type: ignore[arg-type]
        assert e.value.code == code


def test_who_may_have_a_join_token(tokens: TokenService) -> None:
    facts = _facts()
    teacher = tokens.issue(TokenType.SESSION, Role.TEACHER, "account:1", expires_at=NOW + 60, teacher_id=3)[1]
    member = tokens.issue(TokenType.SESSION, Role.TEACHER, "account:2", expires_at=NOW + 60, teacher_id=4)[1]
    stranger = tokens.issue(TokenType.SESSION, Role.TEACHER, "account:3", expires_at=NOW + 60, teacher_id=9)[1]
    device = tokens.issue(TokenType.DEVICE, Role.RECEIVER, "classroom:11", expires_at=NOW + 60, classroom_id=11)[1]
    other_device = tokens.issue(TokenType.DEVICE, Role.RECEIVER, "classroom:13", expires_at=NOW + 60,
                                classroom_id=13)[1]
    technician = tokens.issue(TokenType.SESSION, Role.TECHNICIAN, "account:5", expires_at=NOW + 60)[1]
    may_issue(Role.LEAD, teacher, facts, None)
    may_issue(Role.OBSERVER, member, facts, None)
    may_issue(Role.RECEIVER, device, facts, 11)
    may_issue(Role.OBSERVER, None, facts, None)
    for role, principal, classroom in ((Role.LEAD, member, None), (Role.OBSERVER, stranger, None),
                                       (Role.RECEIVER, other_device, 13), (Role.LEAD, device, 11),
                                       (Role.OBSERVER, technician, None), (Role.RECEIVER, None, 13)):
        with pytest.raises(TokenRefused):
            may_issue(role, principal, facts, classroom)


def test_passwords() -> None:
    stored = hash_password("correct horse 1")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse 1", stored)
    assert not verify_password("correct horse 2", stored)
    assert not verify_password("x", "garbage")
    with pytest.raises(WeakPassword):
        hash_password("short")


def test_rate_limiter_refills_and_forgets_old_addresses() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(per_minute=60, burst=3, max_addresses=100, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    clock.now = 1.0
    assert limiter.allow("a") and not limiter.allow("a")
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100


def test_protocol_accepts_the_documented_messages() -> None:
    ok = [
        {"v": 1, "type": "join", "token": "t", "lesson_id": 3, "id": 1},
        {"v": 1, "type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "tracks": {"0": "camera"}},
        {"v": 1, "type": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"},
        {"v": 1, "type": "talkback_grant", "participant_id": "classroom-3", "to_all": True},
        {"v": 1, "type": "raise_hand", "up": True},
        {"v": 1, "type": "text", "text": "老师好"},
        {"v": 1, "type": "stats", "report": {"fps": 29.5, "frames_decoded": 100, "width": None}},
        {"v": 1, "type": "leave"},
    ]
    for message in ok:
        assert protocol.parse(json.dumps(message)).type == message["type"]
    bad = [
        ({"type": "ping"}, "bad_version"),
        ({"v": 2, "type": "ping"}, "bad_version"),
        ({"v": 1, "type": "dance"}, "unknown_type"),
        ({"v": 1, "type": "join"}, "missing_field"),
        ({"v": 1, "type": "join", "token": 5}, "bad_field"),
        ({"v": 1, "type": "raise_hand", "up": 1}, "bad_field"),
        ({"v": 1, "type": "ping", "extra": 1}, "bad_field"),
        ({"v": 1, "type": "offer", "sdp": "hello"}, "bad_sdp"),
        ({"v": 1, "type": "offer", "sdp": "v=0", "tracks": {"0": "webcam"}}, "bad_field"),
        ({"v": 1, "type": "text", "text": "x" * 501}, "too_long"),
        ({"v": 1, "type": "text", "text": "  "}, "bad_field"),
        ({"v": 1, "type": "stats", "report": {"fps": "fast"}}, "bad_field"),
        ({"v": 1, "type": "join", "token": "t", "lesson_id": True}, "bad_field"),
    ]
    for message, code in bad:
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.parse(json.dumps(message))
        assert e.value.code == code, message
    for raw, code in (("{", "bad_json"), ("[1]", "bad_message"), ('{"v": NaN}', "bad_json"), (b"\x00", "binary_frame")):
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.parse(raw)
        assert e.value.code == code


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries({"v": st.just(1), "type": st.sampled_from(sorted(protocol.SCHEMAS))},
                              optional={"id": JSON, "token": JSON, "sdp": JSON, "up": JSON, "text": JSON,
                                        "report": JSON, "tracks": JSON, "slots": JSON, "participant_id": JSON}),
    )
)
def test_any_json_is_either_a_valid_message_or_a_protocol_error(value: object) -> None:
    try:
        msg = protocol.parse(json.dumps(value))
    except protocol.ProtocolError as exc:
        assert exc.code and exc.message
    else:
        assert msg.type in protocol.SCHEMAS
