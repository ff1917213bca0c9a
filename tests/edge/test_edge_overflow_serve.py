"""A lesson with more classrooms than the control node admits spreads onto an edge, through the real
program: `classroom serve --redis` (the control node, in the classrooms' own county, admitting one
subscription) and a `classroom edge` of another region, on one real redis-server.

The first classroom is placed on the control node (its county); the second is placed there too, but the
control node has no room for it: it goes to the edge, wherever that is, with the reason logged and on
the technicians' nodes tab, and both classrooms decode the lead's frames. Nobody configured anything."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from signaling.client import Peer, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import EdgeProcess, edge_factory  # noqa: F401 - the fixture
from tests.edge.test_edge_placement_serve import wait_for
from tests.edge.test_edge_talkback_serve import grows
from tests.signaling.test_websocket_server import ENV

SECRET = secrets.token_urlsafe(24)


async def test_a_classroom_the_control_node_has_no_room_for_plays_on_an_edge_elsewhere(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess) -> None:  # noqa: F811
    tz = lesson_now_timezone()
    env = {**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_CLUSTER__HEARTBEAT_S": "1",
           "CLASSROOM_CLUSTER__NODE_SECRET": SECRET, "CLASSROOM_CLUSTER__NODE_ID": "control-1",
           "CLASSROOM_MEDIA__MAX_SUBSCRIPTIONS_PER_WORKER": "1"}
    control = server_factory("--media", "local", "--redis", redis_server.url, env=env)
    api = AdminApi(control.url, control.token)
    world = await build_world(api, tz, receivers=2)
    [region] = [r for r in await api.ok("GET", "/api/v1/regions") if r["name"].startswith("宁夏-")]
    [county] = [c for c in await api.ok("GET", "/api/v1/counties") if c["name"].startswith("沙坡头区-")]
    # the control node serves the classrooms' county (as a county's own server would)
    control.stop()
    control.env = {**env, "CLASSROOM_CLUSTER__COUNTY": county["name"], "CLASSROOM_CLUSTER__REGION": region["name"]}
    control.start()
    edge: EdgeProcess = edge_factory("edge-x")
    edge.start(control.url, redis_server.url,
               {**ENV, "CLASSROOM_CLUSTER__HEARTBEAT_S": "1", "CLASSROOM_CLUSTER__NODE_SECRET": SECRET,
                "CLASSROOM_MEDIA__UDP_PORT_MIN": "48000", "CLASSROOM_MEDIA__UDP_PORT_MAX": "48299"},
               "--media", "local", "--node-id", "edge-x", region="甘肃", county="古浪县")
    edge.wait_listening()

    async def edge_live() -> bool:
        return "edge-x" in {n["node"]["id"] for n in (await api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]}

    await wait_for(edge_live, 20, "the edge on the control node's nodes page")
    ws_url = control.url.replace("http", "ws") + "/ws"
    lesson = world.lesson_ids[0]
    lead_peer, seats = Peer(), [Peer(), Peer()]
    clients = []
    try:
        clients.append(await join_with_media(ws_url, await join_token(api, lesson, "lead"), lead_peer,
                                             lead_peer.as_lead()))
        for seat, classroom in zip(seats, world.receiving_classroom_ids, strict=True):
            token = await join_token(api, lesson, "receiver", classroom)
            clients.append(await join_with_media(ws_url, token, seat, seat.as_classroom()))
        for seat in seats:
            await asyncio.wait_for(seat.first_frame.wait(), 40)
            assert await grows(seat, 20, 15), seat.frames
        [live] = [x for x in (await api.ok("GET", "/api/v1/live?detail=1"))["lessons"] if x["lesson_id"] == lesson]
        first, second = (f"classroom-{c}" for c in world.receiving_classroom_ids)
        assert live["media"]["participants"][first].get("node") is None  # on the control node itself
        assert live["media"]["participants"][second]["node"] == "edge-x"
        shown = (await api.ok("GET", "/api/v1/monitor/nodes"))["placements"]
        moved = next(p for p in shown if p["participant_id"] == second)
        assert moved["node"] == "edge-x" and moved["reason_zh"].startswith("本节点已满，改用边缘节点"), moved
        assert "this node is full, so an edge" in control.log
        assert "Traceback" not in control.log, control.log[-3000:]
        assert "Traceback" not in edge.log, edge.log[-3000:]
    finally:
        for c in clients:
            await c.close()
        for p in (lead_peer, *seats):
            await p.close()
