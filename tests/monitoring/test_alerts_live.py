"""Alerts end to end: a real `classroom serve`, aiortc peers, and chat robots played by a local server.

A lead whose camera stops sending (its connection stays up) raises `stream_frozen` within 10 s on the
technician's stream, in the alert log and on the WeCom, DingTalk and generic JSON receivers; the
alert clears by itself when the video resumes, and a technician's acknowledgement names them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import free_port
from tests.live_lesson import lead_and_classroom
from tests.signaling.test_websocket_server import _setup

SECRET = "SECtest-secret"


class Robots:
    """WeCom, DingTalk and a JSON receiver on loopback, keeping what they were sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.got: dict[str, list[dict[str, Any]]] = {"wecom": [], "dingtalk": [], "json": []}
        self.bad_signatures = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/wecom", self._wecom)
        app.router.add_post("/dingtalk", self._dingtalk)
        app.router.add_post("/json", self._json)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def config(self) -> str:
        base = f"http://127.0.0.1:{self.port}"
        return (f"wecom {base}/wecom?key=abc,dingtalk {base}/dingtalk?access_token=xyz {SECRET},"
                f"json {base}/json")

    async def _wecom(self, request: web.Request) -> web.Response:
        assert request.query["key"] == "abc"
        self.got["wecom"].append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _dingtalk(self, request: web.Request) -> web.Response:
        stamp = request.query.get("timestamp", "")
        want = base64.b64encode(hmac.new(SECRET.encode(), f"{stamp}\n{SECRET}".encode(), hashlib.sha256).digest())
        if request.query.get("sign", "").encode() != want or abs(int(stamp) / 1000 - time.time()) > 3600:
            self.bad_signatures += 1
            return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        self.got["dingtalk"].append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _json(self, request: web.Request) -> web.Response:
        self.got["json"].append(await request.json())
        return web.json_response({})

    def texts(self, robot: str) -> str:
        return "\n".join(m["text"]["content"] for m in self.got[robot])

    async def wait_for(self, robot: str, words: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while words not in self.texts(robot):
            assert time.monotonic() < deadline, (robot, words, self.got[robot])
            await asyncio.sleep(0.2)


async def _events(url: str, token: str, into: list[dict[str, Any]]) -> None:
    """Read the technician's server-sent-events stream."""
    async with aiohttp.ClientSession() as session, session.get(
            url, headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=None)) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        async for line in resp.content:
            text = line.decode().strip()
            if text.startswith("data: "):
                into.append(json.loads(text[6:]))


async def _wait(predicate: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, what
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_a_camera_that_stops_raises_a_freeze_alert_everywhere_and_clears_when_it_is_back(
        server_factory: Any) -> None:
    robots = Robots()
    await robots.start()
    srv, api, world, ws_url = await _setup(server_factory, CLASSROOM_ALERTS__ALERT_WEBHOOKS=robots.config(),
                                           CLASSROOM_ALERTS__CLEAR_AFTER_S="2")
    lesson = world.lesson_ids[0]
    events: list[dict[str, Any]] = []
    reader = asyncio.ensure_future(_events(f"{srv.url}/api/v1/monitor/stream", srv.token, events))
    try:
        async with lead_and_classroom(api, ws_url, lesson, world.receiving_classroom_ids[0]) as live:
            camera = live.camera
            await asyncio.wait_for(live.room_peer.first_frame.wait(), 20)

            def live_lesson() -> dict[str, Any] | None:
                ticks = [e for e in events if e["type"] in ("snapshot", "tick")]
                return next((x for x in ticks[-1]["lessons"] if x["lesson_id"] == lesson), None) if ticks else None

            # the technician's stream shows the lesson on air with the classroom's figures
            await _wait(lambda: (x := live_lesson()) is not None and x["lead_state"] == "on_air" and any(
                c["link"] == "ok" and c.get("score") for c in x["classrooms"]), 15, "the live lesson on the stream")
            assert not any(e["type"] == "alert" and e["alert"]["rule"] == "stream_frozen" for e in events)

            camera.pause()
            stopped = time.monotonic()

            def fired() -> list[dict[str, Any]]:
                return [e for e in events if e["type"] == "alert" and e["change"] == "fired"
                        and e["alert"]["rule"] == "stream_frozen" and e["alert"]["lesson_id"] == lesson]

            await _wait(lambda: bool(fired()), 10, "a freeze alert within 10 s")
            fired_after = time.monotonic() - stopped
            alert = fired()[0]["alert"]
            assert alert["subject"] == "lead:camera" and "摄像头画面中断" in alert["summary_zh"]
            log = await api.ok("GET", "/api/v1/alerts?firing=1")
            assert [a["id"] for a in log["alerts"] if a["rule"] == "stream_frozen"] == [alert["id"]]
            await robots.wait_for("wecom", "摄像头画面中断", 10)
            await robots.wait_for("dingtalk", "摄像头画面中断", 10)
            await _wait(lambda: any(e["event"] == "fired" for m in robots.got["json"] for e in m["events"]), 10, "json")
            assert "【告警】严重" in robots.texts("wecom") and robots.bad_signatures == 0

            # the technician takes it: their name is on it, in the log and on the robots
            acked = await api.ok("POST", f"/api/v1/alerts/{alert['id']}/ack", {})
            assert acked["alert"]["acked_by"] == "administrator"
            await robots.wait_for("wecom", "处理中", 10)

            camera.resume()
            resumed = time.monotonic()
            await _wait(lambda: any(e["type"] == "alert" and e["change"] == "cleared"
                                    and e["alert"]["id"] == alert["id"] for e in events),
                        15, "the alert clears when the video is back")
            cleared_after = time.monotonic() - resumed
            await robots.wait_for("wecom", "【恢复】", 10)
            await robots.wait_for("dingtalk", "【恢复】", 10)
            log = await api.ok("GET", f"/api/v1/alerts?lesson_id={lesson}")
            entry = next(a for a in log["alerts"] if a["id"] == alert["id"])
            assert entry["cleared_at"] is not None and entry["acked_by"] == "administrator"
            print(f"freeze alert after {fired_after:.1f} s, cleared {cleared_after:.1f} s after the video resumed")
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await robots.stop()
        del srv
