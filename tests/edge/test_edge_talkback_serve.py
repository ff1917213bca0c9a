"""Talk-back from a classroom on an edge, through the real program: `classroom serve --redis` (the control
node, where the lead publishes) and a `classroom edge` of the classroom's county on one real redis-server.

The classroom plays on the edge and publishes its camera there; the teacher calls on it: the classroom's
camera goes up the relay link to the control node and reaches the lead, who decodes it. The teacher ends
the talk-back: the lead's picture of the classroom stops, and the classroom goes on watching the lesson."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from signaling.client import Peer, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import EdgeProcess, edge_factory  # noqa: F401 - the fixture
from tests.edge.test_edge_placement_serve import wait_for
from tests.signaling.test_websocket_server import ENV

SECRET = secrets.token_urlsafe(24)


async def grows(peer: Peer, by: int, timeout: float) -> bool:
    start = peer.frames
    deadline = time.monotonic() + timeout
    while peer.frames < start + by:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_the_teacher_calls_on_a_classroom_on_an_edge_and_sees_it_until_the_call_ends(
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
        return "edge-a" in {n["node"]["id"] for n in (await api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]}

    await wait_for(edge_live, 20, "the edge on the control node's nodes page")
    ws_url = control.url.replace("http", "ws") + "/ws"
    lesson = world.lesson_ids[0]
    called = f"classroom-{world.receiving_classroom_ids[0]}"
    lead_peer, seat = Peer(), Peer()
    clients = []
    try:
        lead = await join_with_media(ws_url, await join_token(api, lesson, "lead"), lead_peer, lead_peer.as_lead())
        clients.append(lead)
        token = await join_token(api, lesson, "receiver", world.receiving_classroom_ids[0])
        room = await join_with_media(ws_url, token, seat, seat.as_classroom(publish=True))
        clients.append(room)
        await asyncio.wait_for(seat.first_frame.wait(), 40)
        [live] = [x for x in (await api.ok("GET", "/api/v1/live?detail=1"))["lessons"] if x["lesson_id"] == lesson]
        assert live["media"]["participants"][called]["node"] == "edge-a"
        assert lead_peer.frames == 0  # nobody called on yet

        await lead.send("talkback_grant", participant_id=called)
        assert (await room.expect("talkback"))["participant_id"] == called
        await asyncio.wait_for(lead_peer.first_frame.wait(), 15)  # the classroom's camera, up the link
        assert await grows(lead_peer, 20, 10), lead_peer.frames
        assert await grows(seat, 20, 10), seat.frames  # and it still watches the lesson

        await lead.send("talkback_end")
        ended = await room.expect("talkback")
        assert ended["participant_id"] is None, ended
        await asyncio.sleep(2)  # what was on its way
        assert not await grows(lead_peer, 5, 3), "the lead still gets the classroom's picture"
        assert await grows(seat, 20, 10), seat.frames
        assert "Traceback" not in control.log, control.log[-3000:]
        assert "Traceback" not in edge.log, edge.log[-3000:]
    finally:
        for c in clients:
            await c.close()
        for p in (lead_peer, seat):
            await p.close()
