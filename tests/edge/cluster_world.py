"""A cluster for the serve-level edge tests: a control node (`classroom serve --media local --redis`) on a
real redis-server with a trial world (a region, a county, a lesson on air now), and `classroom edge`
processes started beside it, all sharing one node secret."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from signaling.trial import AdminApi, TrialWorld, build_world, lesson_now_timezone
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import EdgeProcess
from tests.signaling.test_websocket_server import ENV


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met in {timeout}s"
        await asyncio.sleep(0.2)


@dataclass
class Cluster:
    control: Any  # tests.conftest.Server
    api: AdminApi
    world: TrialWorld
    region: str  # the world's region and county, by name (as edges register theirs)
    county: str
    redis: RedisProcess
    edge_factory: Any
    env: dict[str, str]
    secret: str
    edges: dict[str, EdgeProcess] = field(default_factory=dict)
    control_url: str = ""  # how edges reach the control node and Redis (default: as this test does)
    redis_url: str = ""

    @property
    def ws_url(self) -> str:
        return self.control.url.replace("http", "ws") + "/ws"

    @property
    def lesson(self) -> int:
        return self.world.lesson_ids[0]

    def start_edge(self, node_id: str, county: str, *extra: str, region: str | None = None,
                   host: Any = None, address: str = "") -> EdgeProcess:
        """A `classroom edge --media local` of `county` (in the world's region unless given), with UDP
        ports of its own; waits until its control API listens. With `host` (a `signaling.netns.Host`) it
        runs inside that test host at `address`, announcing it for media and relay links."""
        low = 48000 + 300 * len(self.edges)
        edge: EdgeProcess = self.edge_factory(node_id)
        env = {**self.env, "CLASSROOM_MEDIA__UDP_PORT_MIN": str(low), "CLASSROOM_MEDIA__UDP_PORT_MAX": str(low + 299)}
        if host is not None:
            edge.host, edge.wrapper = address, tuple(host.enter)
            env |= {"CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": address, "CLASSROOM_MEDIA__RELAY_ADDRESS": address}
        edge.start(self.control_url or self.control.url, self.redis_url or self.redis.url, env,
                   "--media", "local", "--node-id", node_id, *extra,
                   region=self.region if region is None else region, county=county)
        edge.wait_listening()
        self.edges[node_id] = edge
        return edge

    async def nodes_shown(self, *node_ids: str, timeout: float = 20) -> None:
        async def shown() -> bool:
            nodes = (await self.api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]
            return set(node_ids) <= {n["node"]["id"] for n in nodes}

        await wait_for(shown, timeout, f"{', '.join(node_ids)} on the control node's nodes page")

    async def media(self) -> dict[str, Any]:
        """The lesson's media as the technicians' live view has it (participants with their `node`,
        `edges`, `links`)."""
        lessons = (await self.api.ok("GET", "/api/v1/live?detail=1"))["lessons"]
        [live] = [x for x in lessons if x["lesson_id"] == self.lesson]
        return dict(live["media"])

    async def node_of(self, participant_id: str) -> str | None:
        """The edge a participant's media is on (None: the control node, or not in the lesson)."""
        return (await self.media())["participants"].get(participant_id, {}).get("node")

    def logs_clean(self) -> None:
        for name, log in [("control", self.control.log), *((n, e.log) for n, e in self.edges.items())]:
            assert "Traceback" not in log, f"{name}:\n{log[-3000:]}"


async def start_cluster(server_factory: Any, edge_factory: Any, redis: RedisProcess, receivers: int = 1,
                        *extra: str, **env: str) -> Cluster:
    tz = lesson_now_timezone()
    secret = secrets.token_urlsafe(24)
    common = {**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_CLUSTER__HEARTBEAT_S": "1",
              "CLASSROOM_CLUSTER__NODE_SECRET": secret}
    control = server_factory("--media", "local", "--redis", redis.url, *extra,
                             env={**common, "CLASSROOM_CLUSTER__NODE_ID": "control-1", **env})
    api = AdminApi(control.url, control.token)
    world = await build_world(api, tz, receivers=receivers)
    [region] = [r["name"] for r in await api.ok("GET", "/api/v1/regions") if r["name"].startswith("宁夏-")]
    [county] = [c["name"] for c in await api.ok("GET", "/api/v1/counties") if c["name"].startswith("沙坡头区-")]
    return Cluster(control, api, world, region, county, redis, edge_factory, common, secret)


async def grows(peer: Any, by: int, timeout: float) -> bool:
    """Whether an aiortc peer (`signaling.client.Peer`) decodes `by` more frames within `timeout`."""
    start = peer.frames
    deadline = time.monotonic() + timeout
    while peer.frames < start + by:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True
