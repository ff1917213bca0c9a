"""Recordings through `classroom serve`, real sockets and aiortc peers: a lesson of a kind the county records
is recorded while it runs (the lead is told), catalogued when it closes, found by the people entitled to it
and played through short-lived signed links with range requests; everyone else is refused, every playback
is audited, and a file altered on disk is reported instead of served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import av
import pytest

from signaling.client import Peer, ProtocolClient, Refused, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone
from tests.live_lesson import lead_and_classroom
from tests.monitoring.test_attendance_e2e import _heartbeat

ENV = {"CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1", "CLASSROOM_RECORDING__KINDS": "master,specialised",
       "CLASSROOM_RECORDING__KEYFRAME_EVERY_S": "2", "CLASSROOM_SCHEDULER__WINDOW_CLOSE_GRACE_MIN": "0"}


def _get(url: str, token: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def _wait_ready(api: AdminApi, lesson: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        recs = [r for r in await api.ok("GET", "/api/v1/recordings") if r["lesson_id"] == lesson]
        if recs and recs[0]["state"] in ("ready", "failed"):
            return recs[0]
        assert time.monotonic() < deadline, recs
        await asyncio.sleep(0.5)


async def _teacher_token(api: AdminApi, teacher_id: int) -> str:
    """A teacher's session: an account made by the administrator, then a login with its password."""
    name, password = f"t{teacher_id}", "correct horse 8"
    await api.ok("POST", "/api/v1/accounts", {"username": name, "password": password, "role": "teacher",
                                              "teacher_id": teacher_id})
    status, body = await api.call("POST", "/api/v1/auth/login", {"username": name, "password": password}, token="-")
    assert status == 200, body
    return str(body["token"])


async def _teacher_elsewhere(api: AdminApi) -> int:
    """A teacher of a school in another county: outside the lesson's audience."""
    async def new(what: str, **body: Any) -> int:
        return int((await api.ok("POST", f"/api/v1/{what}", body))["id"])
    region = await new("regions", name="甘肃-x")
    county = await new("counties", name="别的县", city_id=await new("cities", name="别的市", region_id=region))
    school = await new("schools", name="别的学校", county_id=county, is_lead=True)
    return await new("teachers", name="赵老师", school_id=school, subjects=["数学"])


async def _record_a_lesson(api: AdminApi, ws: str, tz: str, seconds: float) -> tuple[Any, int]:
    world = await build_world(api, tz, receivers=1, start_in=timedelta(seconds=2),
                              duration=timedelta(seconds=seconds + 4))
    lesson = world.lesson_ids[0]
    async with lead_and_classroom(api, ws, lesson, world.receiving_classroom_ids[0]) as live:
        joined = next(m for m in live.lead.seen if m.get("type") == "joined")
        assert joined.get("recording") is True, joined
        await asyncio.wait_for(live.room_peer.first_frame.wait(), 15)
        await asyncio.sleep(seconds)
        await live.room.expect("window_closed", timeout=60)
    return world, lesson


async def test_a_recorded_lesson_is_catalogued_played_by_its_audience_and_refused_to_others(
    server_factory: Any,
) -> None:
    tz = lesson_now_timezone()
    srv = server_factory(env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    ws = srv.url.replace("http", "ws") + "/ws"
    world, lesson = await _record_a_lesson(api, ws, tz, 8)

    rec = await _wait_ready(api, lesson)
    assert rec["state"] == "ready", (rec, srv.log[-3000:])
    assert rec["container"] == "webm" and rec["size_bytes"] > 20_000
    assert 6 <= rec["duration_s"] <= 16, rec
    assert rec["lesson"]["teacher_id"] == world.lead_teacher_id

    # the lead teacher finds it and plays it; a stranger (another school's teacher) is refused
    lead_token = await _teacher_token(api, world.lead_teacher_id)
    mine = [r["id"] for r in await AdminApi(srv.url, lead_token).ok("GET", "/api/v1/recordings")]
    assert rec["id"] in mine
    opened = await AdminApi(srv.url, lead_token).ok("GET", f"/api/v1/recordings/{rec['id']}")
    link = srv.url + opened["links"]["camera"]
    status, headers, whole = _get(link)
    assert status == 200 and len(whole) == rec["size_bytes"], (status, headers)
    status, headers, part = _get(link, headers={"Range": "bytes=100-1099"})
    assert status == 206 and part == whole[100:1100], (status, headers)
    assert headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"

    path = srv.data_dir / "dl.webm"
    path.write_bytes(whole)
    with av.open(str(path)) as container:
        kinds = sorted(s.type for s in container.streams)
        frames = sum(1 for _ in container.decode(video=0))
    assert kinds == ["audio", "video"] and frames >= 6 * 15, (kinds, frames)

    # the administrator exports it for sharing: one MP4, with a progress bar, audited
    shared = srv.data_dir / "shared.mp4"
    done = subprocess.run([sys.executable, "-m", "classroom.cli", "export", str(lesson), "--data-dir",
                           str(srv.data_dir), "-o", str(shared)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "100.0 %" in done.stderr and json.loads(done.stdout)["frames"] >= 6 * 15
    with av.open(str(shared)) as container:
        assert container.streams.video[0].codec_context.name == "h264"

    stranger = await _teacher_token(api, await _teacher_elsewhere(api))
    status, body = srv.json("GET", "/api/v1/recordings", token=stranger)
    assert status == 200 and rec["id"] not in [r["id"] for r in body]
    status, body = srv.json("GET", f"/api/v1/recordings/{rec['id']}", token=stranger)
    assert status == 403 and body["code"] == "not_entitled", body

    # the link is the authorisation: altered, forged or expired, it is refused
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{srv.url}{parts.path}"
    for bad in ({**query, "sig": "0" * len(query["sig"])}, {**query, "exp": str(int(query["exp"]) + 3600)},
                {**query, "by": "teacher:999999"}, {**query, "exp": str(int(time.time()) - 5)}):
        assert _get(f"{base}?{urlencode(bad)}")[0] == 403, bad
    assert _get(base)[0] == 403
    assert _get(link.replace("/camera?", "/screen?"))[0] in (403, 404)

    # every playback is audited, admitted and refused
    db = sqlite3.connect(srv.data_dir / "classroom.sqlite3")
    try:
        rows = list(db.execute("SELECT outcome FROM audit WHERE action = 'play_recording' AND lesson_id = ?",
                               (lesson,)))
    finally:
        db.close()
    outcomes = [r[0] for r in rows]
    assert "admitted" in outcomes and "refused" in outcomes, outcomes
    db = sqlite3.connect(srv.data_dir / "classroom.sqlite3")
    try:
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'export_recording' AND lesson_id = ?",
                          (lesson,)).fetchone()[0] == 1
    finally:
        db.close()

    # a file altered on disk is reported, not served as the lesson
    files = sorted((srv.data_dir / "recordings").rglob("*.webm"))
    assert files, list((srv.data_dir / "recordings").rglob("*"))
    with open(files[0], "r+b") as f:
        f.seek(len(whole) // 2)
        f.write(b"\x00" * 64)
    status, body = srv.json("GET", f"/api/v1/recordings/{rec['id']}", token=lead_token)
    assert status == 409 and body["code"] == "recording_corrupt", body


async def test_a_server_killed_mid_recording_finalises_the_dump_at_its_next_start(server_factory: Any,
                                                                                   tmp_path: Path) -> None:
    tz = lesson_now_timezone()
    srv = server_factory(env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    ws = srv.url.replace("http", "ws") + "/ws"
    world = await build_world(api, tz, receivers=1, start_in=timedelta(seconds=2), duration=timedelta(minutes=5))
    lesson = world.lesson_ids[0]
    lead_peer = Peer()
    lead = await join_with_media(ws, await join_token(api, lesson, "lead"), lead_peer, lead_peer.as_lead(), lesson)
    beat = _heartbeat(lead)
    try:
        await asyncio.sleep(7)
        srv.kill9()
    finally:
        beat.cancel()
        for closing in (lead.close(), lead_peer.close()):
            with contextlib.suppress(Exception):
                await closing
    dumps = sorted((srv.data_dir / "recordings").rglob("*.rtpdump"))
    assert dumps and dumps[0].stat().st_size > 20_000, dumps

    srv.start()
    rec = await _wait_ready(api, lesson)
    assert rec["state"] == "ready", (rec, srv.log[-3000:])
    assert rec["duration_s"] >= 3, rec


async def _approve(api: AdminApi, srv: Any, world: Any, recording_id: int) -> None:
    """The county grants a reviewer (教研员), who approves the recording for replay."""
    county = max(c["id"] for c in await api.ok("GET", "/api/v1/counties"))
    await api.ok("PUT", f"/api/v1/reviewers/{world.community_teacher_id}", {"county_id": county})
    reviewer = AdminApi(srv.url, await _teacher_token(api, world.community_teacher_id))
    await reviewer.ok("POST", f"/api/v1/recordings/{recording_id}/review",
                      {"approved": True, "reason": "适合推送", "uses": ["replay"]})


async def test_a_replay_survives_its_worker_dying_and_admits_no_live_lead(server_factory: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "workers", env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    ws = srv.url.replace("http", "ws") + "/ws"
    world, lesson = await _record_a_lesson(api, ws, tz, 14)
    rec = await _wait_ready(api, lesson)
    await _approve(api, srv, world, rec["id"])
    start = datetime.now(ZoneInfo(tz)).replace(microsecond=0, tzinfo=None) + timedelta(seconds=3)
    made = await api.ok("POST", "/api/v1/lessons", {"replay_of": rec["id"], "start": start.isoformat(),
                                                    "receiving_classroom_ids": [world.other_classroom_id]})
    replay = int(made["lessons"][0]["id"])

    # nobody broadcasts a replay live: the recorded teacher's join is refused with the reason
    client = await ProtocolClient.connect(ws)
    try:
        with pytest.raises(Refused) as refused:
            await client.join(await join_token(api, replay, "lead"), replay)
        assert refused.value.code == "replay_lesson"
    finally:
        await client.close()

    peer = Peer()
    room = await join_with_media(ws, await join_token(api, replay, "receiver", world.other_classroom_id), peer,
                                 peer.as_classroom(), replay)
    beat = _heartbeat(room)
    try:
        await asyncio.wait_for(peer.first_frame.wait(), 20)
        monitor = await api.ok("GET", "/api/v1/monitor")
        pid = next(x["worker_pid"] for x in monitor["lessons"] if x["lesson_id"] == replay)
        os.kill(pid, signal.SIGKILL)
        # the room is opened again on a live worker, the classroom reconnects, the replay goes on from where
        # the lesson should be (the keyframe before)
        await room.expect("restart", timeout=15)
        beat.cancel()
        await room.close()
        await peer.close()
        peer = Peer()
        room = await join_with_media(ws, await join_token(api, replay, "receiver", world.other_classroom_id), peer,
                                     peer.as_classroom(), replay)
        beat = _heartbeat(room)
        await asyncio.wait_for(peer.first_frame.wait(), 20)
        await room.expect("window_closed", timeout=60)
    finally:
        beat.cancel()
        for closing in (room.close(), peer.close()):
            with contextlib.suppress(Exception):
                await closing
    deadline = time.monotonic() + 60
    while (info := await api.ok("GET", f"/api/v1/lessons/{replay}"))["status"] not in ("delivered", "missed"):
        assert time.monotonic() < deadline, info
        await asyncio.sleep(0.5)
    assert info["status"] == "delivered", (info, srv.log[-3000:])


async def test_a_full_disk_stops_the_recording_tells_the_lead_and_the_technician_and_the_lesson_goes_on(
    server_factory: Any, tmp_path: Path,
) -> None:
    tz = lesson_now_timezone()
    disk = tmp_path / "small-disk"
    disk.mkdir()
    # the recordings' folder is a 48 KB disk of the server's own (a mount namespace): it fills in seconds
    wrapper = ("unshare", "-m", "--", "sh", "-c", f'mount -t tmpfs -o size=48k tmpfs "{disk}" && exec "$@"', "sh")
    srv = server_factory(env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_RECORDING__FOLDER": str(disk),
                              "CLASSROOM_SIGNALING__STATS_INTERVAL_S": "0.5"}, wrapper=wrapper)
    api = AdminApi(srv.url, srv.token)
    ws = srv.url.replace("http", "ws") + "/ws"
    world = await build_world(api, tz, receivers=1, start_in=timedelta(seconds=2), duration=timedelta(seconds=40))
    lesson = world.lesson_ids[0]
    async with lead_and_classroom(api, ws, lesson, world.receiving_classroom_ids[0]) as live:
        await asyncio.wait_for(live.room_peer.first_frame.wait(), 15)
        joined = next(m for m in live.lead.seen if m.get("type") == "joined")
        assert joined.get("recording") is True, joined
        stopped = await live.lead.expect("recording", timeout=30)  # the lead's page: 录制已停止
        assert stopped["on"] is False and "space" in str(stopped.get("error")).lower(), stopped
        frames = live.room_peer.frames
        await asyncio.sleep(3)
        grown = live.room_peer.frames - frames
        assert grown > 2 * 20, grown  # the classroom's picture goes on
        deadline = time.monotonic() + 20
        while True:  # the technicians are told
            alerts = (await api.ok("GET", f"/api/v1/alerts?lesson_id={lesson}&firing=1"))["alerts"]
            if any(a["rule"] == "recording_stopped" for a in alerts):
                break
            assert time.monotonic() < deadline, alerts
            await asyncio.sleep(0.5)
    # the catalogue says what became of it: what fitted on the disk, or why nothing could be kept
    recs = [r for r in await api.ok("GET", "/api/v1/recordings") if r["lesson_id"] == lesson]
    assert recs and recs[0]["error"], recs
