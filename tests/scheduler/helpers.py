"""A small county built in a temporary database, for the scheduler's service-level tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from scheduler.config import SchedulerConfig
from scheduler.db import Database
from scheduler.model import School, Semester, Teacher
from scheduler.timetable import Timetable

SEMESTER_START = date(2026, 9, 1)
SEMESTER_END = date(2027, 1, 15)
HOLIDAYS = {date(2026, 10, d): "国庆节" for d in range(1, 8)}

BEFORE_SEMESTER = datetime(2026, 8, 31, tzinfo=UTC)  # the tests' "now": every lesson lies ahead


class Clock:
    """A clock a test moves by hand, for the timetable and the timed jobs alike."""

    def __init__(self, now: datetime = BEFORE_SEMESTER) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


HEADER = "日期,开始时间,结束时间,类型,学科,年级,主讲学校,主讲教师,主讲教室,接收教室,研修共同体,每周重复至\n"


def small_county(path: Path, clock: Callable[[], datetime] | None = None, **config: object) -> Timetable:
    """Two lead schools, three receiving schools (one a teaching point), teachers of each level.

    Its clock stands before the semester unless a test gives its own."""
    db = Database(path)
    t = Timetable(db, SchedulerConfig(**config), clock=clock or Clock())  # type: ignore[arg-type]
    r = t.repo
    with db.write() as c:
        region = r.add_region(c, "宁夏回族自治区")
        city = r.add_city(c, region, "中卫市")
        county = r.add_county(c, city, "沙坡头区")
        lead1 = r.add_school(c, School(0, county, "第一小学", is_lead=True, bandwidth_mbps=1000))
        lead2 = r.add_school(c, School(0, county, "第三中学", is_lead=True, bandwidth_mbps=1000))
        recv1 = r.add_school(c, School(0, county, "迎水桥小学", is_receiving=True, bandwidth_mbps=100))
        recv2 = r.add_school(c, School(0, county, "香山小学", is_receiving=True, bandwidth_mbps=100))
        point = r.add_school(c, School(0, county, "红泉教学点", is_receiving=True, is_teaching_point=True))
        for sid in (lead1, lead2):
            r.add_classroom(c, sid, "录播教室1")
            r.add_classroom(c, sid, "录播教室2")
        for sid in (recv1, recv2):
            r.add_classroom(c, sid, "三年级1班")
            r.add_classroom(c, sid, "五年级1班")
        r.add_classroom(c, point, "复式教室")
        r.add_teacher(c, Teacher(0, lead1, "马丽", "region", ("英语",)))  # type: ignore[arg-type]
        r.add_teacher(c, Teacher(0, lead1, "王芳", "city", ("音乐",)))  # type: ignore[arg-type]
        r.add_teacher(c, Teacher(0, lead2, "张伟", "county", ("数学",)))  # type: ignore[arg-type]
        r.add_teacher(c, Teacher(0, lead2, "周婷", "none", ("体育",)))  # type: ignore[arg-type]
        r.add_semester(c, Semester(0, "2026秋季学期", SEMESTER_START, SEMESTER_END, frozenset(HOLIDAYS)), HOLIDAYS)
        r.add_community(c, county, "英语研修共同体", [1, 2])
    return t


def csv_bytes(*rows: str, bom: bool = True, encoding: str = "utf-8") -> bytes:
    text = HEADER + "".join(row + "\n" for row in rows)
    data = text.encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom and encoding == "utf-8" else data


# a well-formed row: Monday 2026-09-07 08:00-08:40, 马丽 to two receiving classrooms
GOOD = "2026-09-07,08:00,08:40,专递课堂,英语,三年级,第一小学,马丽,录播教室1,迎水桥小学/三年级1班;香山小学/三年级1班,,"
