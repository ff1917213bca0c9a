"""The catalogue of lesson recordings: what was recorded, where its files are, and in what state.

A row appears when the lead's dump starts (`recording`), becomes `ready` with the finalised file's facts
(duration, size, SHA-256, tracks) or `failed` with the reason, and `deleted` when removed (audited by
the caller). A dump left `recording` by a crash is finalised at the next start (`unfinished`). Thin
I/O over the scheduler's database; the rules of who records and who watches are in
`scheduler/rules/recording.py`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler.db import Database
from scheduler.model import Lesson
from scheduler.repository import Repository
from scheduler.rules.recording import RecordingAudience, RecordingConfig, is_recorded
from scheduler.rules.replay import ReviewFacts, parse_uses, review_refusal
from scheduler.rules.retention import CountyPolicy, Kept, QuotaLevel, usage_by_county

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Recording:
    id: int
    lesson_id: int
    participant: str
    dump_path: str
    path: str | None
    screen_path: str | None
    container: str | None
    state: str
    started_at: float
    finished_at: float | None
    duration_s: float | None
    size_bytes: int | None
    sha256: str | None
    tracks: dict[str, int]
    frames_dropped: int
    error: str | None
    review: str = "pending"  # pending / approved / refused (scheduler/rules/replay.py)
    review_uses: tuple[str, ...] = ()  # approved for: "replay" (other classrooms), "model" (案例观摩)
    reviewed_by: str | None = None
    reviewed_at: float | None = None
    review_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """What the API shows (file paths stay on the server)."""
        return {"id": self.id, "lesson_id": self.lesson_id, "state": self.state, "started_at": self.started_at,
                "finished_at": self.finished_at, "duration_s": self.duration_s, "size_bytes": self.size_bytes,
                "container": self.container, "tracks": self.tracks, "has_screen": bool(self.screen_path),
                "frames_dropped": self.frames_dropped, "error": self.error, "review": self.review,
                "review_uses": list(self.review_uses), "reviewed_by": self.reviewed_by,
                "reviewed_at": self.reviewed_at, "review_reason": self.review_reason}


def _row(r: Any) -> Recording:
    return Recording(r["id"], r["lesson_id"], r["participant"], r["dump_path"], r["path"], r["screen_path"],
                     r["container"], r["state"], r["started_at"], r["finished_at"], r["duration_s"], r["size_bytes"],
                     r["sha256"], json.loads(r["tracks"] or "{}"), r["frames_dropped"], r["error"],
                     r["review"], tuple(u for u in r["review_uses"].split(",") if u), r["reviewed_by"],
                     r["reviewed_at"], r["review_reason"])


class ReviewRefused(ValueError):
    """A review decision refused: `code` is stable (pages translate it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Recordings:
    def __init__(self, db: Database, repo: Repository, config: RecordingConfig, folder: Path) -> None:
        self.db = db
        self.repo = repo
        self.config = config
        self.folder = folder

    # ---- whether to record ------------------------------------------------------------------------
    def choice(self, lesson_id: int) -> bool | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT record FROM recording_choice WHERE lesson_id = ?", (lesson_id,)).fetchone()
        return None if row is None else bool(row["record"])

    def set_choice(self, lesson_id: int, record: bool | None, actor: str, reason: str) -> None:
        """An administrator's choice for one lesson (None: back to the county's and kind's rule)."""
        with self.db.write() as conn:
            if record is None:
                conn.execute("DELETE FROM recording_choice WHERE lesson_id = ?", (lesson_id,))
            else:
                conn.execute(
                    "INSERT INTO recording_choice(lesson_id, record, actor, at, reason) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(lesson_id) DO UPDATE SET record = excluded.record, actor = excluded.actor, "
                    "at = excluded.at, reason = excluded.reason",
                    (lesson_id, int(record), actor[:200], time.time(), reason[:500]),
                )

    def lead_county(self, lesson: Lesson) -> int | None:
        classroom = next((c for c in self.repo.classrooms() if c.id == lesson.lead_classroom_id), None)
        if classroom is None:
            return None
        school = next((s for s in self.repo.schools() if s.id == classroom.school_id), None)
        return school.county_id if school is not None else None

    def records(self, lesson: Lesson) -> bool:
        county = self.lead_county(lesson)
        full = county is not None and self.county_full(county)
        if full:
            log.warning("lesson %d: not recorded, county %d has used its recordings' disk quota", lesson.id, county)
        return is_recorded(self.config, lesson, county, self.choice(lesson.id), county_full=full)

    def county_full(self, county_id: int) -> bool:
        """Whether the county's recordings have used its disk quota (a county without a quota never is)."""
        usage = usage_by_county([k for k in self.kept() if k.county_id == county_id], self.policies(),
                                self.config.quota_gb, self.config.quota_warn_share)
        return any(u.county_id == county_id and u.level == QuotaLevel.OVER for u in usage)

    # ---- what the media plane tells -----------------------------------------------------------------
    def started(self, lesson_id: int, participant: str, dump: str, at: float) -> int:
        with self.db.write() as conn:
            row = conn.execute("SELECT id FROM recording WHERE dump_path = ?", (dump,)).fetchone()
            if row is not None:
                return int(row["id"])
            cur = conn.execute(
                "INSERT INTO recording(lesson_id, participant, dump_path, state, started_at) "
                "VALUES (?, ?, ?, 'recording', ?)", (lesson_id, participant, dump, at))
            return int(cur.lastrowid or 0)

    def finished(self, lesson_id: int, participant: str, dump: str, facts: dict[str, Any]) -> None:
        """A dump finalised: its file's facts (`media.recording.RecordingInfo.to_json()`)."""
        self.started(lesson_id, participant, dump, float(facts.get("started_at") or time.time()))
        with self.db.write() as conn:
            conn.execute(
                "UPDATE recording SET state = 'ready', path = ?, screen_path = ?, container = ?, finished_at = ?, "
                "duration_s = ?, size_bytes = ?, sha256 = ?, tracks = ?, frames_dropped = ?, error = ? "
                "WHERE dump_path = ?",
                (facts["path"], facts.get("screen_path"), facts.get("container"), time.time(),
                 facts.get("duration_s"), facts.get("size_bytes"), facts.get("sha256"),
                 json.dumps(facts.get("tracks") or {}), int(facts.get("frames_dropped") or 0),
                 facts.get("write_error"), dump),
            )

    def failed(self, lesson_id: int, participant: str, dump: str, error: str, *, still_live: bool = False) -> None:
        """The dump stopped (a full disk: the lesson goes on, unrecorded from then) or could not be finalised."""
        self.started(lesson_id, participant, dump, time.time())
        with self.db.write() as conn:
            if still_live:
                conn.execute("UPDATE recording SET error = ? WHERE dump_path = ?", (error[:500], dump))
            else:
                conn.execute("UPDATE recording SET state = 'failed', error = ?, finished_at = ? WHERE dump_path = ?",
                             (error[:500], time.time(), dump))

    def unfinished(self, before: float) -> list[Recording]:
        """Dumps left `recording` by a crash: started before this process (`before`), to finalise now (a
        lesson live again after a restart writes a new dump of its own)."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT * FROM recording WHERE state = 'recording' AND started_at < ? ORDER BY id",
                                (before,)).fetchall()
        return [_row(r) for r in rows]

    def mark_deleted(self, recording_id: int) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE recording SET state = 'deleted', deleted_at = ? WHERE id = ?",
                         (time.time(), recording_id))

    def delete_files(self, recording_id: int) -> Recording | None:
        """Remove a recording's files (camera, courseware, dump) and mark it deleted; the caller audits. None if
        there is no such recording. Raises OSError when a file cannot be removed (then nothing is marked)."""
        rec = self.get(recording_id)
        if rec is None:
            return None
        for path in (rec.path, rec.screen_path, rec.dump_path):
            if path:
                Path(path).unlink(missing_ok=True)
        self.mark_deleted(recording_id)
        return self.get(recording_id)

    # ---- retention and quota (scheduler/rules/retention.py) -----------------------------------------
    def kept(self) -> list[Kept]:
        """Recordings whose files are on disk (finished or failed), with their county and whether a replay
        scheduled from them has yet to air."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT r.id, s.county_id, coalesce(r.finished_at, r.started_at), coalesce(r.size_bytes, 0), "
                "EXISTS (SELECT 1 FROM lesson p WHERE p.replay_of = r.id AND p.status IN ('scheduled', 'open', "
                "'live', 'awaiting_evidence')) FROM recording r JOIN lesson l ON l.id = r.lesson_id "
                "JOIN classroom c ON c.id = l.lead_classroom_id JOIN school s ON s.id = c.school_id "
                "WHERE r.state IN ('ready', 'failed')"
            ).fetchall()
        return [Kept(int(r[0]), r[1], float(r[2]), int(r[3]), bool(r[4])) for r in rows]

    def policies(self) -> dict[int, CountyPolicy]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT id, recording_retention_days, recording_quota_mb FROM county").fetchall()
        return {int(r[0]): CountyPolicy(r[1], r[2]) for r in rows}

    def set_policy(self, county_id: int, retention_days: int | None, quota_mb: int | None) -> bool:
        """A county's own retention period (days) and disk quota (MB); None: the installation's default."""
        if retention_days is not None and retention_days < 1:
            raise ValueError("retention_days is at least 1 (or null for the default)")
        if quota_mb is not None and quota_mb < 1:
            raise ValueError("quota_mb is at least 1 (or null for the default)")
        with self.db.write() as conn:
            cur = conn.execute("UPDATE county SET recording_retention_days = ?, recording_quota_mb = ? WHERE id = ?",
                               (retention_days, quota_mb, county_id))
            return cur.rowcount == 1

    # ---- review (scheduler/rules/replay.py) ---------------------------------------------------------
    def approve(
        self, recording_id: int, reviewer: str, approved: bool, reason: str,
        uses: tuple[str, ...] = ("replay",), reviewer_counties: frozenset[int] | None = None,
    ) -> Recording:
        """A reviewer's decision, kept in the append-only review history: approved for `uses`, or refused
        (which also withdraws an earlier approval). `reviewer_counties`: the counties the reviewer reviews
        for (None: the caller checked already). Raises ReviewRefused."""
        rec = self.get(recording_id)
        lesson = self.repo.lesson(rec.lesson_id) if rec is not None else None
        if rec is None or lesson is None:
            raise ReviewRefused("not_found", "no such recording")
        uses = parse_uses(list(uses)) if approved else ()
        if reviewer_counties is not None:
            counties = self.audience(lesson).county_ids
            lead = self.lead_county(lesson)
            facts = ReviewFacts(rec.state, frozenset({lead}) if lead is not None else counties)
            refusal = review_refusal(facts, reviewer_counties, approved, reason)
            if refusal is not None:
                raise ReviewRefused(*refusal)
        elif not reason.strip():
            raise ReviewRefused("reason_needed", "a review needs a reason")
        elif approved and rec.state != "ready":
            raise ReviewRefused("not_ready", f"only a finished recording can be approved (this one is {rec.state})")
        now = time.time()
        with self.db.write() as conn:
            conn.execute(
                "UPDATE recording SET review = ?, review_uses = ?, reviewed_by = ?, reviewed_at = ?, review_reason = ? "
                "WHERE id = ?",
                ("approved" if approved else "refused", ",".join(uses), reviewer[:200], now, reason[:500],
                 recording_id),
            )
            conn.execute(
                "INSERT INTO recording_review(recording_id, reviewer, approved, uses, reason, at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (recording_id, reviewer[:200], int(approved), ",".join(uses),
                                              reason[:500], now))
        found = self.get(recording_id)
        assert found is not None
        return found

    def reviews(self, recording_id: int) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT * FROM recording_review WHERE recording_id = ? ORDER BY id",
                                (recording_id,)).fetchall()
        return [{**dict(r), "approved": bool(r["approved"]), "uses": [u for u in r["uses"].split(",") if u]}
                for r in rows]

    def grant_reviewer(self, teacher_id: int, county_id: int, actor: str) -> None:
        """The county's administrator makes a teacher (e.g. a 教研员) a reviewer of the county's recordings."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO reviewer(teacher_id, county_id, granted_by, granted_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(teacher_id, county_id) DO NOTHING", (teacher_id, county_id, actor[:200], time.time()))

    def revoke_reviewer(self, teacher_id: int, county_id: int) -> bool:
        with self.db.write() as conn:
            cur = conn.execute("DELETE FROM reviewer WHERE teacher_id = ? AND county_id = ?", (teacher_id, county_id))
            return cur.rowcount == 1

    def reviewer_counties(self, teacher_id: int | None) -> frozenset[int]:
        if teacher_id is None:
            return frozenset()
        with self.db.read() as conn:
            rows = conn.execute("SELECT county_id FROM reviewer WHERE teacher_id = ?", (teacher_id,))
            return frozenset(int(r[0]) for r in rows)

    def reviewers(self, county_id: int | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM reviewer", ()
        if county_id is not None:
            sql, args = sql + " WHERE county_id = ?", (county_id,)
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(sql + " ORDER BY county_id, teacher_id", args)]

    # ---- what people find ---------------------------------------------------------------------------
    def get(self, recording_id: int) -> Recording | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM recording WHERE id = ?", (recording_id,)).fetchone()
        return _row(row) if row else None

    def of_lessons(self, lesson_ids: list[int] | None = None, states: tuple[str, ...] = ("ready",)) -> list[Recording]:
        marks = ",".join("?" * len(states))
        sql = f"SELECT * FROM recording WHERE state IN ({marks})"
        args: list[Any] = list(states)
        if lesson_ids is not None:
            if not lesson_ids:
                return []
            sql += f" AND lesson_id IN ({','.join('?' * len(lesson_ids))})"
            args += lesson_ids
        with self.db.read() as conn:
            rows = conn.execute(sql + " ORDER BY started_at DESC, id DESC", args).fetchall()
        return [_row(r) for r in rows]

    def audience(self, lesson: Lesson, recording: Recording | None = None) -> RecordingAudience:
        """The lesson's audience as the playback rule needs it; with the recording, what its review and the
        replays scheduled from it add."""
        school_of = {c.id: c.school_id for c in self.repo.classrooms()}
        county_of = {s.id: s.county_id for s in self.repo.schools()}
        receiving = frozenset(school_of[c] for c in lesson.receiving_classroom_ids if c in school_of)
        schools = {school_of.get(lesson.lead_classroom_id), *receiving} - {None}
        counties = frozenset(county_of[s] for s in schools if s in county_of)
        members = self.repo.community_members(lesson.community_id)
        lead_school = school_of.get(lesson.lead_classroom_id)
        lead_county = county_of.get(lead_school) if lead_school is not None else None
        if recording is None:
            return RecordingAudience(lesson, counties, receiving, members, lead_county)
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT r.classroom_id FROM lesson l JOIN lesson_receiver r ON r.lesson_id = l.id "
                "WHERE l.replay_of = ? AND l.status != 'cancelled'", (recording.id,)).fetchall()
        replay_schools = frozenset(school_of[r[0]] for r in rows if r[0] in school_of)
        replay_counties = frozenset(county_of[s] for s in replay_schools if s in county_of)
        uses = frozenset(recording.review_uses) if recording.review == "approved" else frozenset()
        return RecordingAudience(lesson, counties, receiving, members, lead_county, uses, replay_schools,
                                 replay_counties)
