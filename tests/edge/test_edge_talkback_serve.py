"""Talk-back from a classroom on an edge, through the real program: `classroom serve --redis` (the control
node, where the lead publishes) and a `classroom edge` of the classroom's county on one real redis-server.

The classroom plays on the edge and publishes its camera there; the teacher calls on it: the classroom's
camera goes up the relay link to the control node and reaches the lead, who decodes it. The teacher ends
the talk-back: the lead's picture of the classroom stops, and the classroom goes on watching the lesson."""

from __future__ import annotations

import asyncio
from typing import Any

from signaling.client import Peer, join_with_media
from signaling.trial import join_token
from tests.edge.cluster_world import grows, start_cluster
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import edge_factory  # noqa: F401 - the fixture


async def test_the_teacher_calls_on_a_classroom_on_an_edge_and_sees_it_until_the_call_ends(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess) -> None:  # noqa: F811
    c = await start_cluster(server_factory, edge_factory, redis_server)
    c.start_edge("edge-a", c.county)
    await c.nodes_shown("edge-a")
    called = f"classroom-{c.world.receiving_classroom_ids[0]}"
    lead_peer, seat = Peer(), Peer()
    clients = []
    try:
        lead = await join_with_media(c.ws_url, await join_token(c.api, c.lesson, "lead"), lead_peer,
                                     lead_peer.as_lead())
        clients.append(lead)
        token = await join_token(c.api, c.lesson, "receiver", c.world.receiving_classroom_ids[0])
        room = await join_with_media(c.ws_url, token, seat, seat.as_classroom(publish=True))
        clients.append(room)
        await asyncio.wait_for(seat.first_frame.wait(), 40)
        assert await c.node_of(called) == "edge-a"
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
        c.logs_clean()
    finally:
        for client in clients:
            await client.close()
        for p in (lead_peer, seat):
            await p.close()
