"""A lesson with more classrooms than the control node admits spreads onto an edge, through the real
program: `classroom serve --redis` (the control node, in the classrooms' own county, admitting one
subscription) and a `classroom edge` of another region, on one real redis-server.

The first classroom is placed on the control node (its county); the second is placed there too, but the
control node has no room for it: it goes to the edge, wherever that is, with the reason logged and on
the technicians' nodes tab, and both classrooms decode the lead's frames. Nobody configured anything."""

from __future__ import annotations

import asyncio
from typing import Any

from signaling.client import Peer, join_with_media
from signaling.trial import join_token
from tests.edge.cluster_world import grows, start_cluster
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import edge_factory  # noqa: F401 - the fixture


async def test_a_classroom_the_control_node_has_no_room_for_plays_on_an_edge_elsewhere(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess) -> None:  # noqa: F811
    c = await start_cluster(server_factory, edge_factory, redis_server, receivers=2,
                            CLASSROOM_MEDIA__MAX_SUBSCRIPTIONS_PER_WORKER="1")
    # the control node serves the classrooms' county (as a county's own server would)
    control = c.control
    control.stop()
    control.env = {**(control.env or {}), "CLASSROOM_CLUSTER__COUNTY": c.county, "CLASSROOM_CLUSTER__REGION": c.region}
    control.start()
    c.start_edge("edge-x", "古浪县", region="甘肃")
    await c.nodes_shown("edge-x")
    lead_peer, seats = Peer(), [Peer(), Peer()]
    clients = []
    try:
        clients.append(await join_with_media(c.ws_url, await join_token(c.api, c.lesson, "lead"), lead_peer,
                                             lead_peer.as_lead()))
        for seat, classroom in zip(seats, c.world.receiving_classroom_ids, strict=True):
            token = await join_token(c.api, c.lesson, "receiver", classroom)
            clients.append(await join_with_media(c.ws_url, token, seat, seat.as_classroom()))
        for seat in seats:
            await asyncio.wait_for(seat.first_frame.wait(), 40)
            assert await grows(seat, 20, 15), seat.frames
        first, second = (f"classroom-{x}" for x in c.world.receiving_classroom_ids)
        assert await c.node_of(first) is None  # on the control node itself
        assert await c.node_of(second) == "edge-x"
        shown = (await c.api.ok("GET", "/api/v1/monitor/nodes"))["placements"]
        moved = next(p for p in shown if p["participant_id"] == second)
        assert moved["node"] == "edge-x" and moved["reason_zh"].startswith("本节点已满，改用边缘节点"), moved
        assert "this node is full, so an edge" in control.log
        c.logs_clean()
    finally:
        for x in clients:
            await x.close()
        for p in (lead_peer, *seats):
            await p.close()
