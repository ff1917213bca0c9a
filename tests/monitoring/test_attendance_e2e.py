"""Attendance over real sockets, aiortc peers and a real `classroom serve`: what the lesson history shows.

A receiving classroom that drops out for twenty seconds and comes back shows the gap in its timeline and
in the settled evidence (it loses its credit, the classroom that stayed keeps it); a `kill -9` of the
server mid-lesson keeps the attendance so far, and after the restart the timeline goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from datetime import datetime, timedelta
from typing import Any

from signaling.client import Peer, ProtocolClient, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone

ENV = {"CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1", "CLASSROOM_SIGNALING__STATS_INTERVAL_S": "0.5",
       "CLASSROOM_SIGNALING__EVIDENCE_INTERVAL_S": "1"}


def _heartbeat(client: ProtocolClient) -> asyncio.Task[None]:
    """Ping twice a second, as the pages do (docs/protocol.md)."""
    async def beat() -> None:
        while True:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.send("ping")
            await asyncio.sleep(0.5)
    return asyncio.ensure_future(beat())


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def _attendance(api: AdminApi, lesson: int) -> dict[str, Any]:
    return await api.ok("GET", f"/api/v1/lessons/{lesson}/attendance")


def _room(report: dict[str, Any], classroom_id: int) -> dict[str, Any]:
    return next(r for r in report["classrooms"] if r["classroom_id"] == classroom_id)


async def test_a_classroom_that_drops_out_and_comes_back_shows_the_gap_and_loses_its_credit(
    server_factory: Any,
) -> None:
    tz = lesson_now_timezone()
    srv = server_factory(env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz,
                              "CLASSROOM_SCHEDULER__WINDOW_CLOSE_GRACE_MIN": "0"})
    api = AdminApi(srv.url, srv.token)
    ws = srv.url.replace("http", "ws") + "/ws"
    world = await build_world(api, tz, receivers=2, start_in=timedelta(seconds=3), duration=timedelta(seconds=50))
    lesson = world.lesson_ids[0]
    stays, drops = world.receiving_classroom_ids
    peers = [Peer(), Peer(), Peer()]
    lead = await join_with_media(ws, await join_token(api, lesson, "lead"), peers[0], peers[0].as_lead())
    steady = await join_with_media(ws, await join_token(api, lesson, "receiver", stays), peers[1],
                                   peers[1].as_classroom())
    token = await join_token(api, lesson, "receiver", drops)
    flaky = await join_with_media(ws, token, peers[2], peers[2].as_classroom())
    beats = [_heartbeat(lead), _heartbeat(steady), _heartbeat(flaky)]
    clients = [lead, steady, flaky]
    try:
        await asyncio.wait_for(peers[2].first_frame.wait(), 15)
        await asyncio.sleep(6)
        # the classroom's network goes: no media, no heartbeats (a pulled cable closes no socket)
        gone_at = time.time()
        beats[2].cancel()
        await peers[2].close()
        await asyncio.sleep(22)
        # it is back: the page reconnects with the same join token
        back_at = time.time()
        await flaky.close()
        peers.append(Peer())
        flaky = await join_with_media(ws, token, peers[3], peers[3].as_classroom())
        clients.append(flaky)
        beats.append(_heartbeat(flaky))
        await asyncio.wait_for(peers[3].first_frame.wait(), 15)

        # while the lesson goes on, its history already shows the gap (by the next stats tick or so)
        deadline = time.monotonic() + 10
        while len((during := _room(await _attendance(api, lesson), drops))["segments"]) < 2:
            assert time.monotonic() < deadline, during
            await asyncio.sleep(0.3)
        assert [s["closed_by"] for s in during["segments"]] == ["dropped", None], during

        await steady.expect("window_closed", timeout=90)
        deadline = time.monotonic() + 20
        while (info := await api.ok("GET", f"/api/v1/lessons/{lesson}"))["status"] not in ("delivered", "missed"):
            assert time.monotonic() < deadline, info
            await asyncio.sleep(0.3)
        assert info["status"] == "delivered", info
    finally:
        for beat in beats:
            beat.cancel()
        for c in clients:
            await c.close()
        for p in peers:
            await p.close()

    report = await _attendance(api, lesson)
    assert report["status"] == "delivered" and report["recorded"] and not report["live"]
    room = _room(report, drops)
    first, second = room["segments"]
    assert (first["opened_by"], first["closed_by"]) == ("joined", "dropped")
    assert (second["opened_by"], second["closed_by"]) == ("rejoined", "closed")
    gap = _at(second["from"]) - _at(first["to"])
    assert 5 <= gap <= (back_at - gone_at) + 10, (gap, room)  # the outage, seen within a few seconds
    assert _at(first["to"]) >= gone_at - 2
    whats = [e["what"] for e in room["events"]]
    assert whats[0] == "joined" and ("lost" in whats or "departed" in whats), whats
    total = first["seconds"] + second["seconds"]
    assert abs(room["minutes"] - total / 60) < 0.05
    assert room["share"] < 0.8 and not room["attended"]  # 22 s of a 50-second lesson missed
    steady_room = _room(report, stays)
    assert len(steady_room["segments"]) == 1 and steady_room["attended"] and steady_room["share"] == 1.0
    assert report["lead"]["on_air_enough"] and report["lead"]["segments"][0]["opened_by"] == "on_air"

    # the settled evidence is the timeline's: the classroom that dropped out has its minutes and no credit
    db = sqlite3.connect(srv.data_dir / "classroom.sqlite3")
    try:
        minutes = dict(db.execute("SELECT classroom_id, minutes FROM attendance WHERE lesson_id = ?", (lesson,)))
        credited = {r[0] for r in db.execute("SELECT classroom_id FROM receiver_credit WHERE lesson_id = ?",
                                             (lesson,))}
    finally:
        db.close()
    assert abs(minutes[drops] - room["minutes"]) < 0.02 and minutes[drops] < 0.8 * 50 / 60
    assert credited == {stays}

    # the history list has it, with its summary
    listed = await api.ok("GET", "/api/v1/attendance?days=1")
    line = next(x for x in listed["lessons"] if x["lesson_id"] == lesson)
    assert (line["classrooms"], line["classrooms_attended"], line["drops"]) == (2, 1, 1)


async def test_kill_9_mid_lesson_keeps_the_attendance_so_far_and_the_timeline_goes_on(server_factory: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory(env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    ws = srv.url.replace("http", "ws") + "/ws"
    world = await build_world(api, tz, receivers=1, start_in=timedelta(seconds=2), duration=timedelta(minutes=10))
    lesson, room_id = world.lesson_ids[0], world.receiving_classroom_ids[0]
    lead_token = await join_token(api, lesson, "lead")
    room_token = await join_token(api, lesson, "receiver", room_id)

    async def join() -> tuple[list[ProtocolClient], list[Peer]]:
        lp, rp = Peer(), Peer()
        lead = await join_with_media(ws, lead_token, lp, lp.as_lead())
        room = await join_with_media(ws, room_token, rp, rp.as_classroom())
        await asyncio.wait_for(rp.first_frame.wait(), 15)
        return [lead, room], [lp, rp]

    clients, peers = await join()
    beats = [_heartbeat(c) for c in clients]
    try:
        await asyncio.sleep(8)
        before = _room(await _attendance(api, lesson), room_id)
        assert before["minutes"] > 0, before
        srv.kill9()
    finally:
        for beat in beats:
            beat.cancel()
        for c in clients:
            await c.close()
        for p in peers:
            await p.close()
    killed_at = time.time()

    srv.start()
    api = AdminApi(srv.url, srv.token)
    kept = _room(await _attendance(api, lesson), room_id)
    # what was written before the kill is kept: the live figure read just before it may be ahead of the last write by
    # at most one evidence interval (2 s) and a stats tick (0.5 s), which is what a kill -9 is documented to lose
    assert kept["minutes"] >= before["minutes"] - (2.0 + 0.5) / 60 - 0.01, (kept, before)
    assert len(kept["segments"]) == 1 and kept["segments"][0]["seconds"] >= 5, kept  # at most a few seconds lost
    assert _at(kept["segments"][0]["to"]) >= killed_at - 4

    # the classroom and the lead come back inside the window: the same timeline goes on
    clients, peers = await join()
    beats = [_heartbeat(c) for c in clients]
    try:
        await asyncio.sleep(5)
        after = _room(await _attendance(api, lesson), room_id)
    finally:
        for beat in beats:
            beat.cancel()
        for c in clients:
            await c.close()
        for p in peers:
            await p.close()
    first, second = after["segments"]
    assert first["closed_by"] == "interrupted" and second["opened_by"] == "rejoined", after
    assert _at(second["from"]) >= _at(first["to"])
    assert after["minutes"] >= kept["minutes"] + 2 / 60
    db = sqlite3.connect(srv.data_dir / "classroom.sqlite3")
    try:
        (minutes,) = db.execute("SELECT minutes FROM attendance WHERE lesson_id = ? AND classroom_id = ?",
                                (lesson, room_id)).fetchone()
    finally:
        db.close()
    assert minutes >= kept["minutes"]  # the evidence adds up both sides of the restart, never restarts from 0


async def test_a_lessons_attendance_is_for_its_lead_teacher_its_countys_technicians_and_the_administrator(
    server_factory: Any,
) -> None:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "local", env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    here = await build_world(api, tz, receivers=1)
    elsewhere = await build_world(api, tz, receivers=1)  # another county
    lesson = here.lesson_ids[0]

    async def login(username: str, role: str, **scope: Any) -> str:
        await api.ok("POST", "/api/v1/accounts", {"username": username, "password": "correct horse 7", "role": role,
                                                  **scope})
        status, body = await api.call("POST", "/api/v1/auth/login",
                                      {"username": username, "password": "correct horse 7"}, token="-")
        assert status == 200, body
        return str(body["token"])

    schools = await api.ok("GET", "/api/v1/schools")
    rooms = await api.ok("GET", "/api/v1/classrooms")

    def county_of(classroom_id: int) -> int:
        school = next(r["school_id"] for r in rooms if r["id"] == classroom_id)
        return int(next(s["county_id"] for s in schools if s["id"] == school))

    lead = await login("lead", "teacher", teacher_id=here.lead_teacher_id)
    other_teacher = await login("other", "teacher", teacher_id=here.community_teacher_id)
    tech = await login("tech-here", "technician", county_id=county_of(here.lead_classroom_id))
    far_tech = await login("tech-far", "technician", county_id=county_of(elsewhere.lead_classroom_id))
    path = f"/api/v1/lessons/{lesson}/attendance"
    for token in (srv.token, lead, tech):
        status, body = await api.call("GET", path, token=token)
        assert status == 200 and body["lesson_id"] == lesson, body
        assert body["lead"]["teacher_id"] == here.lead_teacher_id
        assert [r["classroom_id"] for r in body["classrooms"]] == here.receiving_classroom_ids
        assert body["classrooms"][0]["segments"] == [] and body["classrooms"][0]["minutes"] == 0.0
    for token in (other_teacher, far_tech):
        status, body = await api.call("GET", path, token=token)
        assert status == 403 and body["code"] == "not_entitled"
    assert (await api.call("GET", path, token="-"))[0] == 401
    assert (await api.call("GET", "/api/v1/lessons/999999/attendance"))[0] == 404
    assert (await api.call("GET", "/api/v1/attendance?days=0"))[0] == 400
    # the list: each caller sees the lessons they may open
    listed = {x["lesson_id"] for x in (await api.ok("GET", "/api/v1/attendance?days=1"))["lessons"]}
    assert {lesson, elsewhere.lesson_ids[0]} <= listed
    status, mine = await api.call("GET", "/api/v1/attendance?days=1", token=lead)
    assert status == 200 and {x["lesson_id"] for x in mine["lessons"]} == {lesson}
    status, county = await api.call("GET", "/api/v1/attendance?days=1", token=tech)
    assert status == 200 and lesson in {x["lesson_id"] for x in county["lessons"]}
    assert not {x["lesson_id"] for x in county["lessons"]} & set(elsewhere.lesson_ids)
