"""The technician's API on a real `classroom serve`: scopes, access that ends, bad input, absurd reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

from signaling.client import ProtocolClient
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone
from tests.signaling.test_access_ends import _account
from tests.signaling.test_websocket_server import ENV


async def _stream(url: str, token: str, into: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as s, s.get(url + "/api/v1/monitor/stream",
                                                    headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200, resp.status
        async for line in resp.content:
            if line.startswith(b"data: "):
                into.append(json.loads(line[6:]))
    into.append({"type": "closed"})


async def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_a_technician_streams_their_county_only_and_the_stream_ends_when_the_account_is_disabled(
        server_factory: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "local", env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    ws_url = srv.url.replace("http", "ws") + "/ws"
    east, west = await build_world(api, tz, receivers=1), await build_world(api, tz, receivers=1)
    clients = []
    for world in (east, west):
        lead = await ProtocolClient.connect(ws_url)
        await lead.join(await join_token(api, world.lesson_ids[0], "lead"))
        clients.append(lead)
    room = await ProtocolClient.connect(ws_url)
    await room.join(await join_token(api, east.lesson_ids[0], "receiver", east.receiving_classroom_ids[0]))
    clients.append(room)
    tasks: list[asyncio.Task[None]] = []
    try:
        rooms = await api.ok("GET", "/api/v1/classrooms")
        schools = await api.ok("GET", "/api/v1/schools")
        school = next(r["school_id"] for r in rooms if r["id"] == east.lead_classroom_id)
        county = next(s["county_id"] for s in schools if s["id"] == school)
        tech_id, tech = await _account(api, "tech-east", "correct horse 3", "technician", county_id=county)
        seen: list[dict[str, Any]] = []
        tasks.append(asyncio.ensure_future(_stream(srv.url, tech, seen)))
        # the snapshot, then ticks (a lesson is in the view from its first stats tick, within a second)
        await _until(lambda: any(east.lesson_ids[0] in {x["lesson_id"] for x in m["lessons"]} for m in seen
                                 if m["type"] in ("snapshot", "tick")), 10, "the east lesson on the stream")
        assert seen[0]["type"] == "snapshot"
        shown = {x["lesson_id"] for m in seen if m["type"] in ("snapshot", "tick") for x in m["lessons"]}
        assert not shown & set(west.lesson_ids), shown

        # an absurd report from a page is clamped, a second one at once is refused; figures stay sane
        await room.send("stats", report={"fps": 1e12, "jitter_ms": -40, "freeze_count": 3, "bogus": 1})
        await room.send("stats", report={"fps": 5, "freeze_count": 0})
        pid = f"classroom-{east.receiving_classroom_ids[0]}"

        def row() -> dict[str, Any] | None:
            for m in reversed(seen):
                if m["type"] == "tick":
                    lesson = next((x for x in m["lessons"] if x["lesson_id"] == east.lesson_ids[0]), None)
                    return next((c for c in lesson["classrooms"] if c["participant_id"] == pid), None) if lesson \
                        else None
            return None

        await _until(lambda: (r := row()) is not None and r.get("fps") is not None, 10, "the classroom's figures")
        figures = row()
        assert figures is not None and figures["fps"] == 240 and figures["freezes"] == 3, figures

        # what the technician may not see is not found; bad input is a clear 400
        status, _ = await api.call("GET", f"/api/v1/lessons/{west.lesson_ids[0]}/history", token=tech)
        assert status == 404
        status, body = await api.call("GET", f"/api/v1/lessons/{east.lesson_ids[0]}/history", token=tech)
        assert status == 200 and body["lesson"]["id"] == east.lesson_ids[0]
        for path in ("/api/v1/alerts?since=yesterday", "/api/v1/bandwidth?from=2026-02-01&to=2026-01-01",
                     "/api/v1/bandwidth?from=junk", "/api/v1/monitor/lessons?date=32-13"):
            status, body = await api.call("GET", path, token=tech)
            assert status == 400 and body["code"] == "bad_field", (path, body)
        status, _ = await api.call("POST", "/api/v1/alerts/abc/ack", {}, token=tech)
        assert status == 400
        status, _ = await api.call("POST", "/api/v1/alerts/999999/ack", {}, token=tech)
        assert status == 404
        status, body = await api.call("GET", "/api/v1/monitor/lessons", token=tech)
        assert status == 200 and {x["id"] for x in body["lessons"]} >= {east.lesson_ids[0]}
        assert not {x["id"] for x in body["lessons"]} & set(west.lesson_ids)
        # a teacher has no county view
        status, _ = await api.call("GET", "/api/v1/monitor", token="not-a-token")
        assert status == 401

        # the account is disabled: its open stream ends within seconds, a new one is refused
        disabled = time.monotonic()
        await api.ok("POST", f"/api/v1/accounts/{tech_id}", {"disabled": True})
        await _until(lambda: seen[-1]["type"] == "closed", 12, "the stream ends")
        assert any(m["type"] == "ended" and m["reason"] == "access_ended" for m in seen)
        assert time.monotonic() - disabled < 12
        status, _ = await api.call("GET", "/api/v1/monitor", token=tech)
        assert status == 401
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in clients:
            await client.close()
