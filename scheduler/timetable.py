"""The timetable service: check and store lessons, import files, take evidence, settle, correct.

A thin shell over the pure rules: it looks things up, hands plain data to `scheduler.rules`, and writes
in one transaction only when nothing is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from scheduler.config import SchedulerConfig
from scheduler.csvimport import CsvFormatError, Directory, parse_timetable
from scheduler.db import Database
from scheduler.directory import DirectoryImportResult, import_directory
from scheduler.evidenceimport import parse_evidence
from scheduler.model import (
    Classroom,
    Kind,
    Lesson,
    LessonDraft,
    LessonStatus,
    Problem,
    School,
    Teacher,
)
from scheduler.repository import MAX_LESSON_SECONDS, Repository, from_epoch, lesson_key, to_epoch
from scheduler.rules.calendar import local_date
from scheduler.rules.capacity import CapacityLimits, receiver_problems, slot_warnings
from scheduler.rules.conflicts import (
    Booking,
    booking_conflicts,
    calendar_problems,
    overlapping_pairs,
    resources_of,
    role_problems,
)
from scheduler.rules.history import FactorPeriod, factor_on
from scheduler.rules.hours import lesson_hours, validate_standard
from scheduler.rules.replay import (
    ReplaySource,
    credits_lead_of,
    replay_draft,
    replay_source_problem,
    replay_window_problems,
)
from scheduler.rules.workload import (
    attending_classrooms,
    delivery_entries,
    is_delivered,
    validate_factor,
)

log = logging.getLogger(__name__)

UNSETTLED = (LessonStatus.SCHEDULED, LessonStatus.OPEN, LessonStatus.LIVE)  # what the timed jobs settle


class LessonRefused(ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = list(problems)


class ReplayRefused(LessonRefused):
    """A replay refused because of its recording (`no_recording`, `not_approved`): `code` names which."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(problems)
        self.code = next(p.code for p in self.problems if p.code in REPLAY_SOURCE_CODES)


REPLAY_SOURCE_CODES = ("no_recording", "not_approved")


class NotFound(LookupError):
    pass


@dataclass
class ImportResult:
    filename: str
    dry_run: bool
    rows: int = 0
    lessons_added: int = 0
    lessons_unchanged: int = 0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    added_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, object]:
        return {
            "filename": self.filename,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "rows": self.rows,
            "lessons_added": self.lessons_added,
            "lessons_unchanged": self.lessons_unchanged,
            "errors": [problem_json(p) for p in self.errors],
            "warnings": [problem_json(p) for p in self.warnings],
        }


@dataclass
class EvidenceImportResult:
    filename: str
    dry_run: bool
    rows: int = 0
    lessons: int = 0  # lessons that gained evidence
    unchanged: int = 0  # rows that add nothing to what was recorded
    settled: int = 0
    errors: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, object]:
        return {
            "filename": self.filename,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "rows": self.rows,
            "lessons": self.lessons,
            "unchanged": self.unchanged,
            "settled": self.settled,
            "errors": [problem_json(p) for p in self.errors],
        }


def problem_json(p: Problem) -> dict[str, object]:
    out: dict[str, object] = {
        "code": p.code,
        "message": p.message,
        "message_zh": p.message_zh or p.message,
        "severity": p.severity,
    }
    if p.line is not None:
        out["line"] = p.line
    if p.sheet:
        out["sheet"] = p.sheet
    if p.related_lesson_id is not None:
        out["related_lesson_id"] = p.related_lesson_id
    return out


class Timetable:
    def __init__(
        self, db: Database, config: SchedulerConfig, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.db = db
        self.clock = clock
        self.repo = Repository(db, clock=lambda: clock().timestamp())
        self.config = config
        self._listeners: list[Callable[[list[int]], None]] = []
        self._cached_reference: _Reference | None = None

    def on_change(self, listener: Callable[[list[int]], None]) -> None:
        """Called with the ids of lessons added or changed (the timed jobs re-plan from it)."""
        self._listeners.append(listener)

    def _changed(self, ids: list[int]) -> None:
        for listener in self._listeners:
            listener(ids)

    def directory(self) -> Directory:
        """Names and ids of places and people, shared until the database changes.

        Building it reads every school, classroom and teacher (tens of thousands in a region), which would
        dominate a one-lesson check; a change to any of them (committed by any connection, or uncommitted
        in this thread's own transaction) makes the next call rebuild it.
        """
        return self._reference().directory

    def _reference(self) -> _Reference:
        with self.db.read() as conn:
            # triggers move this number whenever a place, person or semester changes, on any connection
            stamp = int(conn.execute("SELECT version FROM directory_version").fetchone()[0])
        cached = self._cached_reference
        if cached is not None and cached.stamp == stamp:
            return cached
        schools = {s.name: s for s in self.repo.schools()}
        directory = Directory(
            schools=schools,
            classrooms={(c.school_id, c.name): c for c in self.repo.classrooms()},
            teachers={(t.school_id, t.name): t for t in self.repo.teachers()},
            communities={c.name: c for c in self.repo.communities()},
            semesters=self.repo.semesters(),
        )
        self._cached_reference = _Reference.of(stamp, directory)
        return self._cached_reference

    # ---- checking ----------------------------------------------------------------------------
    def check(
        self, drafts: Sequence[tuple[int | None, LessonDraft]], directory: Directory | None = None
    ) -> list[Problem]:
        """Problems of a batch of drafts (with their CSV lines), against each other and the database."""
        cached = self._cached_reference
        if directory is None:
            ref = self._reference()
        elif cached is not None and directory is cached.directory:
            ref = cached
        else:
            ref = _Reference.of((-1, -1), directory)  # a caller's own directory is used as given, never cached
        tz = self.config.tz
        schools, rooms, teachers = ref.schools, ref.rooms, ref.teachers
        semesters = {s.id: s for s in ref.directory.semesters}
        community_size = ref.community_sizes
        problems: list[Problem] = []

        def add(line: int | None, found: Sequence[Problem]) -> None:
            problems.extend(
                Problem(p.code, p.message, p.severity, line, p.related_lesson_id, p.message_zh) for p in found
            )

        def name_of(resource: tuple[str, int]) -> str:
            what, rid = resource
            if what == "teacher":
                return teachers[rid].name if rid in teachers else f"#{rid}"
            room = rooms.get(rid)
            return f"{schools[room.school_id].name} {room.name}" if room is not None else f"#{rid}"

        for line, draft in drafts:
            if (draft.end - draft.start).total_seconds() > MAX_LESSON_SECONDS:
                hours = MAX_LESSON_SECONDS // 3600
                add(
                    line,
                    [
                        Problem(
                            "bad_times",
                            f"a lesson may last at most {hours} hours",
                            message_zh=f"一节课最长 {hours} 小时",
                        )
                    ],
                )
            semester = semesters.get(draft.semester_id) if draft.semester_id is not None else None
            add(line, calendar_problems(draft, semester, tz))
            teacher = teachers.get(draft.lead_teacher_id)
            lead_room = rooms.get(draft.lead_classroom_id)
            receiving = [rooms[c] for c in draft.receiving_classroom_ids if c in rooms]
            if teacher is None or lead_room is None or len(receiving) != len(draft.receiving_classroom_ids):
                add(line, [Problem("unknown_id", "unknown teacher or classroom id", message_zh="教师或教室编号不存在")])
                continue
            add(
                line,
                role_problems(draft, teacher=teacher, lead_classroom=lead_room, receiving=receiving, schools=schools),
            )
            cs = community_size.get(draft.community_id, 0) if draft.community_id is not None else 0
            add(line, receiver_problems(draft, self.config.capacity, cs))

        # double bookings inside the batch: one sweep per resource
        bookings = [
            Booking(i, res, draft.start, draft.end)
            for i, (_, draft) in enumerate(drafts)
            for res in resources_of(draft)
        ]
        for a, b, (what, rid) in sorted(overlapping_pairs(bookings)):
            line_a, line_b = drafts[a][0], drafts[b][0]
            where = f"line {line_a}" if line_a is not None else f"lesson {a + 1} of the request"
            where_zh = f"第 {line_a} 行" if line_a is not None else f"本次请求的第 {a + 1} 节课"
            name = name_of((what, rid))
            code = "teacher_busy" if what == "teacher" else "classroom_busy"
            add(
                line_b,
                [Problem(code, f"{name} is double-booked with {where}", message_zh=f"{name}与{where_zh}时间冲突")],
            )

        # double bookings against stored lessons: index-backed candidate queries per draft
        with self.db.read() as conn:
            for line, draft in drafts:
                rooms_used = [draft.lead_classroom_id, *draft.receiving_classroom_ids]
                candidates = self.repo.overlap_candidates(
                    conn, draft.lead_teacher_id, rooms_used, to_epoch(draft.start), to_epoch(draft.end)
                )
                own = lesson_key(draft)
                candidates = [c for c in candidates if lesson_key(c) != own or not _same(c, draft)]
                add(line, booking_conflicts(draft, candidates, tz, name_of))

        # replays: only of a finished recording a reviewer approved for replay
        replays = [(line, x) for line, x in drafts if x.replay_of is not None]
        if replays:
            with self.db.read() as conn:
                sources = self.repo.replay_sources(conn, [x.replay_of for _, x in replays if x.replay_of])
            for line, draft in replays:
                rid = draft.replay_of or 0
                source = sources.get(rid)
                problem = replay_source_problem(rid, source)
                if problem is not None:
                    add(line, [problem])
                elif source is not None:
                    add(line, replay_window_problems(draft, source))

        problems.extend(self._capacity_warnings([dr for _, dr in drafts], ref))
        return problems

    def replay_draft(
        self,
        recording_id: int,
        receiving_classroom_ids: Sequence[int],
        start: datetime,
        end: datetime | None = None,
    ) -> LessonDraft:
        """The lesson that replays an approved recording to these classrooms at this time (without an end: as
        long as the recorded lesson). Raises ReplayRefused (`no_recording`, `not_approved`)."""
        with self.db.read() as conn:
            source = self.repo.replay_sources(conn, [recording_id]).get(recording_id)
            policy = self.repo.replay_credit_policy(conn)
        problem = replay_source_problem(recording_id, source)
        if problem is not None:
            raise ReplayRefused([problem])
        assert source is not None  # replay_source_problem refuses a missing one
        day = start.astimezone(self.config.tz).date()
        semester = next((x for x in self.repo.semesters() if x.start <= day <= x.end), None)
        return replay_draft(
            source,
            tuple(receiving_classroom_ids),
            start,
            end,
            semester.id if semester else None,
            credits_lead_of(policy.get(source.lesson.lead_classroom_id)),
        )

    def set_replay_credit(self, county_id: int, credits: bool, actor: str = "system") -> bool:
        """The county's policy for replays scheduled from now on: whether they credit the recorded lesson's
        lead (default: no extra credit)."""
        with self.db.write() as conn:
            if not self.repo.set_replay_credit(conn, county_id, credits):
                raise NotFound(f"no county #{county_id}")
            self.repo.add_audit(conn, actor, "replay_credit", "done", f"county {county_id}: credits lead={credits}")
        return credits

    def _capacity_warnings(self, drafts: Sequence[LessonDraft], ref: _Reference) -> list[Problem]:
        if not drafts:
            return []
        lo = to_epoch(min(x.start for x in drafts)) - MAX_LESSON_SECONDS
        hi = to_epoch(max(x.end for x in drafts))
        limits = self.config.capacity
        sizes = dict(ref.community_sizes)
        stored = self._stored_load(lo, hi, {lesson_key(x) for x in drafts}, ref.crowdable_classrooms(limits), sizes)
        return slot_warnings(
            [*stored, *drafts],
            school_of_classroom=ref.school_of_classroom,
            school_bandwidth=ref.bandwidth,
            school_names=ref.school_names,
            limits=limits,
            community_sizes=sizes,
            tz=self.config.tz,
        )

    def _stored_load(
        self, lo: int, hi: int, exclude_keys: set[str], crowdable: Sequence[int], sizes: dict[int, int]
    ) -> list[LessonDraft]:
        """The stored lessons starting in [lo, hi), folded into one stand-in per (start, end) for the sweep.

        A region holds a million lessons a semester; handing each to `slot_warnings` as a `Lesson` took
        most of an import's time and memory. The sweep only sums, per instant, the streams that start and
        end and the receiving classrooms of each school, so lessons sharing start and end can stand in as
        one draft with the same sums: its receivers are the group's receivers in schools that could be
        overloaded at all, and the rest of its streams ride on a stand-in community (negative id, added to
        `sizes`). A school whose classrooms, all receiving at once, stay within its budget can never be
        overloaded (a classroom is never double-booked: every write is checked), so its receivers are only
        counted, not listed. Lessons with a draft's key are left out: the draft stands for them.
        """
        streams: dict[tuple[int, int], int] = defaultdict(int)
        receivers: dict[tuple[int, int], list[int]] = defaultdict(list)
        with self.db.read() as conn:
            # Covered by the lesson_span index; the receiver count is a primary-key range per lesson.
            for start, end, community, n, rooms in conn.execute(
                "SELECT start_utc, end_utc, community_id, count(*), "
                "sum((SELECT count(*) FROM lesson_receiver r WHERE r.lesson_id = l.id)) FROM lesson l "
                "WHERE start_utc >= ? AND start_utc < ? AND status != 'cancelled' GROUP BY 1, 2, 3",
                (lo, hi),
            ):
                extra = n * sizes.get(community, 0) if community is not None else 0
                streams[(start, end)] += n + rooms + extra
            keys = sorted(exclude_keys)
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                for start, end, community, rooms in conn.execute(
                    "SELECT start_utc, end_utc, community_id, "
                    "(SELECT count(*) FROM lesson_receiver r WHERE r.lesson_id = l.id) FROM lesson l "
                    f"WHERE lesson_key IN ({','.join('?' * len(chunk))}) AND start_utc >= ? AND start_utc < ? "
                    "AND status != 'cancelled'",
                    [*chunk, lo, hi],
                ):
                    extra = sizes.get(community, 0) if community is not None else 0
                    streams[(start, end)] -= 1 + rooms + extra
            for i in range(0, len(crowdable), 500):
                chunk = list(crowdable[i : i + 500])
                for room, start, end, key in conn.execute(
                    "SELECT r.classroom_id, l.start_utc, l.end_utc, l.lesson_key FROM lesson_receiver r "
                    "JOIN lesson l ON l.id = r.lesson_id "
                    f"WHERE r.classroom_id IN ({','.join('?' * len(chunk))}) AND r.start_utc >= ? AND r.start_utc < ? "
                    "AND l.status != 'cancelled'",
                    [*chunk, lo, hi],
                ):
                    if key not in exclude_keys:
                        receivers[(start, end)].append(room)
        out: list[LessonDraft] = []
        for (start, end), total in sorted(streams.items()):
            if total <= 0:
                continue
            rooms_listed = tuple(receivers.get((start, end), ()))
            stand_in = -(len(out) + 1)
            sizes[stand_in] = total - len(rooms_listed) - 1  # streams_of adds the listed rooms and 1
            out.append(
                LessonDraft(
                    kind=Kind.SPECIALISED,
                    subject="",
                    grade="",
                    lead_teacher_id=0,
                    lead_classroom_id=0,
                    start=from_epoch(start),
                    end=from_epoch(end),
                    receiving_classroom_ids=rooms_listed,
                    community_id=stand_in,
                )
            )
        return out

    # ---- writing lessons -----------------------------------------------------------------------
    def add_lessons(self, drafts: Sequence[LessonDraft]) -> tuple[list[Lesson], list[Problem]]:
        """Store drafts if none has an error; returns the stored lessons and the warnings."""
        with self.db.write() as conn:  # checked and stored under one write lock, so no race slips in between
            drafts = self.with_hours(conn, drafts)
            problems = self.check([(None, x) for x in drafts])
            errors = [p for p in problems if p.severity == "error"]
            if any(p.code in REPLAY_SOURCE_CODES for p in errors):
                raise ReplayRefused(errors)
            if errors:
                raise LessonRefused(errors)
            ids = self.repo.insert_lessons(conn, drafts, self.entry_statuses(drafts))
        self._changed(ids)
        return [self._get(i) for i in ids], [p for p in problems if p.severity != "error"]

    def import_csv(self, data: bytes, filename: str, actor: str, dry_run: bool = False) -> ImportResult:
        """All or nothing: one bad row imports nothing; re-importing the same file changes nothing."""
        result = ImportResult(filename=filename, dry_run=dry_run)
        directory = self.directory()

        def replay_source(lesson_id: int) -> ReplaySource | None:
            rid = self.repo.replay_recording_of(lesson_id)
            if rid is None:
                return None
            with self.db.read() as conn:
                return self.repo.replay_sources(conn, [rid]).get(rid)

        try:
            parsed = parse_timetable(data, directory, self.config.tz, replay_source)
        except CsvFormatError as exc:
            result.errors.append(Problem("bad_file", str(exc), line=None, message_zh=exc.message_zh))
            return result
        result.rows = len(parsed.rows)
        result.errors.extend(parsed.problems)
        for row in parsed.rows:
            for day in row.skipped_holidays:
                result.warnings.append(
                    Problem(
                        "holiday_skipped",
                        f"no lesson on {day.isoformat()} (not a teaching day)",
                        "warning",
                        row.line,
                        message_zh=f"{day.isoformat()} 不是教学日，当天不排课",
                    )
                )
        # duplicates inside the file
        seen: dict[str, int] = {}
        fresh: list[tuple[int | None, LessonDraft]] = []
        for row in parsed.rows:
            for draft in row.drafts:
                key = lesson_key(draft)
                if key in seen:
                    result.errors.append(
                        Problem(
                            "duplicate_lesson",
                            f"the same lesson is already on line {seen[key]}",
                            line=row.line,
                            message_zh=f"与第 {seen[key]} 行是同一节课",
                        )
                    )
                    continue
                seen[key] = row.line
                fresh.append((row.line, draft))
        # one IMMEDIATE transaction from the look-up of existing lessons to the insert: imports (from the
        # API or the `classroom import` command in another process) are serialised, none sees half of another
        with self.db.write() as conn:
            # a row's 课时 counts in the comparison only when the row gives them: a stored lesson keeps the
            # hours its county's standard gave it when it was entered
            hours = self.with_hours(conn, [x for _, x in fresh])
            existing = self.repo.lessons_by_key(seen)
            to_add: list[tuple[int | None, LessonDraft]] = []
            for (line, draft), counted in zip(fresh, hours, strict=True):
                old = existing.get(lesson_key(draft))
                if old is None:
                    to_add.append((line, counted))
                elif _same(old, draft):
                    result.lessons_unchanged += 1
                else:
                    result.errors.append(
                        Problem(
                            "changed_lesson",
                            f"lesson #{old.id} at this time differs from this row; cancel it first to replace it",
                            line=line,
                            related_lesson_id=old.id,
                            message_zh=f"此时已有课程 #{old.id}，内容与这一行不同；如需替换请先取消它",
                        )
                    )
            # check every readable row even when others are bad, so one pass shows the administrator everything
            if to_add:
                for p in self.check(to_add, directory):
                    (result.errors if p.severity == "error" else result.warnings).append(p)
            result.errors.sort(key=lambda p: (p.line or 0, p.code))
            if parsed.sheet:  # a workbook: every problem with a row names its sheet
                result.errors = [_in_sheet(p, parsed.sheet) for p in result.errors]
                result.warnings = [_in_sheet(p, parsed.sheet) for p in result.warnings]
            if result.errors or dry_run:
                log.info("import %s: %d errors, dry_run=%s; nothing written", filename, len(result.errors), dry_run)
                if not result.errors:
                    result.lessons_added = len(to_add)
                return result
            new = [x for _, x in to_add]
            ids = self.repo.insert_lessons(conn, new, self.entry_statuses(new))
            self.repo.record_import(
                conn,
                actor,
                filename,
                hashlib.sha256(data).hexdigest(),
                len(ids),
                result.lessons_unchanged,
                len(result.warnings),
            )
        result.lessons_added = len(ids)
        result.added_ids = ids
        log.info("import %s by %s: %d added, %d unchanged", filename, actor, len(ids), result.lessons_unchanged)
        self._changed(ids)
        return result

    def import_evidence(
        self, data: bytes, filename: str, actor: str, *, dry_run: bool = False, settle: bool = False
    ) -> EvidenceImportResult:
        """Attendance from a recording system for lessons awaiting evidence: all rows or none. With `settle`,
        the lessons it names are then settled from their evidence in the same transaction. A row that adds
        nothing to what is recorded is unchanged (the same file twice changes nothing); new evidence for a
        settled lesson is refused: only a correction changes a settled lesson."""
        result = EvidenceImportResult(filename, dry_run)
        tz = self.config.tz

        def lesson_at(classroom_id: int, moment: datetime) -> int | None:
            with self.db.read() as c:
                row = c.execute(
                    # the live lesson led from there then (a replay of its recording is named by its id)
                    "SELECT id FROM lesson WHERE lead_classroom_id = ? AND start_utc = ? AND status != 'cancelled' "
                    "AND replay_of IS NULL",
                    (classroom_id, to_epoch(moment)),
                ).fetchone()
            return int(row[0]) if row else None

        try:
            parsed = parse_evidence(data, self.directory(), tz, lesson_at)
        except CsvFormatError as exc:
            result.errors.append(Problem("bad_file", str(exc), message_zh=exc.message_zh))
            return result
        result.rows = len(parsed.rows)
        result.errors.extend(parsed.problems)
        seen: dict[tuple[int, int | None], int] = {}
        lead: dict[int, float] = {}
        rooms: dict[int, dict[int, float]] = defaultdict(dict)

        def refuse(line: int, code: str, en: str, zh: str) -> None:
            result.errors.append(Problem(code, en, line=line, message_zh=zh, sheet=parsed.sheet))

        with self.db.write() as conn:
            for row in parsed.rows:
                lesson = self.repo.lesson(row.lesson_id)
                if lesson is None:
                    refuse(row.line, "unknown_lesson", f"no lesson #{row.lesson_id}", f"没有课程 #{row.lesson_id}")
                    continue
                if row.classroom_id is not None and row.classroom_id not in lesson.receiving_classroom_ids:
                    refuse(
                        row.line,
                        "not_receiving",
                        f"that classroom is not receiving lesson #{lesson.id}",
                        f"该教室不是课程 #{lesson.id} 的接收教室",
                    )
                    continue
                key = (lesson.id, row.classroom_id)
                if key in seen and (row.classroom_id is not None or row.lead_minutes is not None):
                    refuse(
                        row.line,
                        "duplicate_row",
                        f"the same lesson and classroom as line {seen[key]}",
                        f"与第 {seen[key]} 行是同一课程和教室",
                    )
                    continue
                seen[key] = row.line
                stored = self.repo.evidence(conn, lesson.id)
                adds = (row.lead_minutes or 0) > stored.lead_minutes or (
                    row.classroom_id is not None
                    and (row.minutes or 0) > stored.attended_minutes.get(row.classroom_id, 0.0)
                )
                if not adds:
                    result.unchanged += 1
                    continue
                if lesson.status != LessonStatus.AWAITING_EVIDENCE:
                    settled = lesson.status in (LessonStatus.DELIVERED, LessonStatus.MISSED)
                    if settled:
                        why = "a settled lesson changes only through a correction"
                        why_zh = "已结算，只能通过更正修改"
                    elif lesson.status == LessonStatus.CANCELLED:
                        why, why_zh = "it was cancelled", "已取消"
                    else:
                        why, why_zh = (
                            "it is not over yet: its evidence comes from the media side",
                            "尚未结束，证据由媒体端记录",
                        )
                    refuse(
                        row.line,
                        "settled" if settled else "not_awaiting",
                        f"lesson #{lesson.id} is {lesson.status.value}: {why}",
                        f"课程 #{lesson.id}{why_zh}",
                    )
                    continue
                if row.lead_minutes is not None:
                    lead[lesson.id] = max(lead.get(lesson.id, 0.0), row.lead_minutes)
                if row.classroom_id is not None and row.minutes is not None:
                    rooms[lesson.id][row.classroom_id] = row.minutes
            result.errors.sort(key=lambda p: (p.line or 0, p.code))
            touched = sorted(set(lead) | set(rooms))
            result.lessons = len(touched)
            if result.errors or dry_run:
                return result
            for lid in touched:
                self.repo.record_evidence(conn, lid, lead.get(lid), rooms.get(lid, {}), f"import:{filename}"[:60])
            if settle:
                waiting = [x.id for x in (self._get(i) for i, _ in seen) if x.status == LessonStatus.AWAITING_EVIDENCE]
                if waiting:
                    self.settle_awaiting(sorted(set(waiting)), "evidence", actor, f"evidence file {filename}")
                result.settled = len(set(waiting))
            self.repo.add_audit(
                conn,
                actor,
                "evidence_import",
                "done",
                f"{filename}: {result.rows} rows, {len(touched)} lessons, {result.settled} settled",
            )
        return result

    def import_directory(self, data: bytes, filename: str, actor: str, dry_run: bool = False) -> DirectoryImportResult:
        """Counties, schools, classrooms, teachers, communities, semesters and holidays from XLSX or CSV."""
        today = self.clock().astimezone(self.config.tz).date()
        return import_directory(self.db, self.repo, data, filename, actor, today, dry_run)

    def cancel(self, lesson_id: int, actor: str, reason: str) -> Lesson:
        lesson = self._get(lesson_id)
        if not reason.strip():
            raise ValueError("a cancellation needs a reason")
        with self.db.write() as conn:
            froms = (LessonStatus.SCHEDULED, LessonStatus.AWAITING_EVIDENCE)
            if not self.repo.set_status(conn, lesson_id, LessonStatus.CANCELLED, froms):
                raise ValueError(
                    f"lesson #{lesson_id} is {lesson.status.value}; only a scheduled lesson (or one awaiting "
                    "evidence) can be cancelled"
                )
            self.repo.add_correction(conn, lesson_id, lesson.status.value, "cancelled", actor, reason, kind="cancel")
            self.repo.add_audit(conn, actor, "cancel", "done", reason, lesson_id)
        self._changed([lesson_id])
        return self._get(lesson_id)

    def _get(self, lesson_id: int) -> Lesson:
        lesson = self.repo.lesson(lesson_id)
        if lesson is None:
            raise NotFound(f"no lesson #{lesson_id}")
        return lesson

    def with_hours(self, conn: sqlite3.Connection, drafts: Sequence[LessonDraft]) -> list[LessonDraft]:
        """Drafts with their 课时: as the timetable gave them, else from duration and the county's standard; a
        replay not yet told whether it credits its lead, with its county's policy."""
        standards = self.repo.standard_minutes_by_classroom(conn)
        policy = self.repo.replay_credit_policy(conn) if any(d.replay_of is not None for d in drafts) else {}
        out = []
        for d in drafts:
            standard = standards.get(d.lead_classroom_id, self.config.standard_lesson_minutes)
            minutes = (d.end - d.start).total_seconds() / 60.0
            d = dataclasses.replace(d, hours=lesson_hours(minutes, standard, d.hours))
            if d.replay_of is not None and d.credits_lead is None:
                d = dataclasses.replace(d, credits_lead=credits_lead_of(policy.get(d.lead_classroom_id)))
            out.append(d)
        return out

    def entry_statuses(self, drafts: Sequence[LessonDraft]) -> list[LessonStatus]:
        """A lesson entered after its window closed waits for evidence instead of being settled as missed."""
        now = self.clock()
        grace = timedelta(minutes=self.config.window_close_grace_min)
        return [LessonStatus.AWAITING_EVIDENCE if d.end + grace <= now else LessonStatus.SCHEDULED for d in drafts]

    # ---- windows, evidence, settlement -----------------------------------------------------
    def window(self, lesson: Lesson) -> tuple[datetime, datetime]:
        return (
            lesson.start - timedelta(minutes=self.config.window_open_before_min),
            lesson.end + timedelta(minutes=self.config.window_close_grace_min),
        )

    def open_window(self, lesson_id: int) -> bool:
        with self.db.write() as conn:
            done = self.repo.set_status(conn, lesson_id, LessonStatus.OPEN, (LessonStatus.SCHEDULED,))
        if done:
            log.info("lesson %d: window open", lesson_id)
        return done

    def record_evidence(
        self,
        lesson_id: int,
        lead_minutes: float | None,
        attended: dict[int, float],
        source: str,
        teachers: dict[int, float] | None = None,
    ) -> Lesson:
        """Totals so far from media/monitoring. Evidence for a settled lesson is kept but changes nothing.

        `teachers` are research-community members who watched a master lesson on their own devices."""
        lesson = self._get(lesson_id)
        teachers = teachers or {}
        if teachers:
            strangers = sorted(set(teachers) - self.repo.community_members(lesson.community_id))
            if strangers:
                raise ValueError(f"teachers {strangers} are not members of lesson #{lesson_id}'s research community")
            if any(not 0 <= m <= 24 * 60 for m in teachers.values()):
                raise ValueError("attended minutes must be between 0 and 1440")
        if lead_minutes is not None and not 0 <= lead_minutes <= 24 * 60:
            raise ValueError("lead_minutes must be between 0 and 1440")
        unknown = [c for c in attended if c not in lesson.receiving_classroom_ids]
        if unknown and lesson.receiving_classroom_ids:
            raise ValueError(f"classrooms {unknown} are not receiving lesson #{lesson_id}")
        if any(not 0 <= m <= 24 * 60 for m in attended.values()):
            raise ValueError("attended minutes must be between 0 and 1440")
        with self.db.write() as conn:
            settled = lesson.status in (LessonStatus.DELIVERED, LessonStatus.MISSED)
            before = self.repo.evidence(conn, lesson_id) if settled else None
            self.repo.record_evidence(conn, lesson_id, lead_minutes, attended, source, teachers)
            if lead_minutes:
                self.repo.set_status(conn, lesson_id, LessonStatus.LIVE, (LessonStatus.OPEN, LessonStatus.SCHEDULED))
            if before is not None:
                # settled means settled: the evidence is kept as a record and counts only through a correction;
                # where it would have decided otherwise, the audit log says so (the last seconds a closing
                # room reports after settlement usually change nothing and are not worth a line)
                after = self.repo.evidence(conn, lesson_id)
                th = self.config.thresholds
                if (is_delivered(lesson, before, th), attending_classrooms(lesson, before, th)) != (
                    is_delivered(lesson, after, th),
                    attending_classrooms(lesson, after, th),
                ):
                    self.repo.add_audit(
                        conn,
                        source,
                        "evidence_after_settlement",
                        "kept",
                        f"lesson is {lesson.status.value}; this evidence would count "
                        f"{'as delivered' if is_delivered(lesson, after, th) else 'differently'} "
                        f"(classrooms {attending_classrooms(lesson, after, th)}), which only a correction can make so",
                        lesson_id,
                        role="media",
                    )
        return self._get(lesson_id)

    def settle_due(self, lesson: Lesson, now: datetime) -> bool:
        """Whether the timed job settles `lesson` now: unsettled, and its window has closed."""
        return lesson.status in UNSETTLED and now >= self.window(lesson)[1]

    def settle(self, lesson_id: int, now: datetime | None = None) -> LessonStatus | None:
        """Decide delivered or missed from the evidence, once. Returns the new status, or None if already settled
        (or not yet due, or awaiting evidence: a lesson entered after its time is settled by an administrator)."""
        lesson = self._get(lesson_id)
        now = now or self.clock()
        if not self.settle_due(lesson, now):
            return None
        with self.db.write() as conn:
            evidence = self.repo.evidence(conn, lesson_id)
            delivered = is_delivered(lesson, evidence, self.config.thresholds)
            to = LessonStatus.DELIVERED if delivered else LessonStatus.MISSED
            if not self.repo.set_status(conn, lesson_id, to, UNSETTLED, settled_at=to_epoch(now)):
                return None  # someone settled it meanwhile: never twice
            if delivered:
                rooms = attending_classrooms(lesson, evidence, self.config.thresholds)
                self._credit(conn, lesson, rooms, "system", f"delivered: lead {evidence.lead_minutes:.0f} min", now)
        log.info("lesson %d settled: %s", lesson_id, to.value)
        return to

    def _credit(
        self,
        conn: sqlite3.Connection,
        lesson: Lesson,
        rooms: Iterable[int],
        actor: str,
        note: str,
        at: datetime | None = None,
    ) -> None:
        """What a delivered lesson counts for: the lead's (or lead school's) ledger entries at the factor of the
        lesson's date and its 课时, and a credit for each receiving classroom that attended."""
        school_id = self._lead_school(lesson)
        stamp = to_epoch(at) if at is not None else None
        for e in delivery_entries(lesson, school_id, self.factor_of(lesson), float(lesson.hours)):
            self.repo.append_ledger(
                conn, lesson.id, e.entry_type, e.teacher_id, e.school_id, e.base_hours, e.factor, actor, note, at=stamp
            )
        for room in rooms:
            self.repo.append_credit(conn, lesson.id, room, 1, actor, note, at=stamp)

    def _uncredit(self, conn: sqlite3.Connection, lesson: Lesson, actor: str, note: str) -> None:
        for e in self.repo.open_entries(conn, lesson.id):
            self.repo.append_ledger(
                conn,
                lesson.id,
                e.entry_type,
                e.teacher_id,
                e.school_id,
                -e.base_hours,
                e.factor,
                actor,
                note,
                reverses_id=e.id,
            )
        for room, credit_id in self.repo.open_credits(conn, lesson.id).items():
            self.repo.append_credit(conn, lesson.id, room, -1, actor, note, reverses_id=credit_id)

    def _confirmed_rooms(self, conn: sqlite3.Connection, lesson: Lesson, rooms: Sequence[int] | None) -> list[int]:
        """Receiving classrooms a delivery confirmed by an administrator credits: those named, else those whose
        recorded attendance meets the share, else (nothing recorded) all the lesson's receiving classrooms."""
        if rooms is not None:
            strangers = sorted(set(rooms) - set(lesson.receiving_classroom_ids))
            if strangers:
                raise ValueError(f"classrooms {strangers} are not receiving lesson #{lesson.id}")
            return sorted(set(rooms))
        evidence = self.repo.evidence(conn, lesson.id)
        attended = attending_classrooms(lesson, evidence, self.config.thresholds)
        if attended or evidence.attended_minutes:
            return attended
        return sorted(lesson.receiving_classroom_ids)

    def settle_awaiting(
        self,
        lesson_ids: Sequence[int],
        how: str,
        actor: str,
        reason: str,
        classroom_ids: Sequence[int] | None = None,
    ) -> list[Lesson]:
        """Settle lessons that wait for evidence, all in one transaction (all or none), as one audited operation:
        `how` is `evidence` (decide from what was recorded or imported, as the timed job would), `delivered`
        or `missed` (the administrator's decision). The reason is recorded with each lesson."""
        if how not in ("evidence", "delivered", "missed"):
            raise ValueError("settle with 'evidence', 'delivered' or 'missed'")
        if not actor.strip() or not reason.strip():
            raise ValueError("a settlement needs who made it and why")
        ids = sorted(set(lesson_ids))
        if not ids:
            raise ValueError("name the lessons to settle")
        lessons = [self._get(i) for i in ids]
        wrong = [x.id for x in lessons if x.status != LessonStatus.AWAITING_EVIDENCE]
        if wrong:
            raise ValueError(
                f"lessons {wrong} are not awaiting evidence; a settled lesson changes only through a correction"
            )
        batch = uuid.uuid4().hex[:12]
        now = self.clock()
        outcome: dict[str, int] = defaultdict(int)
        with self.db.write() as conn:
            for lesson in lessons:
                evidence = self.repo.evidence(conn, lesson.id)
                if how == "evidence":
                    delivered = is_delivered(lesson, evidence, self.config.thresholds)
                    rooms = attending_classrooms(lesson, evidence, self.config.thresholds)
                else:
                    delivered = how == "delivered"
                    rooms = self._confirmed_rooms(conn, lesson, classroom_ids) if delivered else []
                to = LessonStatus.DELIVERED if delivered else LessonStatus.MISSED
                if not self.repo.set_status(
                    conn, lesson.id, to, (LessonStatus.AWAITING_EVIDENCE,), settled_at=to_epoch(now)
                ):
                    raise ValueError(f"lesson #{lesson.id} changed meanwhile; reload and retry")
                self.repo.add_correction(
                    conn,
                    lesson.id,
                    LessonStatus.AWAITING_EVIDENCE.value,
                    to.value,
                    actor,
                    reason,
                    kind="settlement",
                    batch=batch,
                )
                if delivered:
                    self._credit(conn, lesson, rooms, actor, f"settled ({how}): {reason}", now)
                outcome[to.value] += 1
            summary = ", ".join(f"{n} {status}" for status, n in sorted(outcome.items()))
            self.repo.add_audit(
                conn,
                actor,
                "settle",
                "done",
                f"{summary} ({how}; batch {batch}): {reason}",
                ids[0] if len(ids) == 1 else None,
            )
        self._changed(ids)
        return [self._get(i) for i in ids]

    def correct(
        self, lesson_id: int, to: LessonStatus, actor: str, reason: str, classroom_ids: Sequence[int] | None = None
    ) -> Lesson:
        """An administrator's correction of a settled lesson: recorded with who, when and why; the ledger
        gains reversing or new entries, never edits."""
        return self.correct_many([lesson_id], to, actor, reason, classroom_ids)[0]

    def correct_many(
        self,
        lesson_ids: Sequence[int],
        to: LessonStatus,
        actor: str,
        reason: str,
        classroom_ids: Sequence[int] | None = None,
    ) -> list[Lesson]:
        """Corrections of settled lessons, all or none, as one audited operation. To `missed`: every open
        ledger entry and receiving-classroom credit of the lesson is reversed. To `delivered`: the ledger
        gains the entries of the lesson's 课时 at the factor of its date, and its receiving classrooms are
        credited (those named, else those whose recorded attendance met the share, else all)."""
        to = LessonStatus(to)
        if to not in (LessonStatus.DELIVERED, LessonStatus.MISSED):
            raise ValueError("a correction sets a settled lesson to delivered or missed")
        if not actor.strip() or not reason.strip():
            raise ValueError("a correction needs who made it and why")
        ids = sorted(set(lesson_ids))
        if not ids:
            raise ValueError("name the lessons to correct")
        lessons = [self._get(i) for i in ids]
        for lesson in lessons:
            if lesson.status not in (LessonStatus.DELIVERED, LessonStatus.MISSED):
                raise ValueError(f"lesson #{lesson.id} is {lesson.status.value}; only settled lessons are corrected")
            if lesson.status == to:
                raise ValueError(f"lesson #{lesson.id} is already {to.value}")
        batch = uuid.uuid4().hex[:12] if len(ids) > 1 else None
        note = f"correction: {reason}"
        with self.db.write() as conn:
            for lesson in lessons:
                if not self.repo.set_status(conn, lesson.id, to, (lesson.status,)):
                    raise ValueError(f"lesson #{lesson.id} changed meanwhile; reload and retry")
                self.repo.add_correction(conn, lesson.id, lesson.status.value, to.value, actor, reason, batch=batch)
                if to == LessonStatus.MISSED:
                    self._uncredit(conn, lesson, actor, note)
                else:
                    self._credit(conn, lesson, self._confirmed_rooms(conn, lesson, classroom_ids), actor, note)
            what = f"lesson #{ids[0]}" if len(ids) == 1 else f"{len(ids)} lessons (batch {batch})"
            self.repo.add_audit(
                conn,
                actor,
                "correction",
                "done",
                f"{what} {lessons[0].status.value} -> {to.value}: {reason}",
                ids[0] if len(ids) == 1 else None,
            )
        self._changed(ids)
        return [self._get(i) for i in ids]

    def correct_attendance(self, lesson_id: int, classroom_id: int, attended: bool, actor: str, reason: str) -> Lesson:
        """Whether one receiving classroom attended a delivered lesson (what its school is credited with)."""
        if not actor.strip() or not reason.strip():
            raise ValueError("a correction needs who made it and why")
        lesson = self._get(lesson_id)
        if classroom_id not in lesson.receiving_classroom_ids:
            raise ValueError(f"classroom {classroom_id} is not receiving lesson #{lesson_id}")
        if lesson.status != LessonStatus.DELIVERED:
            raise ValueError(
                f"lesson #{lesson_id} is {lesson.status.value}; attendance counts only for a delivered lesson "
                "(correct its status first)"
            )
        before, after = ("absent", "attended") if attended else ("attended", "absent")
        note = f"attendance correction: {reason}"
        with self.db.write() as conn:
            credit = self.repo.open_credits(conn, lesson_id).get(classroom_id)
            if (credit is not None) == attended:
                raise ValueError(f"classroom {classroom_id} is already counted as {after} for lesson #{lesson_id}")
            if attended:
                self.repo.append_credit(conn, lesson_id, classroom_id, 1, actor, note)
            else:
                self.repo.append_credit(conn, lesson_id, classroom_id, -1, actor, note, reverses_id=credit)
            self.repo.add_correction(
                conn, lesson_id, before, after, actor, reason, kind="attendance", classroom_id=classroom_id
            )
            self.repo.add_audit(
                conn,
                actor,
                "attendance_correction",
                "done",
                f"classroom {classroom_id} {before} -> {after}: {reason}",
                lesson_id,
            )
        return self._get(lesson_id)

    def factor_of(self, lesson: Lesson) -> float:
        """The workload factor of the lesson's county in force on the lesson's (local) date."""
        with self.db.read() as c:
            row = c.execute(
                "SELECT s.county_id FROM classroom r JOIN school s ON s.id = r.school_id WHERE r.id = ?",
                (lesson.lead_classroom_id,),
            ).fetchone()
        if row is None:
            return self.config.default_workload_factor
        periods = [FactorPeriod(since, f) for since, f in self.repo.factor_periods(int(row[0]))]
        day = local_date(lesson.start, self.config.tz)
        return validate_factor(factor_on(periods, day, self.config.default_workload_factor))

    def _lead_school(self, lesson: Lesson) -> int:
        with self.db.read() as c:
            row = c.execute("SELECT school_id FROM classroom WHERE id = ?", (lesson.lead_classroom_id,)).fetchone()
        return int(row[0])

    def set_county_factor(
        self, county_id: int, factor: float, since: date | None = None, actor: str = "system"
    ) -> date:
        """The county's factor for lessons from `since` (default: today) on; earlier lessons keep theirs, also
        when they are corrected later. Returns the first day it applies to."""
        value = validate_factor(factor)
        day = since or self.clock().astimezone(self.config.tz).date()
        with self.db.write() as conn:
            if not self.repo.set_county_factor(conn, county_id, value, day, actor):
                raise NotFound(f"no county #{county_id}")
            self.repo.add_audit(conn, actor, "workload_factor", "done", f"county {county_id}: {value} from {day}")
        return day

    def set_standard_minutes(self, county_id: int, minutes: object, actor: str = "system") -> int:
        """The county's standard lesson length (one 课时), for lessons entered from now on."""
        value = validate_standard(minutes)
        with self.db.write() as conn:
            if not self.repo.set_standard_minutes(conn, county_id, value):
                raise NotFound(f"no county #{county_id}")
            self.repo.add_audit(conn, actor, "standard_lesson_minutes", "done", f"county {county_id}: {value} min")
        return value


@dataclass(frozen=True)
class _Reference:
    """A directory with the id lookups a check needs, built once per state of the database."""

    stamp: int
    directory: Directory
    schools: dict[int, School]
    rooms: dict[int, Classroom]
    teachers: dict[int, Teacher]
    community_sizes: dict[int, int]
    school_of_classroom: dict[int, int]
    rooms_of_school: dict[int, list[int]]
    bandwidth: dict[int, float]
    school_names: dict[int, str]

    @classmethod
    def of(cls, stamp: int, d: Directory) -> _Reference:
        schools = {s.id: s for s in d.schools.values()}
        rooms = {c.id: c for c in d.classrooms.values()}
        rooms_of_school: dict[int, list[int]] = defaultdict(list)
        for c in rooms.values():
            rooms_of_school[c.school_id].append(c.id)
        return cls(
            stamp=stamp,
            directory=d,
            schools=schools,
            rooms=rooms,
            teachers={t.id: t for t in d.teachers.values()},
            community_sizes={c.id: len(c.member_teacher_ids) for c in d.communities.values()},
            school_of_classroom={c.id: c.school_id for c in rooms.values()},
            rooms_of_school=dict(rooms_of_school),
            bandwidth={s.id: s.bandwidth_mbps for s in schools.values()},
            school_names={s.id: s.name for s in schools.values()},
        )

    def crowdable_classrooms(self, limits: CapacityLimits) -> list[int]:
        """Classrooms of schools that would exceed their live-lesson bandwidth if all of them received."""
        return [
            room
            for sid, rooms in self.rooms_of_school.items()
            if len(rooms) * limits.stream_mbps > self.bandwidth.get(sid, 0.0) * limits.bandwidth_share
            for room in rooms
        ]


def _in_sheet(p: Problem, sheet: str) -> Problem:
    return dataclasses.replace(p, sheet=sheet) if p.line is not None and not p.sheet else p


def where(p: Problem) -> str:
    """Where a problem is, for people: "line 3" of a CSV, "sheet 课表 row 3" of a workbook."""
    if p.line is None:
        return ""
    return f"sheet {p.sheet} row {p.line}" if p.sheet else f"line {p.line}"


def _same(a: Lesson, b: LessonDraft) -> bool:
    return (
        a.kind == b.kind
        and a.subject == b.subject
        and a.grade == b.grade
        and a.end == b.end
        and tuple(sorted(a.receiving_classroom_ids)) == tuple(sorted(b.receiving_classroom_ids))
        and a.community_id == b.community_id
        and a.replay_of == b.replay_of
        and (b.hours is None or a.hours == b.hours)
        and a.status != LessonStatus.CANCELLED
    )
