"""Quota and workload reports for a semester, computed from the database with grouped queries.

Sections (each a list of flat rows, so they render to CSV, XLSX and JSON alike):
- `teachers`: every backbone teacher's delivered online lessons against the 15/10/5 minimums;
- `schools`: every lead and receiving school's average delivered lessons per teaching week against 5;
- `workload`: every lead teacher's ordinary and weighted lesson hours, from the ledger;
- `famous_school`: famous-school lessons credited to each lead school, from the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from scheduler.config import SchedulerConfig
from scheduler.db import Database
from scheduler.model import Semester
from scheduler.rules.calendar import teaching_weeks, teaching_weeks_elapsed
from scheduler.rules.quotas import Progress, school_rate, teacher_status

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


def build_report(db: Database, config: SchedulerConfig, semester: Semester, today: date) -> Report:
    weeks_total = len(teaching_weeks(semester))
    weeks_elapsed = min(teaching_weeks_elapsed(semester, today), weeks_total)
    share = config.receiver_share
    with db.read() as conn:
        schools, counties, teachers = _names(conn)

        # teachers: lessons led, by status
        by_teacher: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for tid, status, n in conn.execute(
            "SELECT lead_teacher_id, status, count(*) FROM lesson WHERE semester_id = ? GROUP BY 1, 2",
            (semester.id,),
        ):
            by_teacher[tid][status] += n

        # lead schools: lessons led from their classrooms, by status
        lead: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for sid, status, n in conn.execute(
            "SELECT c.school_id, l.status, count(*) FROM lesson l JOIN classroom c ON c.id = l.lead_classroom_id "
            "WHERE l.semester_id = ? GROUP BY 1, 2",
            (semester.id,),
        ):
            lead[sid][status] += n

        # receiving schools: a delivered lesson counts only where one of the school's classrooms attended
        receiving: dict[int, dict[str, int]] = {}
        for sid, delivered, missed, remaining in conn.execute(
            """
            SELECT school_id,
                   sum(status = 'delivered' AND attended),
                   sum(status = 'missed' OR (status = 'delivered' AND NOT attended)),
                   sum(status IN ('scheduled', 'open', 'live'))
            FROM (
                SELECT c.school_id AS school_id, l.id, l.status AS status,
                       max(coalesce(a.minutes, 0) >= ? * (l.end_utc - l.start_utc) / 60.0) AS attended
                FROM lesson_receiver r
                JOIN lesson l ON l.id = r.lesson_id
                JOIN classroom c ON c.id = r.classroom_id
                LEFT JOIN attendance a ON a.lesson_id = r.lesson_id AND a.classroom_id = r.classroom_id
                WHERE l.semester_id = ?
                GROUP BY c.school_id, l.id
            ) GROUP BY school_id
            """,
            (share, semester.id),
        ):
            receiving[sid] = {"delivered": delivered, "missed": missed, "remaining": remaining}

        # ledger: weighted hours per teacher, credit per school (corrections included, as the ledger holds them)
        workload: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        credit: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for entry_type, tid, sid, base, weighted in conn.execute(
            "SELECT g.entry_type, g.teacher_id, g.school_id, sum(g.base_hours), sum(g.weighted_hours) "
            "FROM ledger g JOIN lesson l ON l.id = g.lesson_id WHERE l.semester_id = ? GROUP BY 1, 2, 3",
            (semester.id,),
        ):
            if entry_type == "teacher_workload":
                workload[tid][0] += base
                workload[tid][1] += weighted
            else:
                credit[sid][0] += base
                credit[sid][1] += weighted
        kinds: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for tid, kind, n in conn.execute(
            "SELECT lead_teacher_id, kind, count(*) FROM lesson WHERE semester_id = ? AND status = 'delivered' "
            "GROUP BY 1, 2",
            (semester.id,),
        ):
            kinds[tid][kind] += n

    minimums = config.level_minimums
    teacher_rows = []
    for tid, (name, sid, level) in sorted(teachers.items()):
        if level == "none":
            continue
        c = by_teacher.get(tid, {})
        p = Progress(
            c.get("delivered", 0), c.get("missed", 0), c.get("scheduled", 0) + c.get("open", 0) + c.get("live", 0)
        )
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
            if role == "lead":
                p = Progress(
                    c.get("delivered", 0),
                    c.get("missed", 0),
                    c.get("scheduled", 0) + c.get("open", 0) + c.get("live", 0),
                )
            else:
                p = Progress(int(c["delivered"] or 0), int(c["missed"] or 0), int(c["remaining"] or 0))
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
