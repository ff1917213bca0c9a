"""`classroom edge` as its own process beside a control node (`classroom serve --redis`) on one real
redis-server: the edge registers as role `edge` with its place and capacity and shows on the control
node's nodes page; its control API refuses a wrong or missing node secret; and with the secret a
linked copy of a room is opened on the edge, where a real aiortc classroom decodes the lead's frames,
each of the lead's tracks sent once on the link.

The lead publishes into a media plane in the test process that plays the control node's media part (the
control node itself does not yet open copies on edges: docs/scaling.md, "What is not built yet")."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.control_client import EdgeClient, EdgeUnavailable
from edge.redis_registry import RedisRegistry
from edge.registry import NodeState
from media.api import EventKind, MediaEvent
from media.config import MediaConfig
from media.local import LocalMediaPlane
from signaling.trial import AdminApi
from tests.conftest import ROOT, free_port
from tests.edge.conftest import RedisProcess
from tests.media.media_clients import Publisher, Subscriber
from tests.signaling.test_websocket_server import ENV

SECRET = secrets.token_urlsafe(24)
ROOM = "lesson-7"
LINK = "lesson-7:control>edge-zn"


@dataclass
class EdgeProcess:
    """A `classroom edge` process on 127.0.0.1 with its own data folder; stopped by the fixture."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"  # the address its control API listens on
    wrapper: tuple[str, ...] = ()  # words it runs under: e.g. nsenter into a test host's namespace

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> str:
        path = self.data_dir / "edge.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, control: str, redis_url: str, env: dict[str, str], *extra: str, region: str = "宁夏",
              county: str = "中宁县") -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "edge.log", "ab") as log:
            self.proc = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", "classroom.cli", "edge", "--control", control, "--redis",
                 redis_url, "--region", region, "--county", county, "--host", self.host, "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--node-id", "edge-zn", *extra],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            )

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "control API on" not in self.log:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"classroom edge exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"classroom edge did not start in {timeout}s:\n{self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def edge_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[EdgeProcess] = []

    def make(name: str) -> EdgeProcess:
        edge = EdgeProcess(tmp_path / name, free_port())
        made.append(edge)
        return edge

    yield make
    for edge in made:
        edge.stop()


async def until(check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout}s")
        await asyncio.sleep(0.2)


async def edge_in_registry(url: str) -> NodeState | None:
    registry = RedisRegistry(url, heartbeat_interval=0.5)
    try:
        return next((n for n in await registry.nodes() if n.node.id == "edge-zn"), None)
    finally:
        await registry.close()


def test_an_edge_without_a_node_secret_refuses_to_start(tmp_path: Path, redis_server: RedisProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "classroom.cli", "edge", "--control", "http://127.0.0.1:9", "--redis", redis_server.url,
         "--region", "宁夏", "--port", str(free_port()), "--data-dir", str(tmp_path / "e"), "--media", "local"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **ENV})
    assert done.returncode == 2, done.stderr
    assert "no node secret" in done.stderr


@pytest.mark.parametrize("media", ["local", "workers"])
async def test_an_edge_registers_refuses_a_wrong_secret_and_carries_a_linked_copy_to_a_classroom(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess, media: str) -> None:
    env = {**ENV, "CLASSROOM_CLUSTER__HEARTBEAT_S": "0.5"}
    control = server_factory("--media", "local", "--redis", redis_server.url,
                             env={**env, "CLASSROOM_CLUSTER__NODE_ID": "control-1"})
    edge = edge_factory("edge")
    edge.start(control.url, redis_server.url,
               {**env, "CLASSROOM_CLUSTER__NODE_SECRET": SECRET, "CLASSROOM_CLUSTER__CAPACITY": "120",
                "CLASSROOM_MEDIA__UDP_PORT_MIN": "48000", "CLASSROOM_MEDIA__UDP_PORT_MAX": "48499",
                "CLASSROOM_MEDIA__WORKERS": "2"},
               "--media", media)
    edge.wait_listening()
    assert "control node " + control.url + " answers" in edge.log

    # in the registry, with its place, its control address and its capacity
    state = await until(lambda: edge_in_registry(redis_server.url), what="the edge in the registry")
    assert (state.node.role, state.node.region, state.node.county) == ("edge", "宁夏", "中宁县")
    assert state.node.address == edge.url and state.node.capacity == 120
    # and on the control node's nodes page
    api = AdminApi(control.url, control.token)

    async def listed() -> dict[str, Any] | None:
        shown = await api.ok("GET", "/api/v1/monitor/nodes")
        return next((n for n in shown["nodes"] if n["node"]["id"] == "edge-zn"), None)

    row = await until(listed, what="the edge on /api/v1/monitor/nodes")
    assert row["node"]["role"] == "edge" and row["this"] is False

    # the control API: nothing without the secret
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer " + SECRET[:-1] + "x"}, {"Authorization": SECRET}):
            async with http.get(edge.url + "/node/v1/status", headers=headers) as resp:
                assert resp.status == 401
            async with http.post(edge.url + "/node/v1/call/relay_copy", headers=headers,
                                 json={"args": {"room_id": ROOM, "link_id": LINK, "key": ""}}) as resp:
                assert resp.status == 401
    wrong = EdgeClient(edge.url, "not-the-secret-of-this-cluster")
    with pytest.raises(EdgeUnavailable):
        await wrong.free_subscriptions()
    await wrong.close()
    assert "refused" in edge.log

    # with it: a copy of the room on the edge, linked to the origin, a classroom there
    client = EdgeClient(edge.url, SECRET)
    status = await client.status()
    assert status["node_id"] == "edge-zn" and status["rooms"] == [] and status["control_url"] == control.url
    origin = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=48500, udp_port_max=48999))
    await origin.start()
    events: list[MediaEvent] = []

    async def collect() -> None:
        async for e in client.events():
            events.append(e)

    collecting = asyncio.get_running_loop().create_task(collect())
    lead = sub = None
    try:
        await origin.open_room(ROOM)
        lead = await Publisher.connect(origin, ROOM, "lead")
        key = secrets.token_bytes(32)
        copy_addr = await client.relay_copy(ROOM, LINK, key)
        origin_addr = await origin.relay_origin(ROOM, LINK, key, copy_addr)
        await client.relay_connect(ROOM, LINK, origin_addr)
        sub = await Subscriber.connect(client, ROOM, "class-zn-1", audio_slots=1)  # type: ignore[arg-type]
        await sub.wait_frames(60, timeout=40)
        assert len({f.number for f in sub.frames if f.source == 1}) >= 50

        # each of the lead's tracks once on the link to the edge, counted at the origin over a window
        def link_sent(stats: dict[str, Any]) -> dict[str, int]:
            [link] = stats["links"]
            return {s["track"]: s["packets_sent"] for s in link["sent"]}

        def lead_received(stats: dict[str, Any]) -> dict[str, int]:
            return {k: v["packets"] for k, v in stats["participants"]["lead"]["published"].items()}

        before = await origin.stats(ROOM)
        await asyncio.sleep(3)
        after = await origin.stats(ROOM)
        for track in ("camera", "audio"):
            sent = link_sent(after)[track] - link_sent(before)[track]
            received = lead_received(after)[track] - lead_received(before)[track]
            assert received > 0 and 0.9 <= sent / received <= 1.05, (track, sent, received)
        edge_room = await client.stats(ROOM)
        [edge_link] = edge_room["links"]
        assert edge_link["end"] == "copy" and edge_link["refused"] == edge_link["replayed"] == 0
        assert edge_room["participants"]["class-zn-1"]["role"] == "receiver"
        assert (await client.status())["rooms"] == [ROOM]
        assert any(e.kind == EventKind.SUBSCRIBER_UP and e.participant_id == "class-zn-1" for e in events)

        # its heartbeat carries the classroom
        async def carrying() -> bool:
            state = await edge_in_registry(redis_server.url)
            return state is not None and state.load.subscriptions == 1

        await until(carrying, what="the edge's heartbeat with its classroom")

        await client.leave(ROOM, "class-zn-1")
        await client.close_copy(ROOM)
        assert (await client.status())["rooms"] == []
    finally:
        if sub is not None:
            await sub.close()
        if lead is not None:
            await lead.close()
        collecting.cancel()
        await client.close()
        await origin.stop()
    edge.stop()
    assert edge.proc is not None and edge.proc.returncode == 0, edge.log
    assert await edge_in_registry(redis_server.url) is None  # deregistered on a clean stop
