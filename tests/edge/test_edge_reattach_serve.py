"""The control node restarts in the middle of a lesson, through the real program: `classroom serve --redis`
(the control node, where the lead publishes) and a `classroom edge` of the classroom's county on one real
redis-server.

The classroom plays on the edge; the control node is killed with SIGKILL and started again on the same
data folder. The edge goes on (it is not restarted). The lead and the classroom reconnect as their pages
do; the classroom is placed on the same edge again, which drops its copy of the room left from the
control node's previous run (a link to an origin that is gone) and takes a new one: the classroom decodes
the lead's frames there again, over exactly one link."""

from __future__ import annotations

import asyncio
import secrets
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


async def test_after_a_control_node_restart_the_classroom_plays_on_its_edge_again_over_one_link(
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
    edge: EdgeProcess = edge_factory("edge-a")
    edge.start(control.url, redis_server.url,
               {**env, "CLASSROOM_MEDIA__UDP_PORT_MIN": "48000", "CLASSROOM_MEDIA__UDP_PORT_MAX": "48299"},
               "--media", "local", "--node-id", "edge-a", region=region["name"], county=county["name"])
    edge.wait_listening()

    async def edge_live() -> bool:
        shown = {n["node"]["id"] for n in (await api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]}
        return "edge-a" in shown

    ws_url = control.url.replace("http", "ws") + "/ws"
    lesson = world.lesson_ids[0]
    classroom = world.receiving_classroom_ids[0]
    participant = f"classroom-{classroom}"
    peers: list[Peer] = []
    clients: list[Any] = []
    client = EdgeClient(edge.url, SECRET)

    async def on_air() -> Peer:
        lead, seat = Peer(), Peer()
        peers.extend((lead, seat))
        clients.append(await join_with_media(ws_url, await join_token(api, lesson, "lead"), lead, lead.as_lead()))
        clients.append(await join_with_media(ws_url, await join_token(api, lesson, "receiver", classroom),
                                             seat, seat.as_classroom()))
        await asyncio.wait_for(seat.first_frame.wait(), 40)
        count = seat.frames
        deadline = time.monotonic() + 15
        while seat.frames < count + 20:
            assert time.monotonic() < deadline, seat.frames
            await asyncio.sleep(0.1)
        return seat

    try:
        await wait_for(edge_live, 20, "the edge on the control node's nodes page")
        await on_air()
        [room_id] = (await client.status())["rooms"]
        assert participant in (await client.stats(room_id))["participants"]

        control.kill9()
        for c in clients:
            await c.close()
        for p in peers:
            await p.close()
        clients.clear()
        control.start()
        await wait_for(edge_live, 20, "the edge on the restarted control node's nodes page")

        seat = await on_air()
        assert seat.frames > 0
        [again] = (await client.status())["rooms"]
        assert again == room_id
        at_edge = await client.stats(room_id)
        assert list(at_edge["participants"]) == [participant], at_edge["participants"]
        assert len(at_edge["links"]) == 1, at_edge["links"]  # the old run's link is gone
        log = control.log
        assert "Traceback" not in log, log[-3000:]
        assert "Traceback" not in edge.log, edge.log[-3000:]
    finally:
        for c in clients:
            await c.close()
        for p in peers:
            await p.close()
        await client.close()
