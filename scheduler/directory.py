"""Writing an imported directory: the plan of `directoryimport` applied in one transaction, or nothing.

Rows are matched by name (county, school; classroom and teacher within their school; community,
semester), so importing the same file again finds everything unchanged. A row that differs from what
is stored updates it: a school's roles or bandwidth, a teacher's level or subjects, a county's standard
lesson length, a county's workload factor (from today on: earlier lessons keep theirs). Nothing is
deleted by an import: holidays, community members and places missing from a file stay.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from datetime import date

from scheduler.db import Database
from scheduler.directoryimport import Known, Plan, plan_import
from scheduler.model import Level, Problem, School, Semester, Teacher
from scheduler.repository import Repository
from scheduler.sheets import CsvFormatError, read_sheets


@dataclass
class DirectoryImportResult:
    filename: str
    dry_run: bool
    rows: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    tables: dict[str, str] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, object]:
        from scheduler.timetable import problem_json  # the one representation of a problem

        return {
            "filename": self.filename,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "rows": self.rows,
            "added": self.added if self.ok else 0,
            "changed": self.changed if self.ok else 0,
            "unchanged": self.unchanged if self.ok else 0,
            "tables": self.tables,
            "errors": [problem_json(p) for p in self.errors],
        }


def known_directory(conn: sqlite3.Connection) -> Known:
    k = Known()
    regions = {r[0]: r[1] for r in conn.execute("SELECT id, name FROM region")}
    k.regions = set(regions.values())
    cities = {r[0]: (regions[r[1]], r[2]) for r in conn.execute("SELECT id, region_id, name FROM city")}
    k.cities = set(cities.values())
    counties: dict[int, str] = {}
    for cid, city_id, name, factor, standard in conn.execute(
        "SELECT id, city_id, name, workload_factor, standard_lesson_minutes FROM county"
    ):
        counties[cid] = name
        k.counties[name] = (*cities[city_id], float(factor), int(standard))
    schools: dict[int, str] = {}
    for sid, county_id, name, lead, receiving, point, bw in conn.execute(
        "SELECT id, county_id, name, is_lead, is_receiving, is_teaching_point, bandwidth_mbps FROM school"
    ):
        schools[sid] = name
        roles = {r for r, on in (("lead", lead), ("receiving", receiving), ("teaching_point", point)) if on}
        k.schools[name] = (counties[county_id], frozenset(roles), float(bw))
    k.classrooms = {(schools[r[0]], r[1]) for r in conn.execute("SELECT school_id, name FROM classroom")}
    teachers: dict[int, tuple[str, str]] = {}
    for tid, sid, name, level, subjects, staff in conn.execute(
        "SELECT id, school_id, name, level, subjects, staff_no FROM teacher"
    ):
        teachers[tid] = (schools[sid], name)
        k.teachers[(schools[sid], name)] = (Level(level), tuple(x for x in subjects.split(",") if x))
        if staff:
            k.staff[staff] = (schools[sid], name)
    members: dict[int, set[tuple[str, str]]] = {}
    for cid, tid in conn.execute("SELECT community_id, teacher_id FROM community_member"):
        members.setdefault(cid, set()).add(teachers[tid])
    for cid, county_id, name in conn.execute("SELECT id, county_id, name FROM community"):
        k.communities[name] = (counties[county_id], frozenset(members.get(cid, ())))
    semesters: dict[int, str] = {}
    for sid, name, start, end in conn.execute("SELECT id, name, start_date, end_date FROM semester"):
        semesters[sid] = name
        k.semesters[name] = (date.fromisoformat(start), date.fromisoformat(end))
    for table, kind in (("holiday", "holiday"), ("makeup_day", "makeup")):
        for sid, day in conn.execute(f"SELECT semester_id, day FROM {table}"):
            k.days.add((semesters[sid], date.fromisoformat(day), kind))
    return k


def import_directory(
    db: Database, repo: Repository, data: bytes, filename: str, actor: str, today: date, dry_run: bool = False
) -> DirectoryImportResult:
    """All or nothing, serialised with every other write (one IMMEDIATE transaction from reading the
    current directory to the last insert)."""
    result = DirectoryImportResult(filename, dry_run)
    try:
        sheets = read_sheets(data)
    except CsvFormatError as exc:
        result.errors.append(Problem("bad_file", str(exc), message_zh=exc.message_zh))
        return result
    try:
        with db.write() as conn:
            known = known_directory(conn)
            plan = plan_import(sheets, known)
            result.rows, result.tables = plan.rows, plan.tables
            result.errors = sorted(plan.problems, key=lambda p: (p.sheet, p.line or 0, p.code))
            if result.errors:
                return result
            _apply(conn, repo, plan, known, result, actor, today)
            if dry_run:
                raise _DryRun  # rolls the transaction back: a dry run counts what would change, writes nothing
            conn.execute(
                "INSERT INTO directory_import(created_at, actor, filename, sha256, added, changed, unchanged) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    repo.now(),
                    actor,
                    filename,
                    hashlib.sha256(data).hexdigest(),
                    result.added,
                    result.changed,
                    result.unchanged,
                ),
            )
            repo.add_audit(
                conn,
                actor,
                "directory_import",
                "done",
                f"{filename}: {result.added} added, {result.changed} changed, {result.unchanged} unchanged",
            )
    except _DryRun:
        pass
    return result


class _DryRun(Exception):
    pass


def _apply(
    conn: sqlite3.Connection,
    repo: Repository,
    plan: Plan,
    known: Known,
    result: DirectoryImportResult,
    actor: str,
    today: date,
) -> None:
    def one(row: sqlite3.Row | None) -> int | None:
        return None if row is None else int(row[0])

    def count(added: bool, changed: bool = False) -> None:
        if added:
            result.added += 1
        elif changed:
            result.changed += 1
        else:
            result.unchanged += 1

    county_ids: dict[str, int] = {r[1]: r[0] for r in conn.execute("SELECT id, name FROM county")}
    for name, (region, city, factor, standard) in plan.counties.items():
        region_id = one(conn.execute("SELECT id FROM region WHERE name = ?", (region,)).fetchone())
        if region_id is None:
            region_id = repo.add_region(conn, region)
        city_id = one(
            conn.execute("SELECT id FROM city WHERE region_id = ? AND name = ?", (region_id, city)).fetchone()
        )
        if city_id is None:
            city_id = repo.add_city(conn, region_id, city)
        if name not in county_ids:
            county_ids[name] = repo.add_county(conn, city_id, name, factor or 1.5, standard or 40)
            count(True)
            continue
        _r, _c, old_factor, old_standard = known.counties[name]
        changed = False
        if factor is not None and factor != old_factor:
            repo.set_county_factor(conn, county_ids[name], factor, today, actor)
            changed = True
        if standard is not None and standard != old_standard:
            repo.set_standard_minutes(conn, county_ids[name], standard)
            changed = True
        count(False, changed)

    school_ids: dict[str, int] = {r[1]: r[0] for r in conn.execute("SELECT id, name FROM school")}
    for name, (county, roles, bandwidth) in plan.schools.items():
        flags = {
            "is_lead": "lead" in roles,
            "is_receiving": "receiving" in roles,
            "is_teaching_point": "teaching_point" in roles,
        }
        if name not in school_ids:
            school_ids[name] = repo.add_school(
                conn, School(0, county_ids[county], name, bandwidth_mbps=bandwidth, **flags)
            )
            count(True)
        elif known.schools[name][1:] != (roles, bandwidth):
            repo.update_school(
                conn, school_ids[name], {**{k: int(v) for k, v in flags.items()}, "bandwidth_mbps": bandwidth}
            )
            count(False, True)
        else:
            count(False)

    for school, room in plan.classrooms:
        if (school, room) in known.classrooms:
            count(False)
        else:
            repo.add_classroom(conn, school_ids[school], room)
            count(True)

    teacher_ids: dict[tuple[str, str], int] = {}
    for tid, sid, name in conn.execute(
        "SELECT t.id, s.name, t.name FROM teacher t JOIN school s ON s.id = t.school_id"
    ):
        teacher_ids[(sid, name)] = tid
    for (school, name), (level, subjects) in plan.teachers.items():
        if (school, name) not in teacher_ids:
            teacher_ids[(school, name)] = repo.add_teacher(conn, Teacher(0, school_ids[school], name, level, subjects))
            count(True)
        elif known.teachers[(school, name)] != (level, subjects):
            repo.update_teacher(
                conn, teacher_ids[(school, name)], {"level": level.value, "subjects": ",".join(subjects)}
            )
            count(False, True)
        else:
            count(False)
    conn.executemany(
        "UPDATE teacher SET staff_no = ? WHERE id = ? AND staff_no IS NOT ?",
        [(staff, teacher_ids[key], staff) for staff, key in plan.staff.items() if known.staff.get(staff) != key],
    )

    community_ids: dict[str, int] = {r[1]: r[0] for r in conn.execute("SELECT id, name FROM community")}
    for name, (county, members) in plan.communities.items():
        ids = [teacher_ids[m] for m in members]
        if name not in community_ids:
            repo.add_community(conn, county_ids[county], name, ids)
            count(True)
            continue
        new = [teacher_ids[m] for m in members if m not in known.communities[name][1]]
        conn.executemany(
            "INSERT OR IGNORE INTO community_member(community_id, teacher_id) VALUES (?, ?)",
            [(community_ids[name], t) for t in new],
        )
        count(False, bool(new))

    semester_ids: dict[str, int] = {r[1]: r[0] for r in conn.execute("SELECT id, name FROM semester")}
    for name, (start, end) in plan.semesters.items():
        if name in semester_ids:
            count(False)
        else:
            semester_ids[name] = repo.add_semester(conn, Semester(0, name, start, end))
            count(True)
    added_days = 0
    for (semester, day), (kind, title) in sorted(plan.days.items()):
        if (semester, day, kind) in known.days:
            continue
        table = "holiday" if kind == "holiday" else "makeup_day"
        cur = conn.execute(
            f"INSERT OR IGNORE INTO {table}(semester_id, day, name) VALUES (?, ?, ?)",
            (semester_ids[semester], day.isoformat(), title),
        )
        added_days += cur.rowcount
    result.added += added_days
    result.unchanged += len(plan.days) - added_days
