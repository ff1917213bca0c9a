"""Signed, expiring access tokens (JWT, HS256, PyJWT) and their revocation.

One signing key per installation, generated on first start into the data folder with owner-only
permissions. Every token names a type (what it is for), a role, a subject and its scope; join tokens
carry the lesson and are valid only inside the lesson's window (`nbf`/`exp`), and admission checks
the window again against the database, because a lesson can be moved or cancelled after issue.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt

from scheduler.db import Database

ISSUER = "live-classroom"
ALGORITHM = "HS256"


class Role(StrEnum):
    LEAD = "lead"
    RECEIVER = "receiver"
    OBSERVER = "observer"
    TECHNICIAN = "technician"
    ADMIN = "admin"
    NODE = "node"
    TEACHER = "teacher"  # a logged-in teacher: asks for lead or observer join tokens


class TokenType(StrEnum):
    SESSION = "session"  # a login (admin, teacher, technician)
    JOIN = "join"  # one lesson, one role, inside the lesson's window
    ENROL = "enrol"  # the enrolment link of one receiving classroom
    DEVICE = "device"  # the classroom PC that opened the enrolment link
    NODE = "node"  # a media/edge node


class TokenRefused(Exception):
    """A token or admission refused; `code` is stable (pages translate it), `message` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Claims:
    jti: str
    typ: TokenType
    role: Role
    sub: str  # "teacher:5", "classroom:7", "account:3", "admin-token"
    iat: int
    exp: int
    nbf: int | None = None
    lesson_id: int | None = None
    classroom_id: int | None = None
    teacher_id: int | None = None
    county_id: int | None = None
    device_id: str | None = None
    account_id: int | None = None
    region_id: int | None = None
    # the account's credential generation when the token was issued: a disable, password reset, role or
    # scope change moves the account on and every token of the old generation is refused
    generation: int | None = None
    via: str | None = None  # a join token: who granted it ("admin", "teacher", "device")

    def to_json(self) -> dict[str, Any]:
        return {
            "jti": self.jti,
            "typ": self.typ.value,
            "role": self.role.value,
            "sub": self.sub,
            "exp": self.exp,
            "nbf": self.nbf,
            "lesson_id": self.lesson_id,
            "classroom_id": self.classroom_id,
            "teacher_id": self.teacher_id,
            "county_id": self.county_id,
            "region_id": self.region_id,
        }


_SCOPE_CLAIMS = {
    "lesson_id": "lesson",
    "classroom_id": "classroom",
    "teacher_id": "teacher",
    "county_id": "county",
    "device_id": "dev",
    "account_id": "acct",
    "region_id": "region",
    "generation": "gen",
    "via": "via",
}


def load_or_create_key(path: Path) -> bytes:
    """The installation's signing key: read from `path`, or 32 random bytes written there with mode 0600."""
    if path.exists():
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        if len(key) < 32:
            raise ValueError(f"the signing key in {path} is too short; delete it to make a new one")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once never overwrite each other's key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


class TokenService:
    def __init__(self, key: bytes, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.db = db
        self.clock = clock

    def issue(
        self,
        typ: TokenType,
        role: Role,
        sub: str,
        *,
        expires_at: float,
        not_before: float | None = None,
        **scope: int | str | None,
    ) -> tuple[str, Claims]:
        now = int(self.clock())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "jti": secrets.token_urlsafe(12),
            "typ": typ.value,
            "role": role.value,
            "sub": sub,
            "iat": now,
            "exp": int(expires_at),
        }
        if not_before is not None:
            payload["nbf"] = int(not_before)
        for name, value in scope.items():
            if name not in _SCOPE_CLAIMS:
                raise TypeError(f"unknown scope {name}")
            if value is not None:
                payload[_SCOPE_CLAIMS[name]] = value
        token = jwt.encode(payload, self._key, algorithm=ALGORITHM)
        return token, _claims(payload)

    def sign(self, message: bytes) -> str:
        """An HMAC-SHA256 of `message` under the signing key (short-lived links, e.g. to a recording)."""
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, token: object, types: Iterable[TokenType]) -> Claims:
        """The claims of a valid, unrevoked token of one of `types`; else TokenRefused with the reason."""
        if not isinstance(token, str) or not token:
            raise TokenRefused("missing_token", "no access token")
        if len(token) > 4096:
            raise TokenRefused("malformed", "the access token is too long")
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # PyJWT would read the clock itself; checking exp/nbf below keeps one clock (tests move it)
                # and keeps the refusal reasons precise.
                options={
                    "require": ["exp", "iat", "jti", "sub", "typ", "role"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenRefused("bad_signature", "the access token is not signed by this server") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("bad_signature", "the access token was not issued by this server") from None
        except jwt.PyJWTError as exc:
            raise TokenRefused("malformed", f"the access token is not valid: {exc}") from None
        try:
            claims = _claims(payload)
        except (KeyError, ValueError, TypeError):
            raise TokenRefused("malformed", "the access token has wrong or missing fields") from None
        now = self.clock()
        if now >= claims.exp:
            raise TokenRefused("expired", "the access token has expired")
        if claims.nbf is not None and now < claims.nbf:
            raise TokenRefused("not_yet_valid", "the access token is not valid yet (the lesson window is not open)")
        if claims.typ not in set(types):
            raise TokenRefused("wrong_type", f"a {claims.typ.value} token cannot be used here")
        if self.is_revoked(claims.jti):
            raise TokenRefused("revoked", "the access token has been revoked")
        return claims

    def peek(self, token: str) -> Claims | None:
        """Claims of a token signed by us, ignoring time and revocation (to revoke or audit it)."""
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
            return _claims(payload)
        except (jwt.PyJWTError, KeyError, ValueError, TypeError):
            return None

    def revoke(self, claims: Claims, actor: str, reason: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO revoked_token(jti, revoked_at, expires_at, actor, reason) "
                "VALUES (?, ?, ?, ?, ?)",
                (claims.jti, int(self.clock()), claims.exp, actor, reason),
            )
            # expired tokens are refused anyway: keep the table small
            conn.execute("DELETE FROM revoked_token WHERE expires_at < ?", (int(self.clock()) - 86400,))

    def is_revoked(self, jti: str) -> bool:
        with self.db.read() as conn:
            return conn.execute("SELECT 1 FROM revoked_token WHERE jti = ?", (jti,)).fetchone() is not None


def _claims(p: dict[str, Any]) -> Claims:
    def opt_int(name: str) -> int | None:
        v = p.get(name)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(name)
        return v

    nbf = p.get("nbf")
    dev = p.get("dev")
    via = p.get("via")
    return Claims(
        jti=str(p["jti"]),
        typ=TokenType(p["typ"]),
        role=Role(p["role"]),
        sub=str(p["sub"]),
        iat=int(p["iat"]),
        exp=int(p["exp"]),
        nbf=None if nbf is None else int(nbf),
        lesson_id=opt_int("lesson"),
        classroom_id=opt_int("classroom"),
        teacher_id=opt_int("teacher"),
        county_id=opt_int("county"),
        device_id=None if dev is None else str(dev),
        account_id=opt_int("acct"),
        region_id=opt_int("region"),
        generation=opt_int("gen"),
        via=None if via is None else str(via),
    )
