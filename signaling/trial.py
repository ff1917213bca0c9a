"""A small live lesson set up through the REST API: for the join benchmark, the tests and a first trial.

`lesson_now_timezone()` picks the district time zone in which "now" is late morning, so a lesson can
start now on any day without crossing local midnight; weekend days are declared make-up school days.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp


def lesson_now_timezone(now: datetime | None = None) -> str:
    """An `Etc/GMT±N` zone where the local time now is between 09:00 and 10:00."""
    now = now or datetime.now(UTC)
    offset = 9 - now.hour  # local hour = utc hour + offset
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    # POSIX sign convention: Etc/GMT-8 is UTC+8
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


@dataclass
class TrialWorld:
    lead_teacher_id: int
    lead_classroom_id: int
    receiving_classroom_ids: list[int]
    other_classroom_id: int  # a receiving classroom of another school that is not in the lessons
    lesson_ids: list[int] = field(default_factory=list)
    community_teacher_id: int | None = None


class AdminApi:
    def __init__(self, base_url: str, admin_token: str, ssl: Any = True) -> None:
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {admin_token}"}
        self.ssl = ssl

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else self.headers
        async with aiohttp.ClientSession() as s, s.request(
            method, self.base + path, json=body, headers=headers, ssl=self.ssl
        ) as r:
            data = await r.json(content_type=None)
            return r.status, data

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {data}")
        return data


async def build_world(
    api: AdminApi,
    tz: str,
    receivers: int = 2,
    start_in: timedelta = timedelta(minutes=1),
    duration: timedelta = timedelta(minutes=40),
) -> TrialWorld:
    """A county with a lead school, `receivers` receiving classrooms and a lesson for them starting in
    `start_in` (its window is open now unless that is over 10 minutes); plus a second lesson at the same
    time, of another teacher, for another school's classroom."""
    tag = secrets.token_hex(3)
    zone = ZoneInfo(tz)
    today = datetime.now(zone).date()

    async def new(what: str, **body: Any) -> int:
        return int((await api.ok("POST", f"/api/v1/{what}", body))["id"])

    region = await new("regions", name=f"宁夏-{tag}")
    city = await new("cities", name=f"中卫市-{tag}", region_id=region)
    county = await new("counties", name=f"沙坡头区-{tag}", city_id=city)
    lead_school = await new("schools", name=f"第一中学-{tag}", county_id=county, is_lead=True, bandwidth_mbps=1000)
    lead_room = await new("classrooms", name="录播教室1", school_id=lead_school)
    lead_room2 = await new("classrooms", name="录播教室2", school_id=lead_school)
    teacher = await new("teachers", name=f"王老师-{tag}", school_id=lead_school, level="county", subjects=["数学"])
    peer_teacher = await new("teachers", name=f"李老师-{tag}", school_id=lead_school, subjects=["语文"])
    rooms: list[int] = []
    for i in range(receivers + 1):
        school = await new("schools", name=f"教学点{i + 1}-{tag}", county_id=county, is_receiving=True,
                           is_teaching_point=True, bandwidth_mbps=1000)
        rooms.append(await new("classrooms", name="一年级", school_id=school))
    makeup = [(today + timedelta(days=d)).isoformat() for d in range(-1, 3)
              if (today + timedelta(days=d)).weekday() >= 5]
    await new("semesters", name=f"学期-{tag}", start=(today - timedelta(days=30)).isoformat(),
              end=(today + timedelta(days=60)).isoformat(), makeup_days=makeup)
    community = await new("communities", name=f"研修共同体-{tag}", county_id=county, member_teacher_ids=[peer_teacher])
    world = TrialWorld(teacher, lead_room, rooms[:receivers], rooms[receivers], community_teacher_id=peer_teacher)
    begin = datetime.now(zone).replace(microsecond=0, tzinfo=None) + start_in
    end = begin + duration
    big = receivers > 6
    for who, room, receiving in ((teacher, lead_room, world.receiving_classroom_ids),
                                 (peer_teacher, lead_room2, [world.other_classroom_id])):
        body = {
            "kind": "famous_school" if big else "master",
            "subject": "数学",
            "grade": "一年级",
            "lead_teacher_id": who,
            "lead_classroom_id": room,
            "receiving_classroom_ids": receiving,
            "community_id": None if big else community,
            "start": begin.isoformat(timespec="seconds"),
            "end": end.isoformat(timespec="seconds"),
        }
        made = await api.ok("POST", "/api/v1/lessons", body)
        world.lesson_ids.append(int(made["lessons"][0]["id"]))
    return world


async def join_token(api: AdminApi, lesson_id: int, role: str, classroom_id: int | None = None) -> str:
    body: dict[str, Any] = {"role": role}
    if classroom_id is not None:
        body["classroom_id"] = classroom_id
    return str((await api.ok("POST", f"/api/v1/lessons/{lesson_id}/join-token", body))["token"])
