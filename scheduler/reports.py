"""Quota and workload reports for a semester, computed from the database with grouped queries.

A report as of a past date is what the system knew at the end of that date (see `rules/history.py`).

Sections (each a list of flat rows, so they render to CSV, XLSX and JSON alike):
- `teachers`: every backbone teacher's delivered online lesson hours (课时) against the 15/10/5 minimums;
- `schools`: every lead and receiving school's average delivered 课时 per teaching week against 5;
- `workload`: every lead teacher's ordinary and weighted lesson hours, from the ledger;
- `famous_school`: famous-school lessons credited to each lead school, from the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.config import SchedulerConfig
from scheduler.db import Database
from scheduler.model import Semester
from scheduler.rules.calendar import teaching_weeks, teaching_weeks_elapsed
from scheduler.rules.history import UNSETTLED, StatusChange, status_as_of
from scheduler.rules.quotas import Progress, school_rate, teacher_status

CORRECTED_SQL = "(SELECT lesson_id FROM correction WHERE kind != 'attendance')"  # their status has a history
SECTIONS = ("teachers", "schools", "workload", "famous_school")

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "teachers": (
        ("teacher_id", "教师编号"),
        ("teacher", "教师"),
        ("school", "学校"),
        ("county", "区县"),
        ("level", "骨干级别"),
        ("minimum", "最低课时"),
        ("delivered", "已完成"),
        ("missed", "未完成"),
        ("remaining", "待上"),
        ("forecast", "预计"),
        ("status", "状态"),
    ),
    "schools": (
        ("school_id", "学校编号"),
        ("school", "学校"),
        ("county", "区县"),
        ("role", "角色"),
        ("delivered", "已完成"),
        ("missed", "未完成"),
        ("remaining", "待上"),
        ("teaching_weeks_elapsed", "已过教学周"),
        ("teaching_weeks", "教学周"),
        ("average_per_week", "周均开课"),
        ("forecast_per_week", "预计周均"),
        ("minimum_per_week", "最低周均"),
        ("status", "状态"),
    ),
    "workload": (
        ("teacher_id", "教师编号"),
        ("teacher", "教师"),
        ("school", "学校"),
        ("county", "区县"),
        ("specialised", "专递课堂"),
        ("master", "名师课堂"),
        ("lesson_hours", "课时"),
        ("weighted_hours", "折算课时"),
    ),
    "famous_school": (
        ("school_id", "学校编号"),
        ("school", "学校"),
        ("county", "区县"),
        ("lessons", "名校网络课堂"),
        ("credit_hours", "计入学校课时"),
    ),
}


@dataclass
class Report:
    semester: Semester
    as_of: date
    sections: dict[str, list[dict[str, Any]]]

    def to_json(self) -> dict[str, Any]:
        return {
            "semester": {
                "id": self.semester.id,
                "name": self.semester.name,
                "start": self.semester.start.isoformat(),
                "end": self.semester.end.isoformat(),
            },
            "as_of": self.as_of.isoformat(),
            **self.sections,
        }


def _names(conn: Any) -> tuple[dict[int, tuple[str, int]], dict[int, str], dict[int, tuple[str, int, str]]]:
    schools = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, name, county_id FROM school")}
    counties = {r[0]: r[1] for r in conn.execute("SELECT id, name FROM county")}
    teachers = {r[0]: (r[1], r[2], r[3]) for r in conn.execute("SELECT id, name, school_id, level FROM teacher")}
    return schools, counties, teachers


def cutoff_of(day: date, tz: ZoneInfo) -> int:
    """The last epoch second of a local date: a report as of that date counts what was recorded by then."""
    return int(datetime.combine(day + timedelta(days=1), time(0), tz).timestamp()) - 1


def _corrected(
    conn: Any,
    changes: dict[int, list[StatusChange]],
    cutoff: int,
    by_teacher: dict[int, dict[str, int]],
    lead: dict[int, dict[str, int]],
    receiving: dict[int, dict[str, int]],
    kinds: dict[int, dict[str, int]],
) -> None:
    """The few lessons with corrections, one at a time."""
    ids = sorted(changes)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        credited = {
            (lid, sid)
            for lid, sid, total in conn.execute(
                f"SELECT lesson_id, school_id, sum(credit) FROM receiver_credit WHERE lesson_id IN ({marks}) "
                "AND created_at <= ? GROUP BY lesson_id, classroom_id",
                [*chunk, cutoff],
            )
            if total > 0
        }
        receivers: dict[int, set[int]] = defaultdict(set)
        for lid, sid in conn.execute(
            "SELECT r.lesson_id, c.school_id FROM lesson_receiver r JOIN classroom c ON c.id = r.classroom_id "
            f"WHERE r.lesson_id IN ({marks})",
            chunk,
        ):
            receivers[lid].add(sid)
        for lid, tid, lead_school, kind, hours, current, settled_at, created_at, credits_lead in conn.execute(
            "SELECT l.id, l.lead_teacher_id, c.school_id, l.kind, l.hours, l.status, l.settled_at, l.created_at, "
            f"l.credits_lead FROM lesson l JOIN classroom c ON c.id = l.lead_classroom_id WHERE l.id IN ({marks})",
            chunk,
        ):
            status = status_as_of(created_at, settled_at, current, changes[lid], cutoff)
            if status is None or status == "cancelled":
                continue
            if credits_lead:  # a replay counts for its lead only where its county's policy said so
                by_teacher[tid][status] += hours
                lead[lead_school][status] += hours
                if status == "delivered":
                    kinds[tid][kind] += 1
            for sid in receivers.get(lid, ()):
                if status == "delivered":
                    receiving[sid]["delivered" if (lid, sid) in credited else "missed"] += hours
                else:
                    receiving[sid][status] += hours


def build_report(db: Database, config: SchedulerConfig, semester: Semester, today: date) -> Report:
    """The report as the system knew it at the end of `today`: lessons entered by then, each with the
    status its settlement and corrections up to then gave it, receiving classrooms' credits and ledger
    entries up to then. Counts are lesson hours (课时)."""
    weeks_total = len(teaching_weeks(semester))
    weeks_elapsed = min(teaching_weeks_elapsed(semester, today), weeks_total)
    cutoff = cutoff_of(today, config.tz)
    by_teacher: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    lead: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    receiving: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    kinds: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with db.read() as conn:
        schools, counties, teachers = _names(conn)
        # Lessons whose status was corrected (or cancelled, or settled by an administrator) are few: their
        # status as of the cutoff is worked out one by one (rules/history.py). All others are grouped in
        # SQL with the same rule: known once entered, settled once their settlement came.
        changes: dict[int, list[StatusChange]] = defaultdict(list)
        for lid, at, before, after in conn.execute(
            "SELECT k.lesson_id, k.created_at, k.from_status, k.to_status FROM correction k "
            "JOIN lesson l ON l.id = k.lesson_id WHERE l.semester_id = ? AND k.kind != 'attendance' ORDER BY k.id",
            (semester.id,),
        ):
            changes[lid].append(StatusChange(at, before, after))
        status_sql = (
            "CASE WHEN l.created_at > :cut THEN NULL "
            "WHEN l.settled_at <= :cut AND l.status IN ('delivered', 'missed') THEN l.status "
            f"ELSE '{UNSETTLED}' END"
        )
        args = {"cut": cutoff, "semester": semester.id}
        # a replay (录播) counts for the recorded lesson's lead only where its county's policy said so
        for tid, lead_school, kind, status, hours, n in conn.execute(
            f"SELECT l.lead_teacher_id, c.school_id, l.kind, {status_sql} AS st, sum(l.hours), count(*) "
            "FROM lesson l JOIN classroom c ON c.id = l.lead_classroom_id WHERE l.semester_id = :semester "
            f"AND l.credits_lead = 1 AND l.id NOT IN {CORRECTED_SQL} GROUP BY 1, 2, 3, 4",
            args,
        ):
            if status is None:
                continue
            by_teacher[tid][status] += hours
            lead[lead_school][status] += hours
            if status == "delivered":
                kinds[tid][kind] += n
        # a receiving school counts a delivered lesson where one of its classrooms holds its credit
        credited_sql = (
            "(SELECT count(*) FROM (SELECT 1 FROM receiver_credit g WHERE g.lesson_id = l.id "
            "AND g.school_id = c.school_id AND g.created_at <= :cut GROUP BY g.classroom_id "
            "HAVING sum(g.credit) > 0)) > 0"
        )
        for sid, status, credited, hours in conn.execute(
            f"SELECT school_id, st, credited, sum(hours) FROM (SELECT c.school_id AS school_id, l.hours AS hours, "
            f"{status_sql} AS st, CASE WHEN {status_sql} = 'delivered' THEN {credited_sql} ELSE 0 END AS credited "
            "FROM lesson l JOIN lesson_receiver r ON r.lesson_id = l.id "
            "JOIN classroom c ON c.id = r.classroom_id "
            f"WHERE l.semester_id = :semester AND l.id NOT IN {CORRECTED_SQL} "
            "GROUP BY c.school_id, l.id) WHERE st IS NOT NULL GROUP BY 1, 2, 3",
            args,
        ):
            if status == "delivered":
                receiving[sid]["delivered" if credited else "missed"] += hours
            else:
                receiving[sid][status] += hours

        if changes:
            _corrected(conn, changes, cutoff, by_teacher, lead, receiving, kinds)

        # ledger: weighted hours per teacher, credit per school, as recorded by the cutoff
        workload: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        credit: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for entry_type, tid, sid, base, weighted in conn.execute(
            "SELECT g.entry_type, g.teacher_id, g.school_id, sum(g.base_hours), sum(g.weighted_hours) "
            "FROM ledger g JOIN lesson l ON l.id = g.lesson_id WHERE l.semester_id = ? AND g.created_at <= ? "
            "GROUP BY 1, 2, 3",
            (semester.id, cutoff),
        ):
            if entry_type == "teacher_workload":
                workload[tid][0] += base
                workload[tid][1] += weighted
            else:
                credit[sid][0] += base
                credit[sid][1] += weighted

    minimums = config.level_minimums
    teacher_rows = []
    for tid, (name, sid, level) in sorted(teachers.items()):
        if level == "none":
            continue
        c = by_teacher.get(tid, {})
        p = Progress(c.get("delivered", 0), c.get("missed", 0), c.get(UNSETTLED, 0))
        minimum, status = teacher_status(level, p, minimums)
        teacher_rows.append(
            {
                "teacher_id": tid,
                "teacher": name,
                "school": schools[sid][0],
                "county": counties[schools[sid][1]],
                "level": level,
                "minimum": minimum,
                "delivered": p.delivered,
                "missed": p.missed,
                "remaining": p.remaining,
                "forecast": round(p.forecast, 1),
                "status": status.value,
            }
        )

    school_rows = []
    for role, table in (("lead", lead), ("receiving", receiving)):
        for sid in sorted(table):
            c = table[sid]
            p = Progress(c.get("delivered", 0), c.get("missed", 0), c.get(UNSETTLED, 0))
            rate = school_rate(p, weeks_elapsed, weeks_total, config.weekly_rate_min)
            name, county = schools[sid]
            school_rows.append(
                {
                    "school_id": sid,
                    "school": name,
                    "county": counties[county],
                    "role": role,
                    "delivered": p.delivered,
                    "missed": p.missed,
                    "remaining": p.remaining,
                    "teaching_weeks_elapsed": weeks_elapsed,
                    "teaching_weeks": weeks_total,
                    "average_per_week": rate.average_per_week,
                    "forecast_per_week": rate.forecast_per_week,
                    "minimum_per_week": config.weekly_rate_min,
                    "status": rate.status.value,
                }
            )

    workload_rows = []
    for tid in sorted(set(workload) | set(kinds)):
        name, sid, _ = teachers[tid]
        base, weighted = workload.get(tid, (0.0, 0.0))
        workload_rows.append(
            {
                "teacher_id": tid,
                "teacher": name,
                "school": schools[sid][0],
                "county": counties[schools[sid][1]],
                "specialised": kinds[tid].get("specialised", 0),
                "master": kinds[tid].get("master", 0),
                "lesson_hours": round(base, 2),
                "weighted_hours": round(weighted, 2),
            }
        )

    famous_rows = []
    for sid in sorted(credit):
        name, county = schools[sid]
        famous_rows.append(
            {
                "school_id": sid,
                "school": name,
                "county": counties[county],
                "lessons": round(credit[sid][0]),
                "credit_hours": round(credit[sid][1], 2),
            }
        )
    return Report(
        semester,
        today,
        {"teachers": teacher_rows, "schools": school_rows, "workload": workload_rows, "famous_school": famous_rows},
    )
