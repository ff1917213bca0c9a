"""The smaller holes of issue #14, each against a real `classroom serve` over real sockets: the demo
password in the log, the CSP's connect-src, unjoined sockets per address, JSON arrays as bodies, SQLite's
constraint names in messages, `?limit=-1`, and logins limited per account as well as per address."""

from __future__ import annotations

import re
import stat
from typing import Any

import aiohttp

from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone

ENV = {"CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1"}


async def _call(url: str, method: str, path: str, source: str, body: Any = None,
                token: str | None = None) -> tuple[int, Any]:
    """One request from the loopback address `source` (127.0.0.0/8 is all this machine)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0))) as s, s.request(
        method, url + path, json=body, headers=headers
    ) as r:
        return r.status, await r.json(content_type=None)


def test_the_demo_password_stays_out_of_the_log(server_factory: Any) -> None:
    srv = server_factory("--media", "local", "--demo")
    accounts = srv.data_dir / "demo-accounts.txt"
    assert stat.S_IMODE(accounts.stat().st_mode) == 0o600
    found = re.search(r"every password is (\S+)", accounts.read_text())
    assert found, accounts.read_text()
    password = found.group(1)
    assert "demo-accounts.txt" in srv.log
    assert password not in srv.log
    status, body = srv.json("POST", "/api/v1/auth/login", {"username": "tech", "password": password}, token=None)
    assert status == 200, body


def test_pages_may_connect_to_their_own_origin_only(server_factory: Any) -> None:
    srv = server_factory("--media", "local")
    for path in ("/teacher", "/classroom", "/api/v1/client-config"):
        _, headers, _ = srv.request("GET", path, token=None)
        csp = headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
        assert directives["connect-src"] == "'self'", csp
        assert "ws:" not in csp and "wss:" not in csp


async def test_sockets_that_have_not_joined_are_capped_per_address_and_in_all(server_factory: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "local", env={
        **ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_SIGNALING__WS_MAX_UNJOINED_PER_ADDRESS": "5",
        "CLASSROOM_SIGNALING__WS_MAX_UNJOINED": "8"})
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=1)
    ws_url = srv.url.replace("http", "ws") + "/ws"
    sessions: list[aiohttp.ClientSession] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def open_from(source: str) -> aiohttp.ClientWebSocketResponse | int:
        s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))
        sessions.append(s)
        try:
            ws = await s.ws_connect(ws_url, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        sockets.append(ws)
        return ws

    try:
        first = [await open_from("127.0.0.2") for _ in range(5)]
        assert all(isinstance(x, aiohttp.ClientWebSocketResponse) for x in first)
        assert await open_from("127.0.0.2") == 429  # a sixth idle socket from the same address
        others = [await open_from("127.0.0.3") for _ in range(3)]
        assert all(isinstance(x, aiohttp.ClientWebSocketResponse) for x in others)
        assert await open_from("127.0.0.4") == 429  # eight idle sockets in all
        # a socket that joins no longer counts as idle: room for one more
        ws = first[0]
        assert isinstance(ws, aiohttp.ClientWebSocketResponse)
        await ws.send_json({"v": 1, "type": "join", "id": 1,
                            "token": await join_token(api, world.lesson_ids[0], "observer")})
        assert (await ws.receive_json(timeout=10))["type"] == "joined"
        assert isinstance(await open_from("127.0.0.2"), aiohttp.ClientWebSocketResponse)
        async with aiohttp.ClientSession() as s, s.get(srv.url + "/healthz") as r:
            assert r.status == 200
    finally:
        for w in sockets:
            await w.close()
        for s in sessions:
            await s.close()


def test_bad_bodies_limits_and_constraints_get_clear_errors(server_factory: Any) -> None:
    srv = server_factory("--media", "local")
    for path in ("/api/v1/lessons/1/corrections", "/api/v1/lessons/1/cancel"):
        status, body = srv.json("POST", path, [1, 2])
        assert status == 400 and "JSON object" in body["error"], (path, status, body)
    for limit in ("-1", "0"):
        status, body = srv.json("GET", f"/api/v1/lessons?limit={limit}")
        assert status == 400 and "limit" in body["error"], body
    assert srv.json("GET", "/api/v1/lessons?limit=99999")[0] == 200
    assert srv.json("POST", "/api/v1/regions", {"name": "宁夏"})[0] == 201
    answers = []
    status, body = srv.json("POST", "/api/v1/regions", {"name": "宁夏"})
    assert status == 409 and "already" in body["error"], body
    answers.append(body)
    status, body = srv.json("POST", "/api/v1/schools", {"name": "第一中学", "county_id": 999999})
    assert status == 400 and "county" in body["error"], body
    answers.append(body)
    status, body = srv.json("POST", "/api/v1/accounts", {"username": "t", "password": "correct horse 1",
                                                         "role": "technician", "county_id": 999999})
    assert status == 400, body
    answers.append(body)
    for answer in answers:
        text = str(answer)
        assert "constraint" not in text.lower() and "UNIQUE" not in text and "FOREIGN KEY" not in text, text

async def test_logins_are_limited_per_account_from_any_address(server_factory: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "local", env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=1)
    for name, teacher in (("wang", world.lead_teacher_id), ("li", world.community_teacher_id)):
        await api.ok("POST", "/api/v1/accounts", {"username": name, "password": "correct horse 1", "role": "teacher",
                                                  "teacher_id": teacher})
    codes = []
    for i in range(6):  # two guesses from each of six addresses: under every per-address limit
        for _ in range(2):
            codes.append((await _call(srv.url, "POST", "/api/v1/auth/login", f"127.0.0.{11 + i}",
                                      {"username": "wang", "password": f"guess {i}"}))[0])
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
    # the account is held for a while, from anywhere, even with its right password; other accounts are not
    status, body = await _call(srv.url, "POST", "/api/v1/auth/login", "127.0.0.30",
                               {"username": "WANG ", "password": "correct horse 1"})
    assert (status, body["code"]) == (429, "rate_limited")
    status, _ = await _call(srv.url, "POST", "/api/v1/auth/login", "127.0.0.30",
                            {"username": "li", "password": "correct horse 1"})
    assert status == 200
    audit = await api.ok("GET", "/api/v1/audit?outcome=refused&limit=100")
    assert any(r["reason"] == "account_rate_limited" for r in audit)

