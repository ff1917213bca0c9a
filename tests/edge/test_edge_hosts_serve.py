"""One lesson over three hosts of a district's network, through the real programs: the control node
(`classroom serve --redis`) and redis-server on this test's host, and two `classroom edge` processes,
each in a network namespace of its own (a county's machine room), all joined by veth pairs on one bridge
(10.77.0.0/24, made by the test and removed after it; nothing leaves the machine).

The edges reach the control node and Redis at its LAN address, the control node reaches their control
APIs and relay links at theirs, and the classrooms (aiortc peers on this host) play from the edges over
the bridge. Checked: classrooms on both edges decode the lead's picture; the control node sends each of
the lead's tracks once per edge, however many classrooms watch there (from its link stats); with
redis-server stopped the lesson goes on, a classroom that joins then still gets an edge that is known
live (its events stream is up), the technician's nodes tab (real Chromium) keeps the nodes as last read
under a banner saying Redis is down, and when redis-server is back the edges register again and the
banner goes; and a SIGKILL of one edge puts its classrooms back on the picture from the other edge within
5 seconds."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import async_playwright

from signaling.client import Peer, ProtocolClient, join_with_media
from signaling.netns import Host, Network, isolated
from signaling.trial import join_token
from tests.browser.conftest import ARTIFACTS, CHROMIUM, FLAGS, tech_nodes_tab
from tests.browser.screens import decode_png
from tests.conftest import free_port
from tests.edge.cluster_world import Cluster, grows, start_cluster, wait_for
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import edge_factory  # noqa: F401 - the fixture

LAN, EDGE_1, EDGE_2 = "10.77.0.1", "10.77.0.2", "10.77.0.3"


@pytest.fixture
def district(tmp_path: Path) -> Iterator[tuple[Host, Host, RedisProcess]]:
    assert isolated(), "run inside the suite's own network namespace (scripts/test-all)"
    net = Network("lcvbr0", LAN)
    redis = RedisProcess(free_port(), tmp_path / "redis", bind=("127.0.0.1", LAN), password=secrets.token_hex(12))
    try:
        hosts = net.add("lcvh1", EDGE_1), net.add("lcvh2", EDGE_2)
        redis.start()
        yield hosts[0], hosts[1], redis
    finally:
        redis.stop()
        net.close()


class Seat:
    """A receiving classroom on this host, its media from whichever node it is placed on."""

    def __init__(self, classroom: int) -> None:
        self.classroom = classroom
        self.participant = f"classroom-{classroom}"
        self.peer = Peer(addresses=(LAN,))
        self.client: ProtocolClient | None = None

    async def join(self, c: Cluster) -> None:
        token = await join_token(c.api, c.lesson, "receiver", self.classroom)
        self.client = await join_with_media(c.ws_url, token, self.peer, self.peer.as_classroom())

    async def rejoin(self, c: Cluster) -> None:
        """What the kiosk does on `restart`: a fresh peer connection, joined again."""
        await self.close()
        self.peer = Peer(addresses=(LAN,))
        await self.join(c)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        await self.peer.close()


async def link_packets(c: Cluster, lead_id: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(edge, track) -> (packets the control node sent on its link to that edge, packets of that track it
    received from the lead), from the lesson's media stats."""
    media = await c.media()
    received = {k: int(v["packets"]) for k, v in media["participants"][lead_id]["published"].items()}
    out = {}
    for link in media.get("links", []):
        edge = link["link_id"].rsplit(">", 1)[1].split(":")[0]
        for sent in link["sent"]:
            if sent["participant_id"] == lead_id:
                out[(edge, sent["track"])] = (int(sent["packets_sent"]), received.get(sent["track"], 0))
    return out


async def test_a_lesson_over_three_hosts_survives_a_redis_outage_and_an_edges_death(
        server_factory: Any, edge_factory: Any, district: tuple[Host, Host, RedisProcess]) -> None:  # noqa: F811
    host_1, host_2, redis = district
    c = await start_cluster(server_factory, edge_factory, redis, 6, "--host", "0.0.0.0",
                            CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES=LAN, CLASSROOM_MEDIA__RELAY_ADDRESS=LAN)
    c.control_url = f"http://{LAN}:{c.control.port}"
    c.redis_url = redis.url_at(LAN)
    c.start_edge("edge-1", c.county, host=host_1, address=EDGE_1)
    c.start_edge("edge-2", c.county, host=host_2, address=EDGE_2)
    await c.nodes_shown("edge-1", "edge-2")

    [county_id] = [x["id"] for x in await c.api.ok("GET", "/api/v1/counties") if x["name"] == c.county]
    await c.api.ok("POST", "/api/v1/accounts", {"username": "tech1", "password": "correct horse 1",
                                                "role": "technician", "county_id": county_id})

    lead = Peer(addresses=(LAN,))
    seats = [Seat(classroom) for classroom in c.world.receiving_classroom_ids]
    clients = []
    play = await async_playwright().start()
    browser = await play.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
    try:
        tech = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
        await tech_nodes_tab(tech, c.control.url)
        await tech.wait_for_selector("#nodes tr[data-node='edge-2']", timeout=15000)
        assert await tech.locator("#registry-down").count() == 0

        clients.append(await join_with_media(c.ws_url, await join_token(c.api, c.lesson, "lead"), lead,
                                             lead.as_lead()))
        for seat in seats[:4]:
            await seat.join(c)
        await asyncio.wait_for(asyncio.gather(*(s.peer.first_frame.wait() for s in seats[:4])), 40)
        nodes = {s.participant: await c.node_of(s.participant) for s in seats[:4]}
        assert sorted(nodes.values()) == ["edge-1", "edge-1", "edge-2", "edge-2"], nodes  # a burst, spread

        # each of the lead's tracks crosses to each edge once, for its two classrooms there
        media = await c.media()
        lead_id = next(p for p, v in media["participants"].items() if v["role"] == "lead")
        before = await link_packets(c, lead_id)
        await asyncio.sleep(3)
        after = await link_packets(c, lead_id)
        assert {edge for edge, _ in after} == {"edge-1", "edge-2"}
        assert {track for _, track in after} == {"camera", "audio"}
        for key, (sent, received) in after.items():
            ratio = (sent - before[key][0]) / max(1, received - before[key][1])
            assert ratio == pytest.approx(1.0, abs=0.05), (key, before[key], (sent, received))
        edge_stats = {n["node"]["id"]: n for n in (await c.api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]}
        assert edge_stats["edge-1"]["node"]["address"].startswith(f"http://{EDGE_1}:")
        assert edge_stats["edge-2"]["node"]["address"].startswith(f"http://{EDGE_2}:")

        # Redis goes away: the lesson goes on, on both edges, for longer than the registry would keep a node
        redis.stop()
        assert all(await asyncio.gather(*(grows(s.peer, 30, 6) for s in seats[:4])))
        # a classroom joining now is still placed on a live edge (known by its events stream), not refused
        await seats[4].join(c)
        await asyncio.wait_for(seats[4].peer.first_frame.wait(), 20)
        assert await c.node_of(seats[4].participant) in ("edge-1", "edge-2")
        assert "Redis is unavailable, among the nodes last seen live" in c.control.log
        # the technician still sees the nodes, as last read, under a banner that says Redis is down
        shown = await c.api.ok("GET", "/api/v1/monitor/nodes")
        assert "cannot be reached" in shown["registry_error"] and shown["nodes_read_at"] <= time.time()
        assert {"edge-1", "edge-2"} <= {n["node"]["id"] for n in shown["nodes"]}
        banner = tech.locator("#registry-down")
        await banner.wait_for(timeout=10000)  # the tab reloads every 5 s
        assert "Redis 不可用" in await banner.inner_text()
        assert await tech.locator("#nodes tr[data-node='edge-1']:not([data-participant])").count() == 1
        ARTIFACTS.mkdir(exist_ok=True)
        await tech.screenshot(path=str(ARTIFACTS / "tech-nodes-redis-down.png"))
        pixels = decode_png(await banner.screenshot())
        assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 8  # text shown

        # Redis is back: the edges register again (their heartbeats), joins are placed as before
        redis.start()
        await c.nodes_shown("edge-1", "edge-2", timeout=20)
        await tech.locator("#registry-down").wait_for(state="detached", timeout=10000)
        await seats[5].join(c)
        await asyncio.wait_for(seats[5].peer.first_frame.wait(), 20)
        assert await c.node_of(seats[5].participant) in ("edge-1", "edge-2")
        assert all(await asyncio.gather(*(grows(s.peer, 15, 5) for s in seats)))

        # edge-1 dies: its classrooms are told to reconnect and play again from edge-2 within 5 seconds
        victims = [s for s in seats if await c.node_of(s.participant) == "edge-1"]
        assert victims
        edge_1 = c.edges["edge-1"]
        assert edge_1.proc is not None
        os.kill(edge_1.proc.pid, signal.SIGKILL)
        killed = time.monotonic()

        async def back(seat: Seat) -> float:
            assert seat.client is not None
            await seat.client.expect("restart", timeout=5)
            await seat.rejoin(c)
            await asyncio.wait_for(seat.peer.first_frame.wait(), max(0.1, 5 - (time.monotonic() - killed)))
            return time.monotonic() - killed

        times = await asyncio.gather(*(back(s) for s in victims))
        assert max(times) < 5, times
        for seat in victims:
            assert await wait_for(lambda s=seat: c.node_of(s.participant), 5, "the rejoined classroom") == "edge-2"
        c.logs_clean()
    finally:
        await browser.close()
        await play.stop()
        for seat in seats:
            await seat.close()
        for client in clients:
            await client.close()
        await lead.close()
