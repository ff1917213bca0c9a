"""The cluster's shared state behind one interface: the node registry, cross-node events, the job lock.

Three things many nodes must agree on, and nothing else:

- the **node registry**: a node (origin or edge) registers with its id, region, county, address and
  capacity, then heartbeats its load (subscriptions, CPU, egress). A node whose heartbeats stop is
  gone after `missed_heartbeats` intervals; placement (`edge.placement`) only ever sees live nodes;
- **events**: JSON messages published on a channel reach every subscriber on every node that is
  subscribed at that moment (at most once: a message sent while a subscriber is cut off is lost);
- **leases**: a named lock with a time limit, e.g. the scheduler's job lock. Whoever holds it renews it
  before it runs out; a holder that dies loses it when it runs out and another takes it over with a
  higher *epoch* (a fencing token), so a stale holder can tell it is stale.

Two backends share this contract (tests/edge/test_registry_contract.py runs the same tests on both):
`InProcessRegistry` here (one machine, the default) and `edge.redis_registry.RedisRegistry` (many).
Every operation of a backend that cannot reach its store raises `RegistryUnavailable`, promptly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

ROLES = ("origin", "edge")
MISSED_HEARTBEATS = 3  # a node is gone after this many heartbeat intervals without one
QUEUE_LIMIT = 1000  # events kept for a subscriber that does not read; older ones are dropped first


class RegistryUnavailable(RuntimeError):
    """The registry's store cannot be reached (e.g. Redis is down); try again later."""


@dataclass(frozen=True)
class Node:
    """A node as it registers: who it is, where it serves, how much it can carry."""

    id: str
    region: str
    county: str
    address: str  # where signaling and other nodes reach it, e.g. https://edge-3.county.example
    capacity: int  # subscriptions it can carry
    role: str = "origin"
    upstream: str = ""  # an edge's: the node it takes its lessons from (a region's edge); empty: the origin

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a node needs an id")
        if self.role not in ROLES:
            raise ValueError(f"a node's role is one of {', '.join(ROLES)}, not {self.role!r}")
        if self.capacity < 0:
            raise ValueError("a node's capacity cannot be negative")


@dataclass(frozen=True)
class Load:
    """What a node carries now, sent with every heartbeat."""

    subscriptions: int = 0
    cpu: float = 0.0  # share of the node's cores in use, 0..1
    egress_mbps: float = 0.0
    lessons: tuple[int, ...] = ()  # the lessons whose rooms are open on it (the technician's page lists them)
    loop_lag_ms: float = 0.0  # the worst event-loop lag of its processes over the last seconds: a node whose loop
    # runs over 0.5 s late for half a minute fails aioice's consent checks and drops classrooms that were playing

    def __post_init__(self) -> None:
        object.__setattr__(self, "lessons", tuple(int(x) for x in self.lessons))  # a list, read back from JSON


@dataclass(frozen=True)
class NodeState:
    """A live node as the registry lists it: the registration, the last load, when it was last heard of."""

    node: Node
    load: Load
    seen: float  # the registry's clock at the last register or heartbeat

    @property
    def free(self) -> int:
        return max(0, self.node.capacity - self.load.subscriptions)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node.__dict__, "load": self.load.__dict__, "seen": self.seen}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeState:
        return cls(Node(**data["node"]), Load(**data["load"]), float(data["seen"]))


@dataclass(frozen=True)
class Lease:
    """A lease as its holder knows it.

    `deadline` is on the holder's own monotonic clock, taken *before* the request that got or renewed the
    lease was sent: the store's lease runs out no earlier, so a holder that stops acting at its deadline
    never overlaps with the next holder (whose epoch is higher)."""

    name: str
    holder: str
    epoch: int
    ttl_s: float
    deadline: float

    def valid(self, now: float) -> bool:
        return now < self.deadline


class Subscription(AsyncIterator[dict[str, Any]]):
    """Events of one channel for one subscriber; `close()` (or `async with`) ends it."""

    def __init__(self, channel: str, on_close: Callable[[Subscription], None]) -> None:
        self.channel = channel
        self.dropped = 0  # events lost because the subscriber did not read them in time
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._on_close = on_close
        self.closed = False

    def deliver(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= QUEUE_LIMIT:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        """The next event; `TimeoutError` after `timeout` seconds without one."""
        if self.closed:
            raise RuntimeError(f"subscription to {self.channel!r} is closed")
        return await asyncio.wait_for(self._queue.get(), timeout)

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_close(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self.closed:
            raise StopAsyncIteration
        return await self.get()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Registry(Protocol):
    """The contract both backends keep."""

    heartbeat_interval: float
    clock: Callable[[], float]  # the holders' clock, that `Lease.deadline` is on

    @property
    def expiry_s(self) -> float:
        """How long a node stays listed after its last heartbeat."""
        ...

    def seen_now(self) -> float:
        """Now, on the clock of `NodeState.seen` (so `seen_now() - state.seen` is how long ago it was heard of)."""
        ...

    async def register(self, node: Node, load: Load | None = None) -> NodeState: ...

    async def heartbeat(self, node_id: str, load: Load) -> bool:
        """Refresh a node's load and life; False if it is not registered (expired): register again."""
        ...

    async def deregister(self, node_id: str) -> None: ...

    async def nodes(self) -> list[NodeState]:
        """Every live node, by id."""
        ...

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Send a JSON message; the number of receivers it reached (Redis: subscribed connections)."""
        ...

    async def subscribe(self, channel: str) -> Subscription:
        """Subscribed when it returns: every message published after this reaches it."""
        ...

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, min_epoch: int = 0) -> Lease | None:
        """The lease if it was free (a new, higher epoch; above `min_epoch`) or already this holder's; else None."""
        ...

    async def renew_lease(self, lease: Lease) -> Lease | None:
        """Extend a lease still held by `lease.holder` at `lease.epoch`; None if it was lost (expired, taken)."""
        ...

    async def release_lease(self, lease: Lease) -> bool:
        """Give a lease up at once (a clean stop), only if still held by this holder at this epoch."""
        ...

    async def lease_holder(self, name: str) -> tuple[str, int] | None:
        """Who holds a lease now and at which epoch; None if nobody does."""
        ...

    async def close(self) -> None: ...


def encode(message: dict[str, Any]) -> str:
    """Messages are JSON objects on both backends (the in-process one checks it the same way)."""
    if not isinstance(message, dict):
        raise TypeError("an event is a JSON object")
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


@dataclass
class _HeldLease:
    holder: str
    epoch: int
    expires: float


@dataclass
class InProcessRegistry:
    """One machine: everything in this process's memory, on the event loop (no threads, no I/O).

    `clock` is the registry's own clock (monotonic by default; tests pass a fake one). Lease deadlines are
    on `holder_clock`, the holders' clock (the same one here)."""

    heartbeat_interval: float = 5.0
    missed_heartbeats: int = MISSED_HEARTBEATS
    clock: Callable[[], float] = time.monotonic
    _nodes: dict[str, NodeState] = field(default_factory=dict)
    _channels: dict[str, set[Subscription]] = field(default_factory=dict)
    _leases: dict[str, _HeldLease] = field(default_factory=dict)
    _epochs: dict[str, int] = field(default_factory=dict)

    @property
    def expiry_s(self) -> float:
        return self.heartbeat_interval * self.missed_heartbeats

    def _alive(self, state: NodeState) -> bool:
        return self.clock() - state.seen < self.expiry_s

    def seen_now(self) -> float:
        return self.clock()

    async def register(self, node: Node, load: Load | None = None) -> NodeState:
        load = load or Load()
        state = NodeState(node, load, self.clock())
        self._nodes[node.id] = state
        return state

    async def heartbeat(self, node_id: str, load: Load) -> bool:
        state = self._nodes.get(node_id)
        if state is None or not self._alive(state):
            self._nodes.pop(node_id, None)
            return False
        self._nodes[node_id] = replace(state, load=load, seen=self.clock())
        return True

    async def deregister(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    async def nodes(self) -> list[NodeState]:
        for node_id in [k for k, s in self._nodes.items() if not self._alive(s)]:
            del self._nodes[node_id]
        return [self._nodes[k] for k in sorted(self._nodes)]

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        data = json.loads(encode(message))  # every subscriber gets its own copy, as over the wire
        receivers = list(self._channels.get(channel, ()))
        for sub in receivers:
            sub.deliver(json.loads(json.dumps(data)))
        return len(receivers)

    async def subscribe(self, channel: str) -> Subscription:
        sub = Subscription(channel, self._unsubscribe)
        self._channels.setdefault(channel, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._channels.get(sub.channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._channels[sub.channel]

    def _current(self, name: str) -> _HeldLease | None:
        held = self._leases.get(name)
        if held is not None and self.clock() >= held.expires:
            del self._leases[name]
            return None
        return held

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, min_epoch: int = 0) -> Lease | None:
        now = self.clock()
        held = self._current(name)
        if held is not None and held.holder != holder:
            return None
        if held is None:
            epoch = max(self._epochs.get(name, 0), min_epoch) + 1
            self._epochs[name] = epoch
            held = _HeldLease(holder, epoch, now + ttl_s)
            self._leases[name] = held
        held.expires = now + ttl_s
        return Lease(name, holder, held.epoch, ttl_s, now + ttl_s)

    async def renew_lease(self, lease: Lease) -> Lease | None:
        now = self.clock()
        held = self._current(lease.name)
        if held is None or held.holder != lease.holder or held.epoch != lease.epoch:
            return None
        held.expires = now + lease.ttl_s
        return replace(lease, deadline=now + lease.ttl_s)

    async def release_lease(self, lease: Lease) -> bool:
        held = self._current(lease.name)
        if held is None or held.holder != lease.holder or held.epoch != lease.epoch:
            return False
        del self._leases[lease.name]
        return True

    async def lease_holder(self, name: str) -> tuple[str, int] | None:
        held = self._current(name)
        return (held.holder, held.epoch) if held is not None else None

    async def close(self) -> None:
        for subs in list(self._channels.values()):
            for sub in list(subs):
                sub.close()
