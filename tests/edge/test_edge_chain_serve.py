"""Edges in a chain, region → county, through the real program: `classroom serve --redis` (the control
node, where the lead publishes), a region's `classroom edge` and a county's `classroom edge --upstream
<the region's>` on one real redis-server.

The county's classroom is placed on the county's edge, whose copy of the room is linked to the region
edge's copy, which is linked to the control node: the classroom decodes the lead's frames; the control
node sends each of the lead's tracks once, to the region, and the region once on to the county. The
teacher calls on the classroom: its camera goes up both links to the lead. Then the region's edge is
killed: the county's classroom is told to reconnect, and its edge now takes the room straight from the
control node; it plays again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from edge.control_client import EdgeClient
from signaling.client import Peer, join_with_media
from signaling.trial import join_token
from tests.edge.cluster_world import grows, start_cluster
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import edge_factory  # noqa: F401 - the fixture


def _sent(link: dict[str, Any], pid: str) -> dict[str, int]:
    return {s["track"]: s["packets_sent"] for s in link["sent"] if s["participant_id"] == pid}


async def test_a_county_edge_takes_the_lesson_from_its_regions_edge_and_from_the_control_node_when_that_dies(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess) -> None:  # noqa: F811
    c = await start_cluster(server_factory, edge_factory, redis_server)
    region_edge = c.start_edge("edge-r", "")
    county_edge = c.start_edge("edge-c", c.county, "--upstream", "edge-r")
    assert "lessons from edge-r" in county_edge.log
    await c.nodes_shown("edge-r", "edge-c")
    api, lesson = c.api, c.lesson
    classroom = c.world.receiving_classroom_ids[0]
    participant = f"classroom-{classroom}"
    lead_peer, seat, again = Peer(), Peer(), Peer()
    clients = []
    at_region, at_county = EdgeClient(region_edge.url, c.secret), EdgeClient(county_edge.url, c.secret)
    try:
        lead = await join_with_media(c.ws_url, await join_token(api, lesson, "lead"), lead_peer, lead_peer.as_lead())
        clients.append(lead)
        token = await join_token(api, lesson, "receiver", classroom)
        room = await join_with_media(c.ws_url, token, seat, seat.as_classroom(publish=True))
        clients.append(room)
        await asyncio.wait_for(seat.first_frame.wait(), 40)
        assert await grows(seat, 30, 15), seat.frames

        # the chain: control node -> region edge -> county edge -> the classroom
        m = await c.media()
        assert m["participants"][participant]["node"] == "edge-c"
        assert {e["node"]: e["upstream"] for e in m["edges"]} == {"edge-r": None, "edge-c": "edge-r"}
        [room_id] = (await at_county.status())["rooms"]
        assert (await at_region.status())["rooms"] == [room_id]
        lead_id = next(p for p, v in m["participants"].items() if v["role"] == "lead")

        async def counts() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
            origin = await c.media()
            [to_region] = origin["links"]
            region_links = (await at_region.stats(room_id))["links"]
            [to_county] = [x for x in region_links if x["end"] == "origin"]
            return (_sent(to_region, lead_id), _sent(to_county, lead_id),
                    {k: v["packets"] for k, v in origin["participants"][lead_id]["published"].items()})

        before = await counts()
        await asyncio.sleep(3)
        after = await counts()
        for track in ("camera", "audio"):
            received = after[2][track] - before[2][track]
            for hop in (0, 1):  # once to the region, once on from the region to the county
                sent = after[hop][track] - before[hop][track]
                assert received > 0 and 0.9 <= sent / received <= 1.05, (hop, track, sent, received)
        assert len((await at_county.stats(room_id))["links"]) == 1

        # talk-back up the chain
        await lead.send("talkback_grant", participant_id=participant)
        assert (await room.expect("talkback"))["participant_id"] == participant
        await asyncio.wait_for(lead_peer.first_frame.wait(), 15)
        assert await grows(lead_peer, 20, 10), lead_peer.frames
        await lead.send("talkback_end")
        await room.expect("talkback")

        # the region's edge dies: the county's classroom reconnects, its edge linked to the control node
        assert region_edge.proc is not None
        os.kill(region_edge.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        restart = await room.expect("restart", timeout=10)
        assert restart["reason"] == "media_lost"
        await room.close()
        await seat.close()
        token = await join_token(api, lesson, "receiver", classroom)
        clients.append(await join_with_media(c.ws_url, token, again, again.as_classroom()))
        await asyncio.wait_for(again.first_frame.wait(), 15)
        playing_again = time.monotonic() - killed
        assert await grows(again, 20, 10), again.frames
        m = await c.media()
        assert m["participants"][participant]["node"] == "edge-c"
        assert {e["node"]: e["upstream"] for e in m["edges"]} == {"edge-c": None}
        assert len(m["links"]) == 1
        log = c.control.log
        assert "edge edge-c took it from edge edge-r, which is gone" in log, log[-3000:]
        del c.edges["edge-r"]  # killed
        c.logs_clean()
        print(f"playing again {playing_again:.2f} s after the region's edge was killed")
    finally:
        for x in clients:
            await x.close()
        for p in (lead_peer, seat, again):
            await p.close()
        await at_region.close()
        await at_county.close()
