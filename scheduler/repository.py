"""Rows in and out of the database. No rules here: callers check, the repository stores and finds.

Times are stored as integer UTC epoch seconds; the queries that find possibly-overlapping lessons go
through the (resource, start) indexes and a bounded look-back of the longest lesson allowed, so a
conflict check never scans the timetable.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime

from scheduler.db import Database
from scheduler.model import (
    City,
    Classroom,
    Community,
    County,
    Evidence,
    Kind,
    LedgerEntry,
    Lesson,
    LessonDraft,
    LessonStatus,
    Level,
    Region,
    School,
    Semester,
    Teacher,
)
from scheduler.rules.replay import ReplaySource

MAX_LESSON_SECONDS = 4 * 3600  # a lesson longer than this is refused, which bounds the overlap look-back


def to_epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def lesson_key(draft: LessonDraft | Lesson) -> str:
    """A lesson's identity for re-imports: who teaches, where, when; a replay: which recording, to which
    classrooms, when (its lead teacher and classroom are the recording's, and hold nothing at that time)."""
    if draft.replay_of is not None:
        rooms = ",".join(str(c) for c in sorted(draft.receiving_classroom_ids))
        return f"replay:{draft.replay_of}:{rooms}:{to_epoch(draft.start)}"
    return f"{draft.lead_teacher_id}:{draft.lead_classroom_id}:{to_epoch(draft.start)}"


LESSON_COLUMNS = (
    "id, kind, subject, grade, lead_teacher_id, lead_classroom_id, community_id, semester_id, "
    "series_id, start_utc, end_utc, status, hours, replay_of, credits_lead"
)
UNSETTLED_SQL = "('scheduled', 'open', 'live')"  # what the timed jobs open and settle (not awaiting_evidence)


class Repository:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock  # the time stamp of every row written (tests replay a semester with their own)

    def now(self) -> int:
        return int(self.clock())

    # ---- places and people -------------------------------------------------------------
    def add_region(self, conn: sqlite3.Connection, name: str) -> int:
        return _insert(conn, "INSERT INTO region(name) VALUES (?)", (name,))

    def add_city(self, conn: sqlite3.Connection, region_id: int, name: str) -> int:
        return _insert(conn, "INSERT INTO city(region_id, name) VALUES (?, ?)", (region_id, name))

    def add_county(
        self, conn: sqlite3.Connection, city_id: int, name: str, factor: float = 1.5, standard_minutes: int = 40
    ) -> int:
        cid = _insert(
            conn,
            "INSERT INTO county(city_id, name, workload_factor, standard_lesson_minutes) VALUES (?, ?, ?, ?)",
            (city_id, name, factor, standard_minutes),
        )
        # the factor a county starts with applies to all its lessons, however early
        conn.execute(
            "INSERT INTO county_factor(county_id, since, factor, set_at, actor) VALUES (?, '0001-01-01', ?, ?, ?)",
            (cid, factor, self.now(), "system"),
        )
        return cid

    def add_school(self, conn: sqlite3.Connection, school: School) -> int:
        return _insert(
            conn,
            "INSERT INTO school(county_id, name, is_lead, is_receiving, is_teaching_point, bandwidth_mbps) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                school.county_id,
                school.name,
                int(school.is_lead),
                int(school.is_receiving),
                int(school.is_teaching_point),
                school.bandwidth_mbps,
            ),
        )

    def add_classroom(self, conn: sqlite3.Connection, school_id: int, name: str) -> int:
        return _insert(conn, "INSERT INTO classroom(school_id, name) VALUES (?, ?)", (school_id, name))

    def add_teacher(self, conn: sqlite3.Connection, teacher: Teacher) -> int:
        return _insert(
            conn,
            "INSERT INTO teacher(school_id, name, level, subjects) VALUES (?, ?, ?, ?)",
            (teacher.school_id, teacher.name, Level(teacher.level).value, ",".join(teacher.subjects)),
        )

    def add_semester(
        self, conn: sqlite3.Connection, semester: Semester, holiday_names: dict[date, str] | None = None
    ) -> int:
        sid = _insert(
            conn,
            "INSERT INTO semester(name, start_date, end_date) VALUES (?, ?, ?)",
            (semester.name, semester.start.isoformat(), semester.end.isoformat()),
        )
        conn.executemany(
            "INSERT INTO holiday(semester_id, day, name) VALUES (?, ?, ?)",
            [(sid, d.isoformat(), (holiday_names or {}).get(d, "")) for d in sorted(semester.holidays)],
        )
        conn.executemany(
            "INSERT INTO makeup_day(semester_id, day) VALUES (?, ?)",
            [(sid, d.isoformat()) for d in sorted(semester.makeup_days)],
        )
        return sid

    def add_community(self, conn: sqlite3.Connection, county_id: int, name: str, members: Iterable[int]) -> int:
        cid = _insert(conn, "INSERT INTO community(county_id, name) VALUES (?, ?)", (county_id, name))
        conn.executemany(
            "INSERT INTO community_member(community_id, teacher_id) VALUES (?, ?)",
            [(cid, t) for t in members],
        )
        return cid

    def community_members(self, community_id: int | None) -> frozenset[int]:
        """The teacher ids of a research community (empty for None or an unknown community)."""
        if community_id is None:
            return frozenset()
        with self.db.read() as c:
            rows = c.execute("SELECT teacher_id FROM community_member WHERE community_id = ?", (community_id,))
            return frozenset(r[0] for r in rows)

    def set_county_factor(
        self, conn: sqlite3.Connection, county_id: int, factor: float, since: date, actor: str = "system"
    ) -> bool:
        """The factor from `since` on (earlier lessons keep theirs); the county shows the latest. False if
        there is no such county."""
        if conn.execute("SELECT 1 FROM county WHERE id = ?", (county_id,)).fetchone() is None:
            return False
        conn.execute(
            "INSERT INTO county_factor(county_id, since, factor, set_at, actor) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(county_id, since) DO UPDATE SET factor = excluded.factor, set_at = excluded.set_at, "
            "actor = excluded.actor",
            (county_id, since.isoformat(), factor, self.now(), actor),
        )
        latest = conn.execute(
            "SELECT factor FROM county_factor WHERE county_id = ? ORDER BY since DESC LIMIT 1", (county_id,)
        ).fetchone()
        conn.execute("UPDATE county SET workload_factor = ? WHERE id = ?", (latest[0], county_id))
        return True

    def factor_periods(self, county_id: int) -> list[tuple[date, float]]:
        with self.db.read() as c:
            rows = c.execute("SELECT since, factor FROM county_factor WHERE county_id = ? ORDER BY since", (county_id,))
            return [(date.fromisoformat(r[0]), float(r[1])) for r in rows]

    def set_standard_minutes(self, conn: sqlite3.Connection, county_id: int, minutes: int) -> bool:
        cur = conn.execute("UPDATE county SET standard_lesson_minutes = ? WHERE id = ?", (minutes, county_id))
        return cur.rowcount == 1

    def standard_minutes_by_classroom(self, conn: sqlite3.Connection) -> dict[int, int]:
        """Each classroom's county standard lesson length (for the 课时 of lessons led from it)."""
        rows = conn.execute(
            "SELECT c.id, k.standard_lesson_minutes FROM classroom c JOIN school s ON s.id = c.school_id "
            "JOIN county k ON k.id = s.county_id"
        )
        return {r[0]: int(r[1]) for r in rows}

    def update_teacher(self, conn: sqlite3.Connection, teacher_id: int, changes: dict[str, object]) -> bool:
        """A teacher's name, level (promotion to a backbone level) or subjects; True if the teacher exists."""
        columns = {"name": "name", "level": "level", "subjects": "subjects"}
        return _update(conn, "teacher", teacher_id, columns, changes)

    def update_school(self, conn: sqlite3.Connection, school_id: int, changes: dict[str, object]) -> bool:
        """A school's name, roles or bandwidth; True if the school exists."""
        columns = {k: k for k in ("name", "is_lead", "is_receiving", "is_teaching_point", "bandwidth_mbps")}
        return _update(conn, "school", school_id, columns, changes)

    def regions(self) -> list[Region]:
        with self.db.read() as c:
            return [Region(r["id"], r["name"]) for r in c.execute("SELECT * FROM region ORDER BY id")]

    def cities(self) -> list[City]:
        with self.db.read() as c:
            return [City(r["id"], r["region_id"], r["name"]) for r in c.execute("SELECT * FROM city ORDER BY id")]

    def counties(self) -> list[County]:
        with self.db.read() as c:
            return [
                County(r["id"], r["city_id"], r["name"], r["workload_factor"], r["standard_lesson_minutes"])
                for r in c.execute("SELECT * FROM county ORDER BY id")
            ]

    def schools(self, county_id: int | None = None) -> list[School]:
        sql, args = "SELECT * FROM school", ()
        if county_id is not None:
            sql, args = sql + " WHERE county_id = ?", (county_id,)
        with self.db.read() as c:
            return [_school(r) for r in c.execute(sql + " ORDER BY id", args)]

    def classrooms(self, school_id: int | None = None) -> list[Classroom]:
        sql, args = "SELECT * FROM classroom", ()
        if school_id is not None:
            sql, args = sql + " WHERE school_id = ?", (school_id,)
        with self.db.read() as c:
            return [Classroom(r["id"], r["school_id"], r["name"]) for r in c.execute(sql + " ORDER BY id", args)]

    def teachers(self, school_id: int | None = None) -> list[Teacher]:
        sql, args = "SELECT * FROM teacher", ()
        if school_id is not None:
            sql, args = sql + " WHERE school_id = ?", (school_id,)
        with self.db.read() as c:
            return [_teacher(r) for r in c.execute(sql + " ORDER BY id", args)]

    def semesters(self) -> list[Semester]:
        with self.db.read() as c:
            holidays: dict[int, set[date]] = {}
            for r in c.execute("SELECT semester_id, day FROM holiday"):
                holidays.setdefault(r[0], set()).add(date.fromisoformat(r[1]))
            makeups: dict[int, set[date]] = {}
            for r in c.execute("SELECT semester_id, day FROM makeup_day"):
                makeups.setdefault(r[0], set()).add(date.fromisoformat(r[1]))
            return [
                Semester(
                    r["id"],
                    r["name"],
                    date.fromisoformat(r["start_date"]),
                    date.fromisoformat(r["end_date"]),
                    frozenset(holidays.get(r["id"], ())),
                    frozenset(makeups.get(r["id"], ())),
                )
                for r in c.execute("SELECT * FROM semester ORDER BY start_date")
            ]

    def holiday_names(self, semester_id: int) -> dict[date, str]:
        with self.db.read() as c:
            rows = c.execute("SELECT day, name FROM holiday WHERE semester_id = ?", (semester_id,))
            return {date.fromisoformat(r[0]): r[1] for r in rows}

    def communities(self) -> list[Community]:
        with self.db.read() as c:
            members: dict[int, list[int]] = {}
            for r in c.execute("SELECT community_id, teacher_id FROM community_member ORDER BY teacher_id"):
                members.setdefault(r[0], []).append(r[1])
            return [
                Community(r["id"], r["county_id"], r["name"], tuple(members.get(r["id"], ())))
                for r in c.execute("SELECT * FROM community ORDER BY id")
            ]

    # ---- lessons ---------------------------------------------------------------------------
    def insert_lessons(
        self,
        conn: sqlite3.Connection,
        drafts: Sequence[LessonDraft],
        statuses: Sequence[LessonStatus] | None = None,
    ) -> list[int]:
        """Store drafts (their `hours` filled in by the caller) as scheduled, or with the given statuses."""
        now = self.now()
        ids: list[int] = []
        receivers: list[tuple[int, int, int]] = []
        for i, d in enumerate(drafts):
            start = to_epoch(d.start)
            status = LessonStatus(statuses[i]).value if statuses is not None else "scheduled"
            cur = conn.execute(
                "INSERT INTO lesson(kind, subject, grade, lead_teacher_id, lead_classroom_id, community_id, "
                "semester_id, series_id, start_utc, end_utc, status, lesson_key, created_at, updated_at, hours, "
                "replay_of, credits_lead) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    Kind(d.kind).value,
                    d.subject,
                    d.grade,
                    d.lead_teacher_id,
                    d.lead_classroom_id,
                    d.community_id,
                    d.semester_id,
                    d.series_id,
                    start,
                    to_epoch(d.end),
                    status,
                    lesson_key(d),
                    now,
                    now,
                    d.hours or 1,
                    d.replay_of,
                    0 if d.replay_of is not None and not d.credits_lead else 1,
                ),
            )
            lid = int(cur.lastrowid or 0)
            ids.append(lid)
            receivers.extend((lid, c, start) for c in d.receiving_classroom_ids)
        conn.executemany("INSERT INTO lesson_receiver(lesson_id, classroom_id, start_utc) VALUES (?, ?, ?)", receivers)
        return ids

    def lessons_by_key(self, keys: Iterable[str]) -> dict[str, Lesson]:
        keys = list(keys)
        out: dict[str, Lesson] = {}
        with self.db.read() as c:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = c.execute(
                    f"SELECT {LESSON_COLUMNS}, lesson_key FROM lesson WHERE lesson_key IN ({marks})", chunk
                ).fetchall()
                for lesson in self._with_receivers(c, rows):
                    out[lesson_key(lesson)] = lesson
        return out

    def lesson(self, lesson_id: int) -> Lesson | None:
        with self.db.read() as c:
            rows = c.execute(f"SELECT {LESSON_COLUMNS} FROM lesson WHERE id = ?", (lesson_id,)).fetchall()
            found = self._with_receivers(c, rows)
        return found[0] if found else None

    def lessons(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        teacher_id: int | None = None,
        classroom_id: int | None = None,
        school_id: int | None = None,
        statuses: Iterable[LessonStatus] | None = None,
        limit: int = 5000,
    ) -> list[Lesson]:
        """Lessons starting in [start, end), optionally of one teacher, classroom (either end) or school."""
        where: list[str] = []
        args: list[object] = []
        if start is not None:
            where.append("l.start_utc >= ?")
            args.append(to_epoch(start))
        if end is not None:
            where.append("l.start_utc < ?")
            args.append(to_epoch(end))
        if teacher_id is not None:
            where.append("l.lead_teacher_id = ?")
            args.append(teacher_id)
        if classroom_id is not None:
            where.append(
                "(l.lead_classroom_id = ? OR l.id IN (SELECT lesson_id FROM lesson_receiver WHERE classroom_id = ?))"
            )
            args += [classroom_id, classroom_id]
        if school_id is not None:
            where.append(
                "(l.lead_classroom_id IN (SELECT id FROM classroom WHERE school_id = ?) OR l.id IN "
                "(SELECT r.lesson_id FROM lesson_receiver r JOIN classroom c ON c.id = r.classroom_id "
                "WHERE c.school_id = ?))"
            )
            args += [school_id, school_id]
        if statuses is not None:
            values = [LessonStatus(s).value for s in statuses]
            where.append(f"l.status IN ({','.join('?' * len(values))})")
            args += values
        sql = f"SELECT {', '.join('l.' + c.strip() for c in LESSON_COLUMNS.split(','))} FROM lesson l"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY l.start_utc, l.id LIMIT ?"
        args.append(limit)
        with self.db.read() as c:
            return self._with_receivers(c, c.execute(sql, args).fetchall())

    def overlap_candidates(
        self, conn: sqlite3.Connection, teacher_id: int, classroom_ids: Iterable[int], start: int, end: int
    ) -> list[Lesson]:
        """Lessons that may overlap [start, end) on the teacher or any classroom, found via indexes only."""
        lo = start - MAX_LESSON_SECONDS
        rooms = sorted(set(classroom_ids))
        ids: set[int] = set()
        q = "SELECT id FROM lesson WHERE lead_teacher_id = ? AND start_utc > ? AND start_utc < ?"
        ids.update(r[0] for r in conn.execute(q, (teacher_id, lo, end)))
        for room in rooms:
            q = "SELECT id FROM lesson WHERE lead_classroom_id = ? AND start_utc > ? AND start_utc < ?"
            ids.update(r[0] for r in conn.execute(q, (room, lo, end)))
            q = "SELECT lesson_id FROM lesson_receiver WHERE classroom_id = ? AND start_utc > ? AND start_utc < ?"
            ids.update(r[0] for r in conn.execute(q, (room, lo, end)))
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT {LESSON_COLUMNS} FROM lesson WHERE id IN ({marks}) AND end_utc > ? AND status != 'cancelled'",
            [*sorted(ids), start],
        ).fetchall()
        return self._with_receivers(conn, rows)

    def _with_receivers(self, conn: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> list[Lesson]:
        if not rows:
            return []
        receivers: dict[int, list[int]] = {}
        ids = [r["id"] for r in rows]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = (
                "SELECT lesson_id, classroom_id FROM lesson_receiver "
                f"WHERE lesson_id IN ({','.join('?' * len(chunk))}) ORDER BY classroom_id"
            )
            for lid, cid in conn.execute(q, chunk):
                receivers.setdefault(lid, []).append(cid)
        return [_lesson(r, tuple(receivers.get(r["id"], ()))) for r in rows]

    def set_status(
        self,
        conn: sqlite3.Connection,
        lesson_id: int,
        to: LessonStatus,
        allowed_from: Iterable[LessonStatus],
        settled_at: int | None = None,
    ) -> bool:
        """Move a lesson's status only from one of `allowed_from`; False if it was elsewhere (idempotence).
        A settlement gives `settled_at`, the moment reports as of a past date start counting it."""
        froms = [LessonStatus(s).value for s in allowed_from]
        cur = conn.execute(
            "UPDATE lesson SET status = ?, updated_at = ?, settled_at = coalesce(?, settled_at) "
            f"WHERE id = ? AND status IN ({','.join('?' * len(froms))})",
            [LessonStatus(to).value, self.now(), settled_at, lesson_id, *froms],
        )
        return cur.rowcount == 1

    def due_to_open(self, until: datetime) -> list[Lesson]:
        with self.db.read() as c:
            rows = c.execute(
                f"SELECT {LESSON_COLUMNS} FROM lesson WHERE status = 'scheduled' AND start_utc <= ? ORDER BY start_utc",
                (to_epoch(until),),
            ).fetchall()
            return self._with_receivers(c, rows)

    def unsettled(self, starting_before: datetime) -> list[Lesson]:
        """Lessons not yet settled (scheduled, open or live) that start before a moment: the jobs to derive."""
        with self.db.read() as c:
            rows = c.execute(
                f"SELECT {LESSON_COLUMNS} FROM lesson WHERE start_utc < ? "
                f"AND status IN {UNSETTLED_SQL} ORDER BY start_utc",
                (to_epoch(starting_before),),
            ).fetchall()
            return self._with_receivers(c, rows)

    # ---- replays (录播) -----------------------------------------------------------------------
    def replay_sources(self, conn: sqlite3.Connection, recording_ids: Iterable[int]) -> dict[int, ReplaySource]:
        """The recordings (with their recorded lessons) that replays would show, by id; unknown ids left out."""
        out: dict[int, ReplaySource] = {}
        for rid in sorted(set(recording_ids)):
            row = conn.execute(
                "SELECT lesson_id, state, review, review_uses, duration_s FROM recording WHERE id = ?", (rid,)
            ).fetchone()
            if row is None:
                continue
            lessons = self._with_receivers(
                conn, conn.execute(f"SELECT {LESSON_COLUMNS} FROM lesson WHERE id = ?", (row[0],)).fetchall()
            )
            if lessons:
                uses = frozenset(u for u in str(row[3]).split(",") if u)
                out[rid] = ReplaySource(rid, row[1], row[2], uses, lessons[0], row[4])
        return out

    def replay_recording_of(self, lesson_id: int) -> int | None:
        """The recording of a lesson a replay of it shows: the newest approved for replay, else the newest
        finished one, else the newest (whose state then says why it cannot be replayed)."""
        with self.db.read() as c:
            row = c.execute(
                "SELECT id FROM recording WHERE lesson_id = ? AND state != 'deleted' ORDER BY "
                "(state = 'ready' AND review = 'approved' AND instr(review_uses, 'replay') > 0) DESC, "
                "(state = 'ready') DESC, id DESC LIMIT 1",
                (lesson_id,),
            ).fetchone()
        return int(row[0]) if row else None

    def replay_credit_policy(self, conn: sqlite3.Connection) -> dict[int, bool]:
        """Each classroom's county policy: whether a replay of a lesson led from it credits its lead."""
        rows = conn.execute(
            "SELECT c.id, k.replay_credits_lead FROM classroom c JOIN school s ON s.id = c.school_id "
            "JOIN county k ON k.id = s.county_id"
        )
        return {r[0]: bool(r[1]) for r in rows}

    def set_replay_credit(self, conn: sqlite3.Connection, county_id: int, credits: bool) -> bool:
        cur = conn.execute("UPDATE county SET replay_credits_lead = ? WHERE id = ?", (int(credits), county_id))
        return cur.rowcount == 1

    def replays_due(self, start: datetime, end: datetime) -> list[Lesson]:
        """Replays not yet settled whose lesson starts in [start, end): what the pre-window check looks at."""
        with self.db.read() as c:
            rows = c.execute(
                f"SELECT {LESSON_COLUMNS} FROM lesson WHERE replay_of IS NOT NULL AND start_utc >= ? "
                f"AND start_utc < ? AND status IN {UNSETTLED_SQL} ORDER BY start_utc",
                (to_epoch(start), to_epoch(end)),
            ).fetchall()
            return self._with_receivers(c, rows)

    # ---- evidence, ledger, corrections -------------------------------------------------------
    def record_evidence(
        self,
        conn: sqlite3.Connection,
        lesson_id: int,
        lead_minutes: float | None,
        attended: dict[int, float],
        source: str,
        teachers: dict[int, float] | None = None,
    ) -> None:
        """Store the latest totals; totals only grow, so a late or repeated report never lowers them."""
        now = self.now()
        conn.execute(
            "INSERT INTO evidence(lesson_id, lead_minutes, updated_at, source) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(lesson_id) DO UPDATE SET lead_minutes = max(lead_minutes, excluded.lead_minutes), "
            "updated_at = excluded.updated_at, source = excluded.source",
            (lesson_id, float(lead_minutes or 0.0), now, source),
        )
        conn.executemany(
            "INSERT INTO attendance(lesson_id, classroom_id, minutes, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(lesson_id, classroom_id) DO UPDATE SET minutes = max(minutes, excluded.minutes), "
            "updated_at = excluded.updated_at",
            [(lesson_id, c, float(m), now) for c, m in attended.items()],
        )
        conn.executemany(
            "INSERT INTO teacher_attendance(lesson_id, teacher_id, minutes, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(lesson_id, teacher_id) DO UPDATE SET minutes = max(minutes, excluded.minutes), "
            "updated_at = excluded.updated_at",
            [(lesson_id, t, float(m), now) for t, m in (teachers or {}).items()],
        )

    def evidence(self, conn: sqlite3.Connection, lesson_id: int) -> Evidence:
        row = conn.execute("SELECT lead_minutes FROM evidence WHERE lesson_id = ?", (lesson_id,)).fetchone()
        attended = {
            r[0]: r[1]
            for r in conn.execute("SELECT classroom_id, minutes FROM attendance WHERE lesson_id = ?", (lesson_id,))
        }
        teachers = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT teacher_id, minutes FROM teacher_attendance WHERE lesson_id = ?", (lesson_id,)
            )
        }
        return Evidence(lesson_id, float(row[0]) if row else 0.0, attended, teachers)

    def append_ledger(
        self,
        conn: sqlite3.Connection,
        lesson_id: int,
        entry_type: str,
        teacher_id: int | None,
        school_id: int | None,
        base_hours: float,
        factor: float,
        actor: str,
        reason: str,
        reverses_id: int | None = None,
        at: int | None = None,
    ) -> int:
        return _insert(
            conn,
            "INSERT INTO ledger(lesson_id, entry_type, teacher_id, school_id, base_hours, factor, weighted_hours, "
            "created_at, actor, reason, reverses_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                lesson_id,
                entry_type,
                teacher_id,
                school_id,
                base_hours,
                factor,
                round(base_hours * factor, 4),
                self.now() if at is None else at,
                actor,
                reason,
                reverses_id,
            ),
        )

    def ledger(self, lesson_id: int | None = None, teacher_id: int | None = None) -> list[LedgerEntry]:
        sql, args = "SELECT * FROM ledger", []
        where = []
        if lesson_id is not None:
            where.append("lesson_id = ?")
            args.append(lesson_id)
        if teacher_id is not None:
            where.append("teacher_id = ?")
            args.append(teacher_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.db.read() as c:
            return [_entry(r) for r in c.execute(sql + " ORDER BY id", args)]

    def open_entries(self, conn: sqlite3.Connection, lesson_id: int) -> list[LedgerEntry]:
        """Entries of a lesson that no later entry reverses (what a reversal must cancel)."""
        rows = conn.execute(
            "SELECT * FROM ledger l WHERE lesson_id = ? AND reverses_id IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM ledger r WHERE r.reverses_id = l.id) ORDER BY id",
            (lesson_id,),
        )
        return [_entry(r) for r in rows]

    def add_correction(
        self,
        conn: sqlite3.Connection,
        lesson_id: int,
        from_status: str,
        to_status: str,
        actor: str,
        reason: str,
        *,
        kind: str = "status",
        classroom_id: int | None = None,
        batch: str | None = None,
    ) -> int:
        """A change after settlement, before and after: `status` (from_status -> to_status), `settlement`
        (a lesson awaiting evidence settled by an administrator), `attendance` of one classroom
        (absent/attended), `cancel`. `batch` ties the rows of one bulk operation together."""
        return _insert(
            conn,
            "INSERT INTO correction(lesson_id, from_status, to_status, actor, reason, created_at, kind, "
            "classroom_id, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (lesson_id, from_status, to_status, actor, reason, self.now(), kind, classroom_id, batch),
        )

    def append_credit(
        self,
        conn: sqlite3.Connection,
        lesson_id: int,
        classroom_id: int,
        credit: int,
        actor: str,
        reason: str,
        reverses_id: int | None = None,
        at: int | None = None,
    ) -> int:
        """A receiving classroom credited (+1) with a delivered lesson, or a reversal (-1) of such a credit."""
        return _insert(
            conn,
            "INSERT INTO receiver_credit(lesson_id, classroom_id, school_id, credit, created_at, actor, reason, "
            "reverses_id) SELECT ?, id, school_id, ?, ?, ?, ?, ? FROM classroom WHERE id = ?",
            (lesson_id, credit, self.now() if at is None else at, actor, reason, reverses_id, classroom_id),
        )

    def open_credits(self, conn: sqlite3.Connection, lesson_id: int) -> dict[int, int]:
        """Classroom -> id of its credit for the lesson that no later row reverses."""
        rows = conn.execute(
            "SELECT classroom_id, id FROM receiver_credit c WHERE lesson_id = ? AND reverses_id IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM receiver_credit r WHERE r.reverses_id = c.id) ORDER BY id",
            (lesson_id,),
        )
        return {r[0]: r[1] for r in rows}

    def credits(self, lesson_id: int) -> list[dict[str, object]]:
        with self.db.read() as c:
            rows = c.execute("SELECT * FROM receiver_credit WHERE lesson_id = ? ORDER BY id", (lesson_id,))
            return [dict(r) for r in rows]

    def add_audit(
        self,
        conn: sqlite3.Connection,
        actor: str,
        action: str,
        outcome: str,
        reason: str,
        lesson_id: int | None = None,
        role: str = "admin",
    ) -> None:
        """A row in the audit trail the access side keeps too (GET /api/v1/audit shows both)."""
        conn.execute(
            "INSERT INTO audit(at, actor, role, action, lesson_id, address, outcome, reason) "
            "VALUES (?, ?, ?, ?, ?, '', ?, ?)",
            (self.now(), actor[:200], role[:40], action[:60], lesson_id, outcome, reason[:500]),
        )

    def corrections(self, lesson_id: int | None = None) -> list[dict[str, object]]:
        sql, args = "SELECT * FROM correction", ()
        if lesson_id is not None:
            sql, args = sql + " WHERE lesson_id = ?", (lesson_id,)
        with self.db.read() as c:
            return [dict(r) for r in c.execute(sql + " ORDER BY id", args)]

    def add_offline_activity(
        self,
        conn: sqlite3.Connection,
        lead_school_id: int,
        receiving_school_id: int | None,
        day: date,
        title: str,
        note: str,
        actor: str,
    ) -> int:
        """Offline activities (教研, visits) are logged for the record; they never count as lesson hours."""
        return _insert(
            conn,
            "INSERT INTO offline_activity(lead_school_id, receiving_school_id, day, title, note, created_at, actor) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (lead_school_id, receiving_school_id, day.isoformat(), title, note, self.now(), actor),
        )

    def offline_activities(self, school_id: int | None = None) -> list[dict[str, object]]:
        sql, args = "SELECT * FROM offline_activity", ()
        if school_id is not None:
            sql, args = sql + " WHERE lead_school_id = ? OR receiving_school_id = ?", (school_id, school_id)
        with self.db.read() as c:
            return [dict(r) for r in c.execute(sql + " ORDER BY day, id", args)]

    def record_import(
        self,
        conn: sqlite3.Connection,
        actor: str,
        filename: str,
        sha256: str,
        added: int,
        unchanged: int,
        warnings: int,
    ) -> int:
        return _insert(
            conn,
            "INSERT INTO import_run(created_at, actor, filename, sha256, added, unchanged, warnings) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.now(), actor, filename, sha256, added, unchanged, warnings),
        )


def _update(
    conn: sqlite3.Connection, table: str, row_id: int, columns: dict[str, str], changes: dict[str, object]
) -> bool:
    unknown = set(changes) - set(columns)
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))} of a {table}")
    if not changes:
        return conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)).fetchone() is not None
    sets = ", ".join(f"{columns[k]} = ?" for k in changes)
    cur = conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*changes.values(), row_id])
    return cur.rowcount == 1


def _insert(conn: sqlite3.Connection, sql: str, args: Sequence[object]) -> int:
    return int(conn.execute(sql, args).lastrowid or 0)


def _school(r: sqlite3.Row) -> School:
    return School(
        r["id"],
        r["county_id"],
        r["name"],
        bool(r["is_lead"]),
        bool(r["is_receiving"]),
        bool(r["is_teaching_point"]),
        float(r["bandwidth_mbps"]),
    )


def _teacher(r: sqlite3.Row) -> Teacher:
    subjects = tuple(s for s in r["subjects"].split(",") if s)
    return Teacher(r["id"], r["school_id"], r["name"], Level(r["level"]), subjects)


def _lesson(r: sqlite3.Row, receivers: tuple[int, ...]) -> Lesson:
    return Lesson(
        id=r["id"],
        kind=Kind(r["kind"]),
        subject=r["subject"],
        grade=r["grade"],
        lead_teacher_id=r["lead_teacher_id"],
        lead_classroom_id=r["lead_classroom_id"],
        start=from_epoch(r["start_utc"]),
        end=from_epoch(r["end_utc"]),
        receiving_classroom_ids=receivers,
        community_id=r["community_id"],
        semester_id=r["semester_id"],
        series_id=r["series_id"],
        status=LessonStatus(r["status"]),
        hours=int(r["hours"]),
        replay_of=r["replay_of"],
        credits_lead=bool(r["credits_lead"]),
    )


def _entry(r: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(
        id=r["id"],
        lesson_id=r["lesson_id"],
        entry_type=r["entry_type"],
        teacher_id=r["teacher_id"],
        school_id=r["school_id"],
        base_hours=r["base_hours"],
        factor=r["factor"],
        weighted_hours=r["weighted_hours"],
        created_at=from_epoch(r["created_at"]),
        actor=r["actor"],
        reason=r["reason"],
        reverses_id=r["reverses_id"],
    )
