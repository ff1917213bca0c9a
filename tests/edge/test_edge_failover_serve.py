"""An edge dies in the middle of a lesson, through the real program: `classroom serve --redis` (the
control node, where the lead publishes) and two `classroom edge` processes on one real redis-server:
edge A of the classroom's own county and edge B of its region.

The classroom plays on edge A; edge A is killed with SIGKILL. The control node sees its events stream
break, tells the classroom to reconnect (`restart`), leaves the dead edge out of placement (the registry
would list it for three more heartbeats), and the rejoin lands on edge B, where the classroom decodes
the lead's frames again within 5 seconds of the kill. The control node's log says what happened, and a
technician cannot move the classroom back to the dead edge."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from edge.control_client import EdgeClient
from signaling.client import Peer, join_with_media
from signaling.trial import join_token
from tests.edge.cluster_world import grows, start_cluster, wait_for
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import edge_factory  # noqa: F401 - the fixture


async def test_a_classroom_on_an_edge_that_dies_plays_again_on_another_within_five_seconds(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess) -> None:  # noqa: F811
    c = await start_cluster(server_factory, edge_factory, redis_server)
    edge_a = c.start_edge("edge-a", c.county)
    edge_b = c.start_edge("edge-b", "中宁县")
    await c.nodes_shown("edge-a", "edge-b")
    api, lesson = c.api, c.lesson
    classroom = c.world.receiving_classroom_ids[0]
    participant = f"classroom-{classroom}"
    lead_peer, first, again = Peer(), Peer(), Peer()
    clients = []
    edge_b_client = EdgeClient(edge_b.url, c.secret)
    try:
        clients.append(await join_with_media(c.ws_url, await join_token(api, lesson, "lead"), lead_peer,
                                             lead_peer.as_lead()))
        clients.append(await join_with_media(c.ws_url, await join_token(api, lesson, "receiver", classroom),
                                             first, first.as_classroom()))
        await asyncio.wait_for(first.first_frame.wait(), 40)
        assert await wait_for(lambda: c.node_of(participant), 10, "the classroom in the lesson's media") == "edge-a"

        assert edge_a.proc is not None
        os.kill(edge_a.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        restart = await clients[1].expect("restart", timeout=5)
        told = time.monotonic() - killed
        assert restart["reason"] == "media_lost"
        await clients[1].close()
        await first.close()

        # the kiosk's reconnect: a fresh join, placed on the region's edge (edge A is left out)
        clients.append(await join_with_media(c.ws_url, await join_token(api, lesson, "receiver", classroom),
                                             again, again.as_classroom()))
        await asyncio.wait_for(again.first_frame.wait(), max(0.1, 5 - (time.monotonic() - killed)))
        playing_again = time.monotonic() - killed
        assert playing_again < 5, playing_again
        assert await grows(again, 20, 10), again.frames  # and it goes on playing there
        assert await c.node_of(participant) == "edge-b"
        [room_id] = (await edge_b_client.status())["rooms"]
        assert participant in (await edge_b_client.stats(room_id))["participants"]
        # one copy left, on edge B: the dead edge's link was dropped at the origin
        media = await c.media()
        assert [e["node"] for e in media["edges"]] == ["edge-b"] and len(media["links"]) == 1

        # a technician cannot move it back to the dead edge, nor move what is not a classroom in the lesson
        move = f"/api/v1/monitor/lessons/{lesson}/move"
        status, body = await api.call("POST", move, {"participant_id": participant, "node": "edge-a"})
        assert status == 409 and body["code"] == "node_unavailable", body
        status, body = await api.call("POST", move, {"participant_id": "classroom-999999", "node": "edge-b"})
        assert status == 404, body
        status, body = await api.call("POST", move, {"participant_id": participant})
        assert status == 400, body
        assert await c.node_of(participant) == "edge-b"  # none of that touched it

        log = c.control.log
        assert "edge edge-a lost" in log and "1 classrooms told to reconnect" in log, log[-3000:]
        placements = [x for x in log.splitlines() if "placement of " + participant in x]
        assert "edge-a" in placements[0] and "edge-b" in placements[-1], placements
        del c.edges["edge-a"]  # killed: its log may end anywhere
        c.logs_clean()
        print(f"told to reconnect {told:.2f} s after the kill; decoding again {playing_again:.2f} s after it")
    finally:
        for client in clients:
            await client.close()
        for p in (lead_peer, first, again):
            await p.close()
        await edge_b_client.close()
