"""Rows of access control: accounts, enrolment links, the enrolled device of each classroom, the audit trail.

Every admission and refusal goes to the `audit` table (who, role, lesson, address, time, reason), which
administrators read through the API. Only ids and account names are stored, no other personal data.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scheduler.db import Database
from signaling.access import check_current
from signaling.passwords import hash_password, verify_password
from signaling.tokens import Claims

ACCOUNT_ROLES = ("admin", "teacher", "technician")

# Owned by signaling and made here (not in scheduler's migrations): each account's credential generation,
# moved on by a disable, a password reset or a change of role or scope, and a technician's region scope.
ACCESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS account_access (
    account_id INTEGER PRIMARY KEY REFERENCES account(id), generation INTEGER NOT NULL DEFAULT 0,
    region_id INTEGER REFERENCES region(id)) WITHOUT ROWID;
"""
ACCOUNT_SELECT = (
    "SELECT a.*, coalesce(x.generation, 0) AS generation, x.region_id AS region_id "
    "FROM account a LEFT JOIN account_access x ON x.account_id = a.id"
)


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    role: str
    teacher_id: int | None
    county_id: int | None
    disabled: bool
    generation: int = 0
    region_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "teacher_id": self.teacher_id,
            "county_id": self.county_id,
            "region_id": self.region_id,
            "disabled": self.disabled,
        }


class AccessStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        with self.db.write() as conn:
            conn.execute(ACCESS_SCHEMA)

    # ---- audit --------------------------------------------------------------------------------
    def audit(
        self,
        actor: str,
        role: str,
        action: str,
        outcome: str,
        *,
        lesson_id: int | None = None,
        address: str | None = None,
        reason: str = "",
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO audit(at, actor, role, action, lesson_id, address, outcome, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (int(self.clock()), actor[:200], role[:40], action[:60], lesson_id, (address or "")[:64], outcome,
                 reason[:500]),
            )

    def audit_rows(
        self, lesson_id: int | None = None, outcome: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        sql = "SELECT id, at, actor, role, action, lesson_id, address, outcome, reason FROM audit"
        where, args = [], []
        if lesson_id is not None:
            where.append("lesson_id = ?")
            args.append(lesson_id)
        if outcome:
            where.append("outcome = ?")
            args.append(outcome)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(max(1, min(limit, 10000)))
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(sql, args)]

    # ---- accounts -------------------------------------------------------------------------------
    def create_account(
        self,
        username: str,
        password: str,
        role: str,
        teacher_id: int | None = None,
        county_id: int | None = None,
        region_id: int | None = None,
    ) -> Account:
        username = username.strip()
        if not 1 <= len(username) <= 64:
            raise ValueError("a username has 1 to 64 characters")
        _check_scope(role, teacher_id, county_id, region_id)
        hashed = hash_password(password)
        try:
            with self.db.write() as conn:
                cur = conn.execute(
                    "INSERT INTO account(username, role, teacher_id, county_id, password_hash, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (username, role, teacher_id, county_id, hashed, int(self.clock())),
                )
                new_id = int(cur.lastrowid or 0)
                conn.execute("INSERT INTO account_access(account_id, generation, region_id) VALUES (?, 0, ?)",
                             (new_id, region_id))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise ValueError(f"the username {username!r} is taken") from None
            raise ValueError("no such teacher, county or region") from None
        account = self.account(new_id)
        assert account is not None
        return account

    def account(self, account_id: int) -> Account | None:
        with self.db.read() as conn:
            row = conn.execute(ACCOUNT_SELECT + " WHERE a.id = ?", (account_id,)).fetchone()
        return _account(row) if row else None

    def accounts(self) -> list[Account]:
        with self.db.read() as conn:
            return [_account(r) for r in conn.execute(ACCOUNT_SELECT + " ORDER BY a.id")]

    def check_login(self, username: str, password: str) -> Account | None:
        with self.db.read() as conn:
            row = conn.execute(ACCOUNT_SELECT + " WHERE a.username = ?", (username.strip(),)).fetchone()
        if row is None:
            from signaling.passwords import dummy_verify

            dummy_verify(password)
            return None
        if not verify_password(password, row["password_hash"]) or row["disabled"]:
            return None
        return _account(row)

    def _next_generation(self, conn: sqlite3.Connection, account_id: int) -> None:
        """Every token issued from the account so far stops working (checked on each request and join)."""
        conn.execute(
            "INSERT INTO account_access(account_id, generation) VALUES (?, 1) "
            "ON CONFLICT(account_id) DO UPDATE SET generation = generation + 1",
            (account_id,),
        )

    def set_password(self, account_id: int, password: str) -> None:
        hashed = hash_password(password)
        with self.db.write() as conn:
            if conn.execute("UPDATE account SET password_hash = ? WHERE id = ?", (hashed, account_id)).rowcount != 1:
                raise LookupError(f"no account #{account_id}")
            self._next_generation(conn, account_id)

    def set_disabled(self, account_id: int, disabled: bool) -> None:
        with self.db.write() as conn:
            done = conn.execute("UPDATE account SET disabled = ? WHERE id = ?", (int(disabled), account_id)).rowcount
            if done != 1:
                raise LookupError(f"no account #{account_id}")
            self._next_generation(conn, account_id)

    def set_scope(
        self, account_id: int, role: str, teacher_id: int | None, county_id: int | None, region_id: int | None
    ) -> None:
        """A new role or scope: the tokens that carry the old one stop working."""
        _check_scope(role, teacher_id, county_id, region_id)
        try:
            with self.db.write() as conn:
                done = conn.execute(
                    "UPDATE account SET role = ?, teacher_id = ?, county_id = ? WHERE id = ?",
                    (role, teacher_id, county_id, account_id),
                ).rowcount
                if done != 1:
                    raise LookupError(f"no account #{account_id}")
                self._next_generation(conn, account_id)
                conn.execute("UPDATE account_access SET region_id = ? WHERE account_id = ?", (region_id, account_id))
        except sqlite3.IntegrityError:
            raise ValueError("no such teacher, county or region") from None

    def check_current(self, claims: Claims) -> None:
        """Raise TokenRefused unless the account and the device a token came from are still in force."""
        account = self.account(claims.account_id) if claims.account_id is not None else None
        device = None
        if claims.device_id is not None and claims.classroom_id is not None:
            device = self.current_device(claims.classroom_id)
        check_current(claims, account, device)

    def has_admin(self) -> bool:
        with self.db.read() as conn:
            return conn.execute("SELECT 1 FROM account WHERE role = 'admin' AND disabled = 0").fetchone() is not None

    # ---- enrolment links and devices ------------------------------------------------------------
    def add_enrolment(self, classroom_id: int, jti: str, expires_at: int, actor: str) -> int:
        with self.db.write() as conn:
            cur = conn.execute(
                "INSERT INTO enrolment(classroom_id, jti, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, ?)",
                (classroom_id, jti, int(self.clock()), expires_at, actor),
            )
            return int(cur.lastrowid or 0)

    def enrolment(self, jti: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM enrolment WHERE jti = ?", (jti,)).fetchone()
        return dict(row) if row else None

    def enrolments(self, classroom_id: int | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT e.id, e.classroom_id, e.jti, e.created_at, e.expires_at, e.created_by, e.revoked_at, "
            "d.device_id IS NOT NULL AS enrolled, d.enrolled_at FROM enrolment e "
            "LEFT JOIN classroom_device d ON d.classroom_id = e.classroom_id"
        )
        args: list[Any] = []
        if classroom_id is not None:
            sql += " WHERE e.classroom_id = ?"
            args.append(classroom_id)
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(sql + " ORDER BY e.id DESC", args)]

    def revoke_enrolment(self, enrolment_id: int) -> dict[str, Any]:
        with self.db.write() as conn:
            row = conn.execute("SELECT * FROM enrolment WHERE id = ?", (enrolment_id,)).fetchone()
            if row is None:
                raise LookupError(f"no enrolment link #{enrolment_id}")
            conn.execute(
                "UPDATE enrolment SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (int(self.clock()), enrolment_id),
            )
            # the device enrolled through it loses access too
            conn.execute("DELETE FROM classroom_device WHERE classroom_id = ?", (row["classroom_id"],))
        return dict(row)

    def enrol_device(self, classroom_id: int, address: str) -> tuple[str, str | None]:
        """A new device id for the classroom; returns (new id, the id it replaced or None)."""
        device_id = secrets.token_urlsafe(12)
        with self.db.write() as conn:
            old = conn.execute(
                "SELECT device_id FROM classroom_device WHERE classroom_id = ?", (classroom_id,)
            ).fetchone()
            conn.execute(
                "INSERT INTO classroom_device(classroom_id, device_id, enrolled_at, address) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(classroom_id) DO UPDATE SET device_id = excluded.device_id, "
                "enrolled_at = excluded.enrolled_at, address = excluded.address",
                (classroom_id, device_id, int(self.clock()), address[:64]),
            )
        return device_id, (old[0] if old else None)

    def current_device(self, classroom_id: int) -> str | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT device_id FROM classroom_device WHERE classroom_id = ?", (classroom_id,)
            ).fetchone()
        return str(row[0]) if row else None


def _account(r: sqlite3.Row) -> Account:
    return Account(
        id=int(r["id"]),
        username=str(r["username"]),
        role=str(r["role"]),
        teacher_id=r["teacher_id"],
        county_id=r["county_id"],
        disabled=bool(r["disabled"]),
        generation=int(r["generation"]),
        region_id=r["region_id"],
    )


def _check_scope(role: str, teacher_id: int | None, county_id: int | None, region_id: int | None) -> None:
    if role not in ACCOUNT_ROLES:
        raise ValueError(f"role must be one of {', '.join(ACCOUNT_ROLES)}")
    if role == "teacher" and teacher_id is None:
        raise ValueError("a teacher account names its teacher (teacher_id)")
    if role == "technician" and county_id is None and region_id is None:
        raise ValueError("a technician account names the county (county_id) or region (region_id) it looks after")
