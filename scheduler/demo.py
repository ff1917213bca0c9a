"""A realistic demo county, so a newcomer sees real timetables and reports at once.

沙坡头区 of 中卫市 (宁夏): three lead schools, five receiving schools and two teaching points, teachers of
every backbone level, a semester around today with its holidays, a weekly timetable of all three
lesson kinds imported through the ordinary CSV path, and the lessons already past (entered late, so
awaiting evidence) settled from simulated evidence (most delivered, some missed).
"""

from __future__ import annotations

import csv
import io
import logging
import random
from datetime import UTC, date, datetime, timedelta

from scheduler.csvimport import CHINESE_HEADER
from scheduler.model import LessonStatus, School, Semester, Teacher
from scheduler.timetable import Timetable

log = logging.getLogger(__name__)

LEAD_SCHOOLS = ("中卫市第一小学", "中卫市第三中学", "中卫市沙坡头区东园中心小学")
RECEIVING_SCHOOLS = (
    "沙坡头区迎水桥镇中心小学",
    "沙坡头区香山乡中心小学",
    "沙坡头区兴仁镇中学",
    "沙坡头区常乐镇中心小学",
    "沙坡头区永康镇中心小学",
)
TEACHING_POINTS = ("香山乡红泉教学点", "兴仁镇团结教学点")
TEACHERS = (  # (school index, name, level, subjects)
    (0, "马丽", "region", ("英语",)),
    (0, "王芳", "city", ("音乐",)),
    (0, "李静", "county", ("美术",)),
    (0, "赵强", "none", ("科学",)),
    (1, "张伟", "region", ("数学",)),
    (1, "刘洋", "city", ("物理",)),
    (1, "杨敏", "county", ("语文",)),
    (2, "陈晨", "county", ("书法",)),
    (2, "周婷", "none", ("体育",)),
)
SLOTS = ("08:00", "08:55", "10:00", "10:55", "14:30", "15:25")


def demo_semester(today: date) -> tuple[str, date, date, dict[date, str]]:
    """The semester around `today`: autumn (September to January) or spring (March to July)."""
    year = today.year if today.month >= 3 else today.year - 1
    if today.month >= 8 or today.month <= 1:
        start, end = date(year, 9, 1), date(year + 1, 1, 16)
        holidays = {date(year, 10, d): "国庆节" for d in range(1, 8)}
        holidays[date(year + 1, 1, 1)] = "元旦"
        name = f"{year}-{year + 1}学年第一学期"
    else:
        start, end = date(today.year, 3, 1), date(today.year, 7, 10)
        holidays = {date(today.year, 5, d): "劳动节" for d in range(1, 6)}
        holidays[date(today.year, 4, 5)] = "清明节"
        name = f"{today.year - 1}-{today.year}学年第二学期"
    return name, start, end, holidays


def load_demo(timetable: Timetable, today: date | None = None, seed: int = 7) -> dict[str, int]:
    """Create the demo county; refuses to run twice on the same database."""
    repo = timetable.repo
    if repo.schools():
        raise RuntimeError("the database already has schools; the demo loads only into an empty database")
    rng = random.Random(seed)
    tz = timetable.config.tz
    now = datetime.now(UTC)
    today = today or now.astimezone(tz).date()
    name, start, end, holidays = demo_semester(today)
    with timetable.db.write() as conn:
        region = repo.add_region(conn, "宁夏回族自治区")
        city = repo.add_city(conn, region, "中卫市")
        county = repo.add_county(conn, city, "沙坡头区", 1.5)
        lead_ids = [
            repo.add_school(conn, School(0, county, n, is_lead=True, bandwidth_mbps=1000)) for n in LEAD_SCHOOLS
        ]
        recv_ids = [
            repo.add_school(conn, School(0, county, n, is_receiving=True, bandwidth_mbps=100))
            for n in RECEIVING_SCHOOLS
        ]
        point_ids = [
            repo.add_school(conn, School(0, county, n, is_receiving=True, is_teaching_point=True, bandwidth_mbps=200))
            for n in TEACHING_POINTS
        ]
        for sid in lead_ids:
            for room in ("录播教室1", "录播教室2"):
                repo.add_classroom(conn, sid, room)
        for sid in recv_ids:
            for room in ("一年级1班", "三年级1班", "五年级1班"):
                repo.add_classroom(conn, sid, room)
        for sid in point_ids:
            repo.add_classroom(conn, sid, "复式教室")
        teacher_ids = [
            repo.add_teacher(conn, Teacher(0, lead_ids[i], n, level, subjects))  # type: ignore[arg-type]
            for i, n, level, subjects in TEACHERS
        ]
        repo.add_semester(conn, Semester(0, name, start, end, frozenset(holidays)), holidays)
        repo.add_community(conn, county, "沙坡头区小学英语研修共同体", teacher_ids[:4])

    # the weekly timetable, as an administrator would import it
    rows: list[list[str]] = []
    monday = start - timedelta(days=start.weekday())
    first_week = monday if monday >= start else monday + timedelta(days=7)
    receivers = [f"{s}/{r}" for s in RECEIVING_SCHOOLS for r in ("一年级1班", "三年级1班", "五年级1班")]
    points = [f"{p}/复式教室" for p in TEACHING_POINTS]
    used: set[tuple[int, str, str]] = set()  # (weekday, slot, receiver) so receivers are not double-booked
    for t_index, (school_i, teacher, level, subjects) in enumerate(TEACHERS):
        per_week = {"region": 3, "city": 2, "county": 1, "none": 1}[level]
        kind = "专递课堂" if t_index % 3 else "名师课堂"
        if school_i == 1 and t_index == 4:
            kind = "名校网络课堂"
        for n in range(per_week):
            for _attempt in range(50):
                weekday = rng.randrange(5)
                slot = SLOTS[(t_index + n * 2 + _attempt) % len(SLOTS)]
                k = 3 if kind == "名校网络课堂" else 2
                chosen = rng.sample(receivers + points, k)
                if all((weekday, slot, c) not in used for c in chosen) and (weekday, slot, teacher) not in used:
                    break
            used.update((weekday, slot, c) for c in chosen)
            used.add((weekday, slot, teacher))
            room = f"录播教室{1 + (t_index + n) % 2}"
            if (weekday, slot, LEAD_SCHOOLS[school_i] + room) in used:
                room = f"录播教室{2 - (t_index + n) % 2}"
            used.add((weekday, slot, LEAD_SCHOOLS[school_i] + room))
            hh, mm = (int(x) for x in slot.split(":"))
            finish = (datetime(2000, 1, 1, hh, mm) + timedelta(minutes=40)).strftime("%H:%M")
            day = first_week + timedelta(days=weekday)
            rows.append(
                [
                    day.isoformat(),
                    slot,
                    finish,
                    kind,
                    subjects[0],
                    "三年级",
                    LEAD_SCHOOLS[school_i],
                    teacher,
                    room,
                    ";".join(chosen),
                    "沙坡头区小学英语研修共同体" if kind == "名师课堂" else "",
                    end.isoformat(),
                ]
            )
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CHINESE_HEADER)
    writer.writerows(rows)
    result = timetable.import_csv(buf.getvalue().encode("utf-8-sig"), "demo-timetable.csv", "demo")
    if not result.ok:
        raise RuntimeError("the demo timetable does not import: " + "; ".join(p.message for p in result.errors[:5]))

    # the past, entered late: it waits for evidence; evidence as a recording system would have kept it,
    # then the administrator's settlement from that evidence, as after a late entry
    past = repo.lessons(statuses=[LessonStatus.AWAITING_EVIDENCE], limit=100000)
    for lesson in past:
        minutes = (lesson.end - lesson.start).total_seconds() / 60
        delivered = rng.random() < 0.88
        lead = minutes * (rng.uniform(0.9, 1.0) if delivered else rng.uniform(0.0, 0.5))
        attended = {c: minutes * rng.uniform(0.85, 1.0) if delivered else 0.0 for c in lesson.receiving_classroom_ids}
        timetable.record_evidence(lesson.id, lead, attended, "demo")
    if past:
        timetable.settle_awaiting([x.id for x in past], "evidence", "demo", "demo county: the weeks already past")
    settled = len(past)
    log.info("demo county loaded: %d lessons, %d settled", result.lessons_added, settled)
    return {"lessons": result.lessons_added, "settled": settled}
