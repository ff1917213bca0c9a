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
from typing import Any

from edge.control_client import EdgeClient
from signaling.client import Peer, join_with_media
from signaling.trial import join_token
from tests.edge.cluster_world import grows, start_cluster
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import edge_factory  # noqa: F401 - the fixture


async def test_after_a_control_node_restart_the_classroom_plays_on_its_edge_again_over_one_link(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess) -> None:  # noqa: F811
    c = await start_cluster(server_factory, edge_factory, redis_server)
    edge = c.start_edge("edge-a", c.county)
    api, lesson, control = c.api, c.lesson, c.control
    classroom = c.world.receiving_classroom_ids[0]
    participant = f"classroom-{classroom}"
    peers: list[Peer] = []
    clients: list[Any] = []
    client = EdgeClient(edge.url, c.secret)

    async def on_air() -> Peer:
        lead, seat = Peer(), Peer()
        peers.extend((lead, seat))
        clients.append(await join_with_media(c.ws_url, await join_token(api, lesson, "lead"), lead, lead.as_lead()))
        clients.append(await join_with_media(c.ws_url, await join_token(api, lesson, "receiver", classroom),
                                             seat, seat.as_classroom()))
        await asyncio.wait_for(seat.first_frame.wait(), 40)
        assert await grows(seat, 20, 15), seat.frames
        return seat

    try:
        await c.nodes_shown("edge-a")
        await on_air()
        [room_id] = (await client.status())["rooms"]
        assert participant in (await client.stats(room_id))["participants"]

        control.kill9()
        for x in clients:
            await x.close()
        for p in peers:
            await p.close()
        clients.clear()
        control.start()
        await c.nodes_shown("edge-a")

        await on_air()
        [again] = (await client.status())["rooms"]
        assert again == room_id
        at_edge = await client.stats(room_id)
        assert list(at_edge["participants"]) == [participant], at_edge["participants"]
        assert len(at_edge["links"]) == 1, at_edge["links"]  # the old run's link is gone
        c.logs_clean()
    finally:
        for x in clients:
            await x.close()
        for p in peers:
            await p.close()
        await client.close()
