"""A receiving classroom placed on an edge of its county, through the real program: `classroom serve
--redis` (the control node, where the lead publishes over the WebSocket) and `classroom edge` (a media
node registered for the classroom's county), each a process, on a real redis-server, one node secret.

The classroom joins over the control node's WebSocket as always; the control node places it by county
(`edge.placement.place`), opens a linked copy of the room on the edge, and the classroom's media goes to
the edge, where it decodes the lead's frames; the origin sends each of the lead's tracks once to the
edge; the placement and its reason are logged; the technician's live view shows the classroom on the edge."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from edge.control_client import EdgeClient
from signaling.client import Peer, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone
from tests.edge.cluster_world import wait_for
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import EdgeProcess, edge_factory  # noqa: F401 - the fixture
from tests.signaling.test_websocket_server import ENV

SECRET = secrets.token_urlsafe(24)


async def test_a_receiving_classroom_is_placed_on_its_countys_edge_and_plays_there(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess) -> None:  # noqa: F811
    tz = lesson_now_timezone()
    env = {**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_CLUSTER__HEARTBEAT_S": "0.5",
           "CLASSROOM_CLUSTER__NODE_SECRET": SECRET}
    control = server_factory("--media", "local", "--redis", redis_server.url,
                             env={**env, "CLASSROOM_CLUSTER__NODE_ID": "control-1"})
    api = AdminApi(control.url, control.token)
    world = await build_world(api, tz, receivers=1)
    [region] = [r for r in await api.ok("GET", "/api/v1/regions") if r["name"].startswith("宁夏-")]
    [county] = [c for c in await api.ok("GET", "/api/v1/counties") if c["name"].startswith("沙坡头区-")]
    edge: EdgeProcess = edge_factory("edge")
    edge.start(control.url, redis_server.url,
               {**env, "CLASSROOM_MEDIA__UDP_PORT_MIN": "48000", "CLASSROOM_MEDIA__UDP_PORT_MAX": "48499"},
               "--media", "local", region=region["name"], county=county["name"])
    edge.wait_listening()

    async def edge_live() -> bool:
        shown = await api.ok("GET", "/api/v1/monitor/nodes")
        return any(n["node"]["id"] == "edge-zn" for n in shown["nodes"])

    await wait_for(edge_live, 20, "the edge on the control node's nodes page")

    ws_url = control.url.replace("http", "ws") + "/ws"
    lesson = world.lesson_ids[0]
    lead_peer, class_peer = Peer(), Peer()
    clients = []
    client = EdgeClient(edge.url, SECRET)
    try:
        clients.append(await join_with_media(ws_url, await join_token(api, lesson, "lead"), lead_peer,
                                             lead_peer.as_lead()))
        classroom = world.receiving_classroom_ids[0]
        token = await join_token(api, lesson, "receiver", classroom)
        clients.append(await join_with_media(ws_url, token, class_peer, class_peer.as_classroom()))
        await asyncio.wait_for(class_peer.first_frame.wait(), 40)
        count = class_peer.frames
        deadline = time.monotonic() + 15
        while class_peer.frames < count + 30:
            assert time.monotonic() < deadline, class_peer.frames
            await asyncio.sleep(0.1)

        # the classroom is on the edge, in a copy of the room linked to the control node
        participant = f"classroom-{classroom}"
        status = await client.status()
        assert len(status["rooms"]) == 1
        [room_id] = status["rooms"]
        at_edge = await client.stats(room_id)
        assert at_edge["participants"][participant]["role"] == "receiver"
        assert any(s["packets_sent"] > 0 for s in at_edge["participants"][participant]["slots"].values())
        line = next(x for x in control.log.splitlines() if "placement of " + participant in x)
        assert county["name"] in line and "edge-zn" in line, line

        # the control node's view: the lesson's media with the classroom on the edge, the link to it
        async def live_media() -> dict[str, Any]:
            [live] = [x for x in (await api.ok("GET", "/api/v1/live?detail=1"))["lessons"] if x["lesson_id"] == lesson]
            return dict(live["media"])

        media = await live_media()
        assert media["participants"][participant]["node"] == "edge-zn"
        assert [e["node"] for e in media["edges"]] == ["edge-zn"]
        # each of the lead's tracks once to the edge (the link's packets over the lead's, over 3 s)
        lead_id = next(p for p, v in media["participants"].items() if v["role"] == "lead")

        def counts(m: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
            [link] = m["links"]
            return ({s["track"]: s["packets_sent"] for s in link["sent"] if s["participant_id"] == lead_id},
                    {k: v["packets"] for k, v in m["participants"][lead_id]["published"].items()})

        before = counts(media)
        await asyncio.sleep(3)
        after = counts(await live_media())
        for track in ("camera", "audio"):
            sent = after[0][track] - before[0][track]
            received = after[1][track] - before[1][track]
            assert received > 0 and 0.9 <= sent / received <= 1.05, (track, sent, received)
        assert "Traceback" not in control.log, control.log[-3000:]
        assert "Traceback" not in edge.log, edge.log[-3000:]
    finally:
        for c in clients:
            await c.close()
        for p in (lead_peer, class_peer):
            await p.close()
        await client.close()
