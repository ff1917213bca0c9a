"""An edge dies in the middle of a lesson, through the real program: `classroom serve --redis` (the
control node, where the lead publishes) and two `classroom edge` processes on one real redis-server:
edge A of the classroom's own county and edge B of its region.

The classroom plays on edge A; edge A is killed with SIGKILL. The control node sees its events stream
break, tells the classroom to reconnect (`restart`), leaves the dead edge out of placement (the registry
would list it for three more heartbeats), and the rejoin lands on edge B, where the classroom decodes
the lead's frames again within 5 seconds of the kill. The control node's log says what happened."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from typing import Any

from edge.control_client import EdgeClient
from signaling.client import Peer, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import EdgeProcess, edge_factory  # noqa: F401 - the fixture
from tests.edge.test_edge_placement_serve import wait_for
from tests.signaling.test_websocket_server import ENV

SECRET = secrets.token_urlsafe(24)


async def test_a_classroom_on_an_edge_that_dies_plays_again_on_another_within_five_seconds(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess) -> None:  # noqa: F811
    tz = lesson_now_timezone()
    env = {**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_CLUSTER__HEARTBEAT_S": "1",
           "CLASSROOM_CLUSTER__NODE_SECRET": SECRET}
    control = server_factory("--media", "local", "--redis", redis_server.url,
                             env={**env, "CLASSROOM_CLUSTER__NODE_ID": "control-1"})
    api = AdminApi(control.url, control.token)
    world = await build_world(api, tz, receivers=1)
    [region] = [r for r in await api.ok("GET", "/api/v1/regions") if r["name"].startswith("宁夏-")]
    [county] = [c for c in await api.ok("GET", "/api/v1/counties") if c["name"].startswith("沙坡头区-")]
    edge_a: EdgeProcess = edge_factory("edge-a")
    edge_a.start(control.url, redis_server.url,
                 {**env, "CLASSROOM_MEDIA__UDP_PORT_MIN": "48000", "CLASSROOM_MEDIA__UDP_PORT_MAX": "48299"},
                 "--media", "local", "--node-id", "edge-a", region=region["name"], county=county["name"])
    edge_b: EdgeProcess = edge_factory("edge-b")
    edge_b.start(control.url, redis_server.url,
                 {**env, "CLASSROOM_MEDIA__UDP_PORT_MIN": "48300", "CLASSROOM_MEDIA__UDP_PORT_MAX": "48599"},
                 "--media", "local", "--node-id", "edge-b", region=region["name"], county="中宁县")
    edge_a.wait_listening()
    edge_b.wait_listening()

    async def both_live() -> bool:
        shown = {n["node"]["id"] for n in (await api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]}
        return {"edge-a", "edge-b"} <= shown

    await wait_for(both_live, 20, "both edges on the control node's nodes page")

    ws_url = control.url.replace("http", "ws") + "/ws"
    lesson = world.lesson_ids[0]
    classroom = world.receiving_classroom_ids[0]
    participant = f"classroom-{classroom}"
    lead_peer, first, again = Peer(), Peer(), Peer()
    clients = []
    edge_b_client = EdgeClient(edge_b.url, SECRET)
    try:
        clients.append(await join_with_media(ws_url, await join_token(api, lesson, "lead"), lead_peer,
                                             lead_peer.as_lead()))
        clients.append(await join_with_media(ws_url, await join_token(api, lesson, "receiver", classroom),
                                             first, first.as_classroom()))
        await asyncio.wait_for(first.first_frame.wait(), 40)

        async def on_node() -> str | None:
            [live] = [x for x in (await api.ok("GET", "/api/v1/live?detail=1"))["lessons"]
                      if x["lesson_id"] == lesson]
            return live["media"]["participants"].get(participant, {}).get("node")

        assert await wait_for(on_node, 10, "the classroom in the lesson's media") == "edge-a"

        assert edge_a.proc is not None
        os.kill(edge_a.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        restart = await clients[1].expect("restart", timeout=5)
        told = time.monotonic() - killed
        assert restart["reason"] == "media_lost"
        await clients[1].close()
        await first.close()

        # the kiosk's reconnect: a fresh join, placed on the region's edge (edge A is left out)
        clients.append(await join_with_media(ws_url, await join_token(api, lesson, "receiver", classroom),
                                             again, again.as_classroom()))
        await asyncio.wait_for(again.first_frame.wait(), max(0.1, 5 - (time.monotonic() - killed)))
        playing_again = time.monotonic() - killed
        assert playing_again < 5, playing_again
        count = again.frames
        deadline = time.monotonic() + 10
        while again.frames < count + 20:  # and it goes on playing there
            assert time.monotonic() < deadline, again.frames
            await asyncio.sleep(0.1)
        assert await on_node() == "edge-b"
        [room_id] = (await edge_b_client.status())["rooms"]
        assert participant in (await edge_b_client.stats(room_id))["participants"]
        # one copy left, on edge B: the dead edge's link was dropped at the origin
        [live] = [x for x in (await api.ok("GET", "/api/v1/live?detail=1"))["lessons"] if x["lesson_id"] == lesson]
        assert [e["node"] for e in live["media"]["edges"]] == ["edge-b"]
        assert len(live["media"]["links"]) == 1

        # a technician cannot move it back to the dead edge, nor move what is not a classroom in the lesson
        move = f"/api/v1/monitor/lessons/{lesson}/move"
        status, body = await api.call("POST", move, {"participant_id": participant, "node": "edge-a"})
        assert status == 409 and body["code"] == "node_unavailable", body
        status, body = await api.call("POST", move, {"participant_id": "classroom-999999", "node": "edge-b"})
        assert status == 404, body
        status, body = await api.call("POST", move, {"participant_id": participant})
        assert status == 400, body
        assert await on_node() == "edge-b"  # none of that touched it

        log = control.log
        assert "edge edge-a lost" in log and "1 classrooms told to reconnect" in log, log[-3000:]
        placements = [x for x in log.splitlines() if "placement of " + participant in x]
        assert "edge-a" in placements[0] and "edge-b" in placements[-1], placements
        assert "Traceback" not in log, log[-3000:]
        assert "Traceback" not in edge_b.log, edge_b.log[-3000:]
        print(f"told to reconnect {told:.2f} s after the kill; decoding again {playing_again:.2f} s after it")
    finally:
        for c in clients:
            await c.close()
        for p in (lead_peer, first, again):
            await p.close()
        await edge_b_client.close()
