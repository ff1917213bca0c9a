"""Access that ends, ends at once (issue #14), against a real `classroom serve` over real sockets.

A disabled account, a reset password, a re-enrolled or withdrawn classroom PC: every session and join token
of the old credential is refused from that second, its open WebSockets are closed with `kicked`, and the
audit log says so. Technicians see only the counties (or region) they look after.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import datetime, timedelta
from typing import Any

from signaling.client import ProtocolClient, Refused
from signaling.trial import AdminApi, TrialWorld, build_world, join_token, lesson_now_timezone

ENV = {"CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1"}


async def _setup(server_factory: Any, **env: str) -> tuple[Any, AdminApi, TrialWorld, str]:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "local", env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, **env})
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=2)
    return srv, api, world, srv.url.replace("http", "ws") + "/ws"


async def _login(api: AdminApi, username: str, password: str) -> tuple[int, Any]:
    return await api.call("POST", "/api/v1/auth/login", {"username": username, "password": password}, token="-")


async def _account(api: AdminApi, username: str, password: str, role: str, **scope: Any) -> tuple[int, str]:
    made = await api.ok("POST", "/api/v1/accounts", {"username": username, "password": password, "role": role,
                                                     **scope})
    status, body = await _login(api, username, password)
    assert status == 200, body
    return int(made["id"]), str(body["token"])


async def _refused(ws_url: str, token: str) -> tuple[str, int | None]:
    client = await ProtocolClient.connect(ws_url)
    try:
        await client.join(token)
    except Refused as exc:
        await asyncio.wait_for(client.closed.wait(), 5)
        return exc.code, client.ws.close_code
    finally:
        await client.close()
    raise AssertionError("admitted")


async def _kicked(client: ProtocolClient, within: float) -> str:
    started = time.monotonic()
    kicked = await client.expect("kicked", timeout=within)
    await asyncio.wait_for(client.closed.wait(), max(0.1, within - (time.monotonic() - started)))
    assert client.ws.close_code == 4409
    return str(kicked["reason"])


async def test_a_disabled_teacher_is_out_at_once_over_rest_and_websocket(server_factory: Any) -> None:
    _srv, api, world, ws_url = await _setup(server_factory)
    lesson = world.lesson_ids[0]
    account, session = await _account(api, "wang", "correct horse 1", "teacher", teacher_id=world.lead_teacher_id)
    grants = []
    for _ in range(2):
        status, grant = await api.call("POST", f"/api/v1/lessons/{lesson}/join-token", {}, token=session)
        assert status == 200 and grant["role"] == "lead"
        grants.append(grant["token"])
    on_air = await ProtocolClient.connect(ws_url)
    try:
        assert (await on_air.join(grants[0]))["role"] == "lead"
        await api.ok("POST", f"/api/v1/accounts/{account}", {"disabled": True})
        # the open WebSocket is told and closed at once
        assert await _kicked(on_air, within=2.0) == "account_disabled"
    finally:
        await on_air.close()
    # the login no longer works, anywhere
    status, body = await api.call("GET", "/api/v1/me", token=session)
    assert (status, body["code"]) == (401, "account_disabled")
    status, body = await api.call("POST", f"/api/v1/lessons/{lesson}/join-token", {}, token=session)
    assert (status, body["code"]) == (401, "account_disabled")
    assert (await api.call("GET", "/api/v1/me/lessons", token=session))[0] == 401
    # a join token issued before is dead too
    assert await _refused(ws_url, grants[1]) == ("account_disabled", 4403)
    assert (await _login(api, "wang", "correct horse 1"))[0] == 401
    # enabled again: the old login stays dead (a new login is needed)
    await api.ok("POST", f"/api/v1/accounts/{account}", {"disabled": False})
    status, body = await api.call("GET", "/api/v1/me", token=session)
    assert (status, body["code"]) == (401, "credential_changed")
    assert await _refused(ws_url, grants[1]) == ("credential_changed", 4403)
    assert (await _login(api, "wang", "correct horse 1"))[0] == 200
    audit = await api.ok("GET", "/api/v1/audit?limit=200")
    changes = [r["reason"] for r in audit if r["action"] == "account_change"]
    assert any("account_disabled" in r and "1 live connection(s) closed" in r for r in changes), changes
    refused = [r for r in audit if r["action"] == "join" and r["outcome"] == "refused"]
    assert {"account_disabled", "credential_changed"} <= {r["reason"] for r in refused}


async def test_a_disabled_administrator_is_out_at_once(server_factory: Any) -> None:
    _srv, api, _world, _ws = await _setup(server_factory)
    account, session = await _account(api, "boss", "correct horse 9", "admin")
    assert (await api.call("GET", "/api/v1/schools", token=session))[0] == 200
    assert (await api.call("GET", "/api/v1/accounts", token=session))[0] == 200
    await api.ok("POST", f"/api/v1/accounts/{account}", {"disabled": True})
    status, body = await api.call("GET", "/api/v1/schools", token=session)
    assert (status, body["code"]) == (401, "account_disabled")
    status, body = await api.call("GET", "/api/v1/accounts", token=session)
    assert (status, body["code"]) == (401, "account_disabled")
    status, body = await api.call("POST", "/api/v1/accounts", {"username": "x", "password": "correct horse 8",
                                                               "role": "admin"}, token=session)
    assert status == 401


async def test_a_password_reset_ends_earlier_logins_and_join_tokens(server_factory: Any) -> None:
    _srv, api, world, ws_url = await _setup(server_factory)
    lesson = world.lesson_ids[0]
    account, session = await _account(api, "wang", "correct horse 1", "teacher", teacher_id=world.lead_teacher_id)
    grant = (await api.call("POST", f"/api/v1/lessons/{lesson}/join-token", {}, token=session))[1]["token"]
    on_air = await ProtocolClient.connect(ws_url)
    try:
        await on_air.join(grant)
        await api.ok("POST", f"/api/v1/accounts/{account}", {"password": "a new horse 2"})
        assert await _kicked(on_air, within=2.0) == "password_reset"
    finally:
        await on_air.close()
    status, body = await api.call("GET", "/api/v1/me", token=session)
    assert (status, body["code"]) == (401, "credential_changed")
    assert await _refused(ws_url, grant) == ("credential_changed", 4403)
    assert (await _login(api, "wang", "correct horse 1"))[0] == 401
    status, fresh = await _login(api, "wang", "a new horse 2")
    assert status == 200
    assert (await api.call("GET", "/api/v1/me", token=fresh["token"]))[0] == 200
    for bad in ({"disabled": "yes"}, {}, {"username": "other"}, {"password": 12345678}, {"password": "short"},
                {"role": "pilot", "password": "a new horse 3"}, {"county_id": "x", "disabled": True}):
        status, body = await api.call("POST", f"/api/v1/accounts/{account}", bad)
        assert status == 400 and body["error"], (bad, body)
    assert (await api.call("POST", "/api/v1/accounts/99999", {"disabled": True}))[0] == 404
    assert (await api.call("GET", "/api/v1/me", token=fresh["token"]))[0] == 200  # none of those changed it
    assert (await _login(api, "wang", "a new horse 2"))[0] == 200


async def test_a_replaced_or_withdrawn_classroom_pc_cannot_join(server_factory: Any) -> None:
    _srv, api, world, ws_url = await _setup(server_factory)
    lesson = world.lesson_ids[0]
    classroom = world.receiving_classroom_ids[0]
    link = await api.ok("POST", "/api/v1/enrolments", {"classroom_id": classroom})
    first = (await api.ok("POST", "/api/v1/enrol", {"token": link["token"]}))["device_token"]
    status, grant = await api.call("POST", f"/api/v1/lessons/{lesson}/join-token", {}, token=first)
    assert status == 200
    old_pc_token = grant["token"]
    # device 2 enrols: device 1's join token, issued earlier and still in its window, no longer joins
    second = (await api.ok("POST", "/api/v1/enrol", {"token": link["token"]}))["device_token"]
    assert await _refused(ws_url, old_pc_token) == ("device_replaced", 4403)
    grant2 = (await api.call("POST", f"/api/v1/lessons/{lesson}/join-token", {}, token=second))[1]["token"]
    spare = (await api.call("POST", f"/api/v1/lessons/{lesson}/join-token", {}, token=second))[1]["token"]
    pc2 = await ProtocolClient.connect(ws_url)
    try:
        assert (await pc2.join(grant2))["role"] == "receiver"
        # the administrator withdraws the link: device 2's live session ends now, its join tokens are dead
        await api.ok("POST", f"/api/v1/enrolments/{link['id']}/revoke")
        assert await _kicked(pc2, within=2.0) == "revoked"
    finally:
        await pc2.close()
    assert await _refused(ws_url, spare) == ("device_withdrawn", 4403)
    assert await _refused(ws_url, second) == ("device_withdrawn", 4403)  # its standby connection too
    status, body = await api.call("GET", "/api/v1/me", token=second)
    assert (status, body["code"]) == (401, "device_withdrawn")
    audit = await api.ok("GET", "/api/v1/audit?limit=200")
    revokes = [r["reason"] for r in audit if r["action"] == "enrolment_revoke"]
    assert revokes and "1 live connection(s) closed" in revokes[0], revokes
    refused = {r["reason"] for r in audit if r["action"] == "join" and r["outcome"] == "refused"}
    assert {"device_replaced", "device_withdrawn"} <= refused


async def test_technicians_see_the_counties_they_look_after(server_factory: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "local", env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    ws_url = srv.url.replace("http", "ws") + "/ws"
    east, west = await build_world(api, tz, receivers=1), await build_world(api, tz, receivers=1)
    # a lead on air in each world makes its lesson live in the hub
    leads = []
    for world in (east, west):
        client = await ProtocolClient.connect(ws_url)
        await client.join(await join_token(api, world.lesson_ids[0], "lead"))
        leads.append(client)
    try:
        counties = {c["name"]: c["id"] for c in await api.ok("GET", "/api/v1/counties")}
        schools = await api.ok("GET", "/api/v1/schools")
        rooms = await api.ok("GET", "/api/v1/classrooms")

        def county_of(classroom_id: int) -> int:
            school = next(r["school_id"] for r in rooms if r["id"] == classroom_id)
            return int(next(s["county_id"] for s in schools if s["id"] == school))

        east_county = county_of(east.lead_classroom_id)
        west_county = county_of(west.lead_classroom_id)
        assert east_county != west_county and set(counties.values()) >= {east_county, west_county}
        cities = await api.ok("GET", "/api/v1/cities")
        county_rows = await api.ok("GET", "/api/v1/counties")
        west_city = next(c["city_id"] for c in county_rows if c["id"] == west_county)
        west_region = next(c["region_id"] for c in cities if c["id"] == west_city)
        everything = {x["lesson_id"] for x in (await api.ok("GET", "/api/v1/live"))["lessons"]}
        assert {east.lesson_ids[0], west.lesson_ids[0]} <= everything
        _, east_tech = await _account(api, "tech-east", "correct horse 3", "technician", county_id=east_county)
        west_id, west_tech = await _account(api, "tech-west", "correct horse 4", "technician", region_id=west_region)
        status, seen = await api.call("GET", "/api/v1/live", token=east_tech)
        assert status == 200
        east_seen = {x["lesson_id"] for x in seen["lessons"]}
        assert east.lesson_ids[0] in east_seen and not east_seen & set(west.lesson_ids), east_seen
        status, seen = await api.call("GET", "/api/v1/live?detail=1", token=west_tech)
        west_seen = {x["lesson_id"] for x in seen["lessons"]}
        assert west.lesson_ids[0] in west_seen and not west_seen & set(east.lesson_ids), west_seen
        # a technician watches stream health, not classrooms: no join token, no way in over the WebSocket
        status, body = await api.call("POST", f"/api/v1/lessons/{east.lesson_ids[0]}/join-token",
                                      {"role": "observer"}, token=east_tech)
        assert (status, body["code"]) == (403, "not_entitled")
        assert await _refused(ws_url, east_tech) == ("wrong_type", 4403)
        # a technician names their scope; a new scope ends the tokens that carry the old one
        status, body = await api.call("POST", "/api/v1/accounts", {"username": "tech-none", "role": "technician",
                                                                    "password": "correct horse 5"})
        assert status == 400 and "county" in body["error"]
        await api.ok("POST", f"/api/v1/accounts/{west_id}", {"county_id": east_county, "region_id": None})
        status, body = await api.call("GET", "/api/v1/live", token=west_tech)
        assert (status, body["code"]) == (401, "credential_changed")
        status, again = await _login(api, "tech-west", "correct horse 4")
        seen = {x["lesson_id"] for x in (await api.call("GET", "/api/v1/live", token=again["token"]))[1]["lessons"]}
        assert east.lesson_ids[0] in seen and not seen & set(west.lesson_ids)
    finally:
        for client in leads:
            await client.close()


async def test_a_research_community_watches_master_lessons_only(server_factory: Any) -> None:
    srv, api, world, ws_url = await _setup(server_factory)
    lesson = await api.ok("GET", f"/api/v1/lessons/{world.lesson_ids[0]}")
    community = lesson["community_id"]
    assert lesson["kind"] == "master" and community is not None
    body = {k: lesson[k] for k in ("subject", "grade", "lead_teacher_id", "lead_classroom_id",
                                   "receiving_classroom_ids", "community_id")}
    start = datetime.fromisoformat(lesson["start"]) + timedelta(days=1)
    for kind in ("specialised", "famous_school"):
        status, answer = await api.call("POST", "/api/v1/lessons", {
            **body, "kind": kind, "start": start.isoformat(), "end": (start + timedelta(minutes=40)).isoformat()})
        assert status == 400 and "master lessons only" in answer["error"], answer
    # the same refusal in a timetable import
    schools = await api.ok("GET", "/api/v1/schools")
    rooms = await api.ok("GET", "/api/v1/classrooms")
    lead_school = next(r["school_id"] for r in rooms if r["id"] == world.lead_classroom_id)
    teachers = await api.ok("GET", "/api/v1/teachers")
    communities = await api.ok("GET", "/api/v1/communities")
    names = {
        "school": next(s["name"] for s in schools if s["id"] == lead_school),
        "teacher": next(t["name"] for t in teachers if t["id"] == world.lead_teacher_id),
        "community": next(c["name"] for c in communities if c["id"] == community),
    }
    day = start.date().isoformat()
    csv = ("日期,开始时间,结束时间,类型,学科,年级,主讲学校,主讲教师,主讲教室,接收教室,研修共同体\n"
           f"{day},16:00,16:40,专递课堂,数学,一年级,{names['school']},{names['teacher']},录播教室1,,{names['community']}\n")
    status, _, raw = srv.request("POST", "/api/v1/timetable/import?dry_run=1&filename=t.csv", csv.encode(),
                                 content_type="text/csv")
    result = json.loads(raw)
    assert status == 422 and "community_not_master" in json.dumps(result, ensure_ascii=False), result
    # a specialised lesson that carries a community from before (old data): its members are not its audience
    _, member = await _account(api, "li", "correct horse 2", "teacher", teacher_id=world.community_teacher_id)
    status, grant = await api.call("POST", f"/api/v1/lessons/{lesson['id']}/join-token", {"role": "observer"},
                                   token=member)
    assert status == 200
    with sqlite3.connect(srv.data_dir / "classroom.sqlite3") as conn:
        conn.execute("UPDATE lesson SET kind = 'specialised' WHERE id = ?", (lesson["id"],))
    status, body = await api.call("POST", f"/api/v1/lessons/{lesson['id']}/join-token", {"role": "observer"},
                                  token=member)
    assert (status, body["code"]) == (403, "not_entitled")
    assert await _refused(ws_url, grant["token"]) == ("not_entitled", 4403)
    status, mine = await api.call("GET", "/api/v1/me/lessons", token=member)
    assert status == 200 and lesson["id"] not in {x["id"] for x in mine}, mine
