"""This node in the registry: registered at start, its load heartbeated, deregistered on a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from edge.registry import Load, Node, Registry, RegistryUnavailable
from monitoring.alerts import ProcessHealth
from monitoring.metrics import RoomGauges

log = logging.getLogger(__name__)


def node_load(rooms: Iterable[RoomGauges], processes: Iterable[ProcessHealth], cores: int,
              lessons: Iterable[int] = ()) -> Load:
    """The load a node reports, from its rooms' gauges and its processes' CPU (pure).

    Subscriptions: the participants connected to its rooms; CPU: the processes' use as a share of all
    cores (0..1); egress: the rooms' sending bitrate in Mbit/s; lessons: those with a room open here; loop
    lag: the worst of the processes' (ms)."""
    rooms, processes = list(rooms), list(processes)
    subscriptions = sum(sum(g.subscriptions.values()) for g in rooms)
    egress = sum(g.bitrate_out for g in rooms) / 1e6
    cpu = sum(p.cpu_percent or 0.0 for p in processes) / (100.0 * max(1, cores))
    lag = max((p.loop_lag_ms or 0.0 for p in processes), default=0.0)
    return Load(subscriptions=subscriptions, cpu=round(min(1.0, cpu), 3), egress_mbps=round(egress, 3),
                lessons=tuple(sorted(lessons)), loop_lag_ms=round(lag, 1))


class NodePresence:
    def __init__(self, registry: Registry, node: Node, load: Callable[[], Load]) -> None:
        self.registry = registry
        self.node = node
        self.load = load
        self.registered = False
        self._unreachable = False
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """One heartbeat; registers (again) when the registry does not know this node (first, expired, Redis
        restarted empty)."""
        try:
            load = self.load()
            if not self.registered or not await self.registry.heartbeat(self.node.id, load):
                await self.registry.register(self.node, load)
                log.info("registry: node %s registered (%s, county %s, region %s, capacity %d)", self.node.id,
                         self.node.role, self.node.county or "-", self.node.region or "-", self.node.capacity)
                self.registered = True
            if self._unreachable:
                log.info("registry: reachable again")
                self._unreachable = False
        except RegistryUnavailable as exc:
            if not self._unreachable:
                log.warning("registry: %s; this node's heartbeats resume when it is back", exc)
                self._unreachable = True

    async def _run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.registry.heartbeat_interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="node-presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.registered:
            with contextlib.suppress(RegistryUnavailable):
                await self.registry.deregister(self.node.id)
            self.registered = False
