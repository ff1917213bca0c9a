"""`classroom bench schedule`: the scheduler at the size of a region, measured.

    classroom bench schedule --json                      # 3,000 schools, 1,000,000 lessons
    classroom bench schedule --schools 30 --lessons 3000 --json   # a quick run

Builds a region (cities, counties, lead schools, receiving schools, teaching points, teachers of every
backbone level, classrooms, research communities, one semester with its holidays) in a temporary SQLite
file, and a semester timetable of all three lesson kinds. The timetable is conflict-free by construction:
every (day, slot) cell hands each lesson its own lead classroom, its own teacher and its own block of
receiving classrooms. Lessons before "today" (mid-semester) are settled as the evidence path would
have settled them: delivered or missed, with evidence, attendance and ledger entries.

The bulk data goes straight into the tables in large `executemany` batches (building a region through
the CSV path would take far longer than the things measured). Then it measures, through the public
entry points the product itself uses:

- `county_import_s`: `Timetable.import_csv` of one county's 20,000-lesson timetable (a county whose
  lessons are not in the database yet, so nothing conflicts and the import really writes);
- `region_report_s`: `build_report` for the whole region's semester;
- `report_as_of_past_s`: the same report as of four weeks before "today" (what was known then);
- `directory_import_s`: `Timetable.import_directory` of the region's directory (every county, school,
  classroom and teacher, the semester and its holidays) from one XLSX workbook into an empty database;
- `conflict_check_*_ms`: `Timetable.check` with one new draft at a random busy time, many samples;
- `peak_rss_mib`: the process's peak resident set size (ru_maxrss).

See docs/benchmarks-schedule.md for the figures measured on the reference machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.config import SchedulerConfig
from scheduler.csvimport import CHINESE_HEADER
from scheduler.db import Database
from scheduler.export import KIND_LABELS
from scheduler.model import Kind, LessonDraft, School, Semester, Teacher
from scheduler.reports import build_report
from scheduler.repository import Repository
from scheduler.rules.calendar import is_teaching_day
from scheduler.timetable import Timetable

SEMESTER_NAME = "2026-2027学年第一学期"
SEMESTER_START = date(2026, 9, 1)
SEMESTER_END = date(2027, 1, 15)
HOLIDAYS: dict[date, str] = {
    date(2026, 9, 25): "中秋节",
    **{date(2026, 10, d): "国庆节" for d in range(1, 8)},
    date(2027, 1, 1): "元旦",
}
TODAY = date(2026, 11, 16)  # mid-semester: about half of the timetable is already settled
SLOTS = ((8, 0), (8, 55), (10, 0), (10, 55), (14, 30), (15, 25), (16, 20))  # local start times
LESSON_MINUTES = 40
SCHOOLS_PER_COUNTY = 120
COUNTIES_PER_CITY = 5
LEAD_SHARE, POINT_SHARE = 0.2, 0.3  # of a county's schools; the rest are receiving schools
TEACHERS_PER_SCHOOL = {"lead": 40, "receiving": 12, "point": 3}
MIN_ROOMS = {"lead": 4, "receiving": 6, "point": 1}
COMMUNITIES_PER_COUNTY = 2
COMMUNITY_MEMBERS = 20
DELIVERED_SHARE = 0.88  # of the settled lessons; the rest were missed
SUBJECTS = ("语文", "数学", "英语", "音乐", "美术", "科学", "体育", "书法")
GRADES = ("一年级", "二年级", "三年级", "四年级", "五年级", "六年级")
# The region's media cluster is sized for the region: the single-county default of 600 streams would
# turn every slot of the semester into an over-capacity warning and measure warning formatting instead.
REGION_MEDIA_STREAMS = 40_000


@dataclass(frozen=True, slots=True)
class BenchOptions:
    schools: int = 3000
    lessons: int = 1_000_000
    county_lessons: int = 20_000
    samples: int = 1000
    seed: int = 1
    keep: Path | None = None
    log: Callable[[str], None] = field(default=lambda _msg: None)


@dataclass
class CountyPlan:
    """One county's ids and names, enough to hand out conflict-free lessons cell by cell."""

    id: int
    name: str
    lead_rooms: list[tuple[int, int, int]] = field(default_factory=list)  # (classroom, school, index in school)
    receiving_rooms: list[int] = field(default_factory=list)
    teachers_of: dict[int, list[int]] = field(default_factory=dict)  # lead school -> its teachers
    communities: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Planned:
    """One lesson of a cell: who teaches where, and which classrooms receive it."""

    kind: Kind
    teacher: int
    lead_room: int
    lead_school: int
    receivers: tuple[int, ...]
    community: int | None
    subject: str
    grade: str


@dataclass
class Region:
    counties: list[CountyPlan]  # those whose lessons are bulk-loaded
    import_county: CountyPlan  # the one whose timetable the benchmark imports
    semester: Semester
    school_names: dict[int, str]
    room_names: dict[int, str]
    room_school: dict[int, int]
    teacher_names: dict[int, str]
    community_names: dict[int, str]
    schools: int = 0
    teachers: int = 0
    classrooms: int = 0
    lessons: int = 0
    receivers: int = 0
    settled: int = 0
    delivered: int = 0
    ledger: int = 0
    attendance: int = 0


def teaching_days(semester: Semester) -> list[date]:
    days, day = [], semester.start
    while day <= semester.end:
        if is_teaching_day(semester, day):
            days.append(day)
        day += timedelta(days=1)
    return days


def spread(total: int, parts: int) -> list[int]:
    """`total` split into `parts` whole numbers differing by at most one (largest first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def plan_cell(county: CountyPlan, weekly_key: int, count: int) -> list[Planned]:
    """The `count` lessons a county holds in one (day, slot) cell, without any double booking.

    Lesson j takes lead classroom j (rotated by the weekly key, so the same cell of every week repeats:
    a weekly timetable), the teacher of its school that the classroom index and key select (classrooms
    of one school get different teachers), and the next unused block of receiving classrooms.
    """
    rooms, receiving = county.lead_rooms, county.receiving_rooms
    if count > len(rooms):
        raise ValueError(f"{county.name}: {count} lessons in one slot exceed its {len(rooms)} lead classrooms")
    out: list[Planned] = []
    cursor = (weekly_key * 37) % len(receiving)
    used = 0
    for j in range(count):
        room, school, index = rooms[(j + weekly_key * 7) % len(rooms)]
        staff = county.teachers_of[school]
        teacher = staff[(index + MIN_ROOMS["lead"] * weekly_key) % len(staff)]
        selector = (j * 7 + weekly_key) % 10
        if selector < 6:
            kind, n, community = Kind.SPECIALISED, 2 + (j % 2), None
        elif selector < 8:
            kind, n, community = Kind.MASTER, 1, county.communities[j % len(county.communities)]
        else:
            kind, n, community = Kind.FAMOUS_SCHOOL, 5, None
        if used + n > len(receiving):
            raise ValueError(f"{county.name}: receivers of one slot exceed its {len(receiving)} classrooms")
        chosen = tuple(receiving[(cursor + used + i) % len(receiving)] for i in range(n))
        used += n
        out.append(
            Planned(
                kind,
                teacher,
                room,
                school,
                chosen,
                community,
                SUBJECTS[(teacher + j) % len(SUBJECTS)],
                GRADES[(weekly_key + j) % len(GRADES)],
            )
        )
    return out


def build_region(db: Database, opts: BenchOptions) -> Region:
    """Places and people through the repository; lessons come after, in bulk."""
    repo = Repository(db)
    rng = random.Random(opts.seed)
    n_counties = max(2, round(opts.schools / SCHOOLS_PER_COUNTY))
    per_county = spread(opts.schools, n_counties)
    days = teaching_days(Semester(0, SEMESTER_NAME, SEMESTER_START, SEMESTER_END, frozenset(HOLIDAYS)))
    cells = len(days) * len(SLOTS)
    # the busiest cell of the busiest county decides how many classrooms a county needs
    bulk_peak = math.ceil(math.ceil(opts.lessons / cells) / (n_counties - 1))
    import_peak = math.ceil(opts.county_lessons / cells)
    school_names: dict[int, str] = {}
    room_names: dict[int, str] = {}
    room_school: dict[int, int] = {}
    teacher_names: dict[int, str] = {}
    community_names: dict[int, str] = {}
    plans: list[CountyPlan] = []
    levels = ("region",) * 2 + ("city",) * 4 + ("county",) * 8 + ("none",) * 26  # of every 40 lead teachers
    with db.write() as conn:
        region = repo.add_region(conn, "宁夏回族自治区")
        semester_id = repo.add_semester(
            conn, Semester(0, SEMESTER_NAME, SEMESTER_START, SEMESTER_END, frozenset(HOLIDAYS)), HOLIDAYS
        )
        city = 0
        for c in range(n_counties):
            if c % COUNTIES_PER_CITY == 0:
                city = repo.add_city(conn, region, f"第{c // COUNTIES_PER_CITY + 1}市")
            name = f"第{c + 1}区县"
            plan = CountyPlan(repo.add_county(conn, city, name, 1.5), name)
            n = per_county[c]
            n_lead = max(1, round(n * LEAD_SHARE))
            n_point = max(1, round(n * POINT_SHARE)) if n >= 3 else 0
            n_recv = max(1, n - n_lead - n_point)
            peak = import_peak if c == n_counties - 1 else bulk_peak
            lead_rooms = max(MIN_ROOMS["lead"], math.ceil(peak / n_lead))
            recv_rooms = max(MIN_ROOMS["receiving"], math.ceil((peak * 5 - n_point) / n_recv))
            for i in range(n_lead + n_recv + n_point):
                role = "lead" if i < n_lead else "receiving" if i < n_lead + n_recv else "point"
                school = School(
                    0,
                    plan.id,
                    f"{name}{'中心' if role == 'lead' else ''}第{i + 1}{'教学点' if role == 'point' else '小学'}",
                    is_lead=role == "lead",
                    is_receiving=role != "lead",
                    is_teaching_point=role == "point",
                    bandwidth_mbps={"lead": 1000.0, "receiving": 100.0, "point": 200.0}[role],
                )
                sid = repo.add_school(conn, school)
                school_names[sid] = school.name
                rooms = {"lead": lead_rooms, "receiving": recv_rooms, "point": MIN_ROOMS["point"]}[role]
                for r in range(rooms):
                    room_name = f"录播教室{r + 1}" if role == "lead" else f"教室{r + 1}"
                    rid = repo.add_classroom(conn, sid, room_name)
                    room_names[rid] = room_name
                    room_school[rid] = sid
                    if role == "lead":
                        plan.lead_rooms.append((rid, sid, r))
                    else:
                        plan.receiving_rooms.append(rid)
                staff: list[int] = []
                for t in range(max(TEACHERS_PER_SCHOOL[role], rooms if role == "lead" else 0)):
                    level = levels[t % len(levels)] if role == "lead" else "none"
                    teacher_name = f"教师{t + 1:03d}"
                    tid = repo.add_teacher(
                        conn,
                        Teacher(0, sid, teacher_name, level, (SUBJECTS[t % len(SUBJECTS)],)),  # type: ignore[arg-type]
                    )
                    teacher_names[tid] = teacher_name
                    staff.append(tid)
                if role == "lead":
                    rng.shuffle(staff)  # backbone teachers are not all the first in the rotation
                    plan.teachers_of[sid] = staff
            members = [t for staff in plan.teachers_of.values() for t in staff]
            for k in range(COMMUNITIES_PER_COUNTY):
                community_name = f"{name}研修共同体{k + 1}"
                chosen = rng.sample(members, min(COMMUNITY_MEMBERS, len(members)))
                cid = repo.add_community(conn, plan.id, community_name, chosen)
                community_names[cid] = community_name
                plan.communities.append(cid)
            plans.append(plan)
    semester = next(s for s in repo.semesters() if s.id == semester_id)
    return Region(
        counties=plans[:-1],
        import_county=plans[-1],
        semester=semester,
        school_names=school_names,
        room_names=room_names,
        room_school=room_school,
        teacher_names=teacher_names,
        community_names=community_names,
        schools=len(school_names),
        teachers=len(teacher_names),
        classrooms=len(room_names),
    )


def cell_times(days: Sequence[date], tz: ZoneInfo) -> list[tuple[date, int, int, int]]:
    """Every (day, weekly key, start epoch, end epoch) cell of the semester, in time order."""
    out = []
    for day in days:
        for s, (hh, mm) in enumerate(SLOTS):
            start = datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz)
            out.append(
                (
                    day,
                    day.weekday() * len(SLOTS) + s,
                    int(start.timestamp()),
                    int(start.timestamp()) + 60 * LESSON_MINUTES,
                )
            )
    return out


def load_lessons(db: Database, region: Region, opts: BenchOptions, tz: ZoneInfo) -> None:
    """The bulk-loaded counties' semester: lessons, receivers, and for the past, evidence and ledger."""
    rng = random.Random(opts.seed + 1)
    cells = cell_times(teaching_days(region.semester), tz)
    per_cell = spread(opts.lessons, len(cells))
    today_epoch = int(datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=tz).timestamp())
    now = today_epoch  # the rows were written as the semester went by, up to "today"
    conn = db.conn
    # Secondary indexes are dropped for the load and rebuilt once at the end: SQLite builds an index
    # from sorted keys several times faster than it maintains it row by row under random inserts.
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('lesson', 'lesson_receiver', 'ledger')"
    ).fetchall()
    with db.write() as c:
        for name, _ in indexes:
            c.execute(f"DROP INDEX {name}")
    lesson_id = ledger_id = 0
    day_batch: list[tuple[int, int, int, list[Planned]]] = []

    def flush() -> None:
        nonlocal lesson_id, ledger_id
        lessons: list[tuple[Any, ...]] = []
        receivers: list[tuple[int, int, int]] = []
        evidence: list[tuple[Any, ...]] = []
        attendance: list[tuple[Any, ...]] = []
        ledger: list[tuple[Any, ...]] = []
        credits: list[tuple[Any, ...]] = []
        for key, start, end, planned in day_batch:
            settled = end <= today_epoch
            for p in planned:
                lesson_id += 1
                status = "scheduled"
                if settled:
                    delivered = rng.random() < DELIVERED_SHARE
                    status = "delivered" if delivered else "missed"
                    lead = LESSON_MINUTES * (rng.uniform(0.9, 1.0) if delivered else rng.uniform(0.0, 0.5))
                    evidence.append((lesson_id, round(lead, 1), now, "bench"))
                    for r in p.receivers:
                        minutes = LESSON_MINUTES * rng.uniform(0.85, 1.0) if delivered else 0.0
                        attendance.append((lesson_id, r, round(minutes, 1), now))
                    if delivered:
                        ledger_id += 1
                        reason = f"delivered: lead {lead:.0f} min"
                        credits.extend((lesson_id, r, end, reason) for r in p.receivers)
                        if p.kind == Kind.FAMOUS_SCHOOL:
                            ledger.append(
                                (ledger_id, lesson_id, "school_credit", None, p.lead_school, 1.0, 1.0, 1.0, end, reason)
                            )
                        else:
                            ledger.append(
                                (
                                    ledger_id,
                                    lesson_id,
                                    "teacher_workload",
                                    p.teacher,
                                    p.lead_school,
                                    1.0,
                                    1.5,
                                    1.5,
                                    end,  # booked at settlement
                                    reason,
                                )
                            )
                lessons.append(
                    (
                        lesson_id,
                        p.kind.value,
                        p.subject,
                        p.grade,
                        p.teacher,
                        p.lead_room,
                        p.community,
                        region.semester.id,
                        f"{p.teacher}:{p.lead_room}:{key}",
                        start,
                        end,
                        status,
                        f"{p.teacher}:{p.lead_room}:{start}",  # = repository.lesson_key
                        now - 100 * 86400,  # the timetable was entered before the semester began
                        now,
                        end if settled else None,
                    )
                )
                receivers.extend((lesson_id, r, start) for r in sorted(p.receivers))
        with db.write() as c:
            c.executemany(
                "INSERT INTO lesson(id, kind, subject, grade, lead_teacher_id, lead_classroom_id, community_id, "
                "semester_id, series_id, start_utc, end_utc, status, lesson_key, created_at, updated_at, settled_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                lessons,
            )
            c.executemany(
                "INSERT INTO receiver_credit(lesson_id, classroom_id, school_id, credit, created_at, actor, reason) "
                "SELECT ?, id, school_id, 1, ?, 'system', ? FROM classroom WHERE id = ?",
                [(lid, at, reason, room) for lid, room, at, reason in credits],
            )
            c.executemany("INSERT INTO lesson_receiver(lesson_id, classroom_id, start_utc) VALUES (?, ?, ?)", receivers)
            c.executemany(
                "INSERT INTO evidence(lesson_id, lead_minutes, updated_at, source) VALUES (?, ?, ?, ?)", evidence
            )
            c.executemany(
                "INSERT INTO attendance(lesson_id, classroom_id, minutes, updated_at) VALUES (?, ?, ?, ?)", attendance
            )
            c.executemany(
                "INSERT INTO ledger(id, lesson_id, entry_type, teacher_id, school_id, base_hours, factor, "
                "weighted_hours, created_at, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'system', ?)",
                ledger,
            )
        region.lessons += len(lessons)
        region.receivers += len(receivers)
        region.settled += len(evidence)
        region.delivered += len(ledger)
        region.ledger += len(ledger)
        region.attendance += len(attendance)
        day_batch.clear()

    counties = region.counties
    for i, (_day, key, start, end) in enumerate(cells):
        shares = spread(per_cell[i], len(counties))
        planned: list[Planned] = []
        for k, county in enumerate(counties):
            # rotate which counties get the remainder, so no county is always the busiest
            planned.extend(plan_cell(county, key, shares[(k + i) % len(counties)]))
        day_batch.append((key, start, end, planned))
        if len(day_batch) >= len(SLOTS) * 5:  # a week of cells per transaction keeps memory small
            flush()
    if day_batch:
        flush()
    opts.log(f"lessons loaded: {region.lessons}; rebuilding {len(indexes)} indexes")
    with db.write() as c:
        for _, sql in indexes:
            c.execute(sql)
    conn.execute("ANALYZE")


def county_csv(region: Region, opts: BenchOptions, tz: ZoneInfo) -> bytes:
    """The import county's timetable as an administrator exports it from Excel: UTF-8 with BOM."""
    county = region.import_county
    cells = cell_times(teaching_days(region.semester), tz)
    per_cell = spread(opts.county_lessons, len(cells))
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(CHINESE_HEADER)
    for i, (day, key, start, end) in enumerate(cells):
        begin = datetime.fromtimestamp(start, tz)
        finish = datetime.fromtimestamp(end, tz)
        for p in plan_cell(county, key, per_cell[i]):
            out.writerow(
                [
                    day.isoformat(),
                    f"{begin:%H:%M}",
                    f"{finish:%H:%M}",
                    KIND_LABELS[p.kind.value],
                    p.subject,
                    p.grade,
                    region.school_names[p.lead_school],
                    region.teacher_names[p.teacher],
                    region.room_names[p.lead_room],
                    ";".join(
                        f"{region.school_names[region.room_school[r]]}/{region.room_names[r]}" for r in p.receivers
                    ),
                    region.community_names[p.community] if p.community is not None else "",
                    "",
                ]
            )
    return buf.getvalue().encode("utf-8-sig")


def sample_drafts(region: Region, opts: BenchOptions, tz: ZoneInfo) -> list[LessonDraft]:
    """New lessons an administrator might add: a bulk county's teacher, room and receivers at a busy time.

    Some of them collide with stored lessons, as real requests do; the check costs the same either way.
    """
    rng = random.Random(opts.seed + 2)
    cells = cell_times(teaching_days(region.semester), tz)
    drafts = []
    for _ in range(opts.samples):
        county = rng.choice(region.counties)
        _day, _key, start, end = rng.choice(cells)
        room, school, _index = rng.choice(county.lead_rooms)
        kind = rng.choice((Kind.SPECIALISED, Kind.MASTER, Kind.FAMOUS_SCHOOL))
        receivers = tuple(sorted(rng.sample(county.receiving_rooms, min(3, len(county.receiving_rooms)))))
        drafts.append(
            LessonDraft(
                kind=kind,
                subject="数学",
                grade="三年级",
                lead_teacher_id=rng.choice(county.teachers_of[school]),
                lead_classroom_id=room,
                start=datetime.fromtimestamp(start, UTC),
                end=datetime.fromtimestamp(end, UTC),
                receiving_classroom_ids=receivers,
                community_id=county.communities[0] if kind == Kind.MASTER else None,
                semester_id=region.semester.id,
            )
        )
    return drafts


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of the samples at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def directory_xlsx(db: Database) -> bytes:
    """The generated region's directory as an administrator's workbook (the template's sheets and headers)."""
    from openpyxl import Workbook

    from scheduler.directoryimport import TABLE_ZH, TEMPLATE_HEADERS

    c = db.conn
    book = Workbook(write_only=True)

    def sheet(table: str, rows: Any) -> None:
        ws = book.create_sheet(TABLE_ZH[table])
        ws.append(list(TEMPLATE_HEADERS[table]))
        for r in rows:
            ws.append(list(r))

    sheet(
        "counties",
        c.execute(
            "SELECT r.name, ci.name, k.name, k.workload_factor, k.standard_lesson_minutes FROM county k "
            "JOIN city ci ON ci.id = k.city_id JOIN region r ON r.id = ci.region_id ORDER BY k.id"
        ),
    )
    roles = {
        (1, 0, 0): "主讲",
        (0, 1, 0): "接收",
        (0, 1, 1): "接收、教学点",
        (1, 1, 0): "主讲、接收",
        (0, 0, 1): "教学点",
    }
    sheet(
        "schools",
        (
            (name, county, roles.get((lead, recv, point), "接收"), bw)
            for name, county, lead, recv, point, bw in c.execute(
                "SELECT s.name, k.name, s.is_lead, s.is_receiving, s.is_teaching_point, s.bandwidth_mbps FROM school s "
                "JOIN county k ON k.id = s.county_id ORDER BY s.id"
            )
        ),
    )
    sheet("classrooms", c.execute("SELECT s.name, r.name FROM classroom r JOIN school s ON s.id = r.school_id"))
    levels = {"region": "自治区级", "city": "市级", "county": "县级", "none": "无"}
    sheet(
        "teachers",
        (
            (name, school, levels[level], subjects.replace(",", "、"))
            for name, school, level, subjects in c.execute(
                "SELECT t.name, s.name, t.level, t.subjects FROM teacher t JOIN school s ON s.id = t.school_id"
            )
        ),
    )
    sheet("semesters", c.execute("SELECT name, start_date, end_date FROM semester"))
    sheet(
        "holidays",
        c.execute("SELECT s.name, h.name, h.day, h.day, '假期' FROM holiday h JOIN semester s ON s.id = h.semester_id"),
    )
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def run(opts: BenchOptions, workdir: Path) -> dict[str, Any]:
    config = SchedulerConfig(media_capacity_streams=REGION_MEDIA_STREAMS)
    tz = config.tz
    path = workdir / "bench-schedule.sqlite3"
    if path.exists():
        raise FileExistsError(f"{path} exists; give --keep an empty folder")
    began = time.perf_counter()
    db = Database(path)
    # Generation only: no journal and no fsync (a crash just means running the benchmark again). The
    # measurements below run with the product's own settings, restored before they start.
    db.conn.execute("PRAGMA journal_mode = OFF")
    db.conn.execute("PRAGMA synchronous = OFF")
    region = build_region(db, opts)
    opts.log(f"region: {region.schools} schools, {region.teachers} teachers, {region.classrooms} classrooms")
    load_lessons(db, region, opts, tz)
    db.conn.execute("PRAGMA journal_mode = WAL")
    db.conn.execute("PRAGMA synchronous = NORMAL")
    generate_s = time.perf_counter() - began
    opts.log(f"generated in {generate_s:.1f} s: {region.lessons} lessons")
    timetable = Timetable(db, config)

    data = county_csv(region, opts, tz)
    t0 = time.perf_counter()
    result = timetable.import_csv(data, "county-timetable.csv", "bench")
    county_import_s = time.perf_counter() - t0
    if not result.ok or result.lessons_added != opts.county_lessons:
        first = "; ".join(f"line {p.line}: {p.message}" for p in result.errors[:3])
        raise RuntimeError(f"the county timetable did not import ({result.lessons_added} added): {first}")
    opts.log(f"county import: {result.lessons_added} lessons in {county_import_s:.2f} s")

    t0 = time.perf_counter()
    report = build_report(db, config, region.semester, TODAY)
    region_report_s = time.perf_counter() - t0
    opts.log(f"region report in {region_report_s:.2f} s")

    past = TODAY - timedelta(days=28)
    t0 = time.perf_counter()
    build_report(db, config, region.semester, past)
    report_as_of_past_s = time.perf_counter() - t0
    opts.log(f"region report as of {past} in {report_as_of_past_s:.2f} s")

    book = directory_xlsx(db)
    fresh = Database(workdir / "bench-directory.sqlite3")
    t0 = time.perf_counter()
    directory = Timetable(fresh, config).import_directory(book, "region-directory.xlsx", "bench")
    directory_import_s = time.perf_counter() - t0
    fresh.close()
    if not directory.ok:
        first = "; ".join(f"{p.sheet} row {p.line}: {p.message}" for p in directory.errors[:3])
        raise RuntimeError(f"the region directory did not import: {first}")
    opts.log(f"directory import: {directory.added} rows in {directory_import_s:.2f} s")

    timings: list[float] = []
    with_errors = 0
    drafts = sample_drafts(region, opts, tz)
    # The import just wrote, so the first check rebuilds the cached directory: reported apart, as the
    # cost of the first check after any write, and kept out of the steady-state percentiles.
    t0 = time.perf_counter()
    timetable.check([(None, drafts[0])])
    first_check_ms = (time.perf_counter() - t0) * 1000.0
    for draft in drafts:
        t0 = time.perf_counter()
        problems = timetable.check([(None, draft)])
        timings.append((time.perf_counter() - t0) * 1000.0)
        with_errors += any(p.severity == "error" for p in problems)
    opts.log(f"conflict check p99 {percentile(timings, 0.99):.2f} ms over {len(timings)} samples")

    lessons_total = int(db.conn.execute("SELECT count(*) FROM lesson").fetchone()[0])
    db.close()
    return {
        "schools": region.schools,
        "teachers": region.teachers,
        "classrooms": region.classrooms,
        "counties": len(region.counties) + 1,
        "lessons": region.lessons,
        "lesson_receivers": region.receivers,
        "lessons_settled": region.settled,
        "lessons_delivered": region.delivered,
        "ledger_entries": region.ledger,
        "attendance_rows": region.attendance,
        "generate_s": round(generate_s, 2),
        "county_lessons": result.lessons_added,
        "county_csv_rows": result.rows,
        "county_csv_bytes": len(data),
        "county_import_warnings": len(result.warnings),
        "county_import_s": round(county_import_s, 3),
        "lessons_after_import": lessons_total,
        "region_report_s": round(region_report_s, 3),
        "report_as_of_past_s": round(report_as_of_past_s, 3),
        "directory_xlsx_bytes": len(book),
        "directory_rows_added": directory.added,
        "directory_import_s": round(directory_import_s, 3),
        "report_rows": {name: len(rows) for name, rows in report.sections.items()},
        "conflict_check_samples": len(timings),
        "conflict_check_with_errors": with_errors,
        "conflict_check_p50_ms": round(percentile(timings, 0.50), 3),
        "conflict_check_p99_ms": round(percentile(timings, 0.99), 3),
        "conflict_check_max_ms": round(max(timings), 3),
        "conflict_check_mean_ms": round(statistics.fmean(timings), 3),
        "conflict_check_after_write_ms": round(first_check_ms, 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "database_mib": round(path.stat().st_size / 1048576, 1),
        "sqlite_version": sqlite3.sqlite_version,
        "python": sys.version.split()[0],
        "today": TODAY.isoformat(),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classroom bench schedule", description="The scheduler at the size of a region: import, report, check."
    )
    parser.add_argument("--schools", type=int, default=3000, help="schools in the region")
    parser.add_argument("--lessons", type=int, default=1_000_000, help="lessons loaded in the semester")
    parser.add_argument(
        "--county-lessons", type=int, default=None, help="lessons in the imported county timetable (default 20000)"
    )
    parser.add_argument("--samples", type=int, default=1000, help="conflict-check samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="build the database in this folder and keep it")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.schools < 2 or args.lessons < 1 or args.samples < 1:
        print("classroom bench schedule: --schools >= 2, --lessons >= 1 and --samples >= 1", file=sys.stderr)
        return 2
    # A scaled-down run (--lessons) gets a county timetable in proportion, unless one is asked for.
    county_lessons = (
        args.county_lessons if args.county_lessons is not None else min(20_000, max(100, args.lessons // 50))
    )
    opts = BenchOptions(
        schools=args.schools,
        lessons=args.lessons,
        county_lessons=county_lessons,
        samples=args.samples,
        seed=args.seed,
        keep=args.keep,
        log=(lambda msg: print(f"[bench schedule] {msg}", file=sys.stderr, flush=True)),
    )
    try:
        if opts.keep is not None:
            opts.keep.mkdir(parents=True, exist_ok=True)
            figures = run(opts, opts.keep)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-schedule-") as tmp:
                figures = run(opts, Path(tmp))
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"classroom bench schedule: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        for key, value in figures.items():
            print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
