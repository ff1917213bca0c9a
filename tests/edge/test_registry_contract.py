"""The registry's contract, one suite for both backends: in-process (a fake clock) and Redis (a real server).

Each test gets a `Backend`: `make()` gives another client of the same store (another node), `advance(s)`
moves time on (the fake clock; for Redis, real sleeping against short intervals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from edge.redis_registry import RedisRegistry
from edge.registry import InProcessRegistry, Load, Node, Registry, RegistryUnavailable
from tests.edge.conftest import RedisProcess

INTERVAL = 0.4  # heartbeat interval: a node is gone 1.2 s after its last heartbeat (margins for a busy machine)
LEASE = 1.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    make: Callable[[], Registry]
    advance: Callable[[float], Awaitable[None]]
    now: Callable[[], float]
    made: list[Registry] = field(default_factory=list)

    def client(self) -> Registry:
        registry = self.make()
        self.made.append(registry)
        return registry


@pytest.fixture(params=["in-process", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "in-process":
        clock = FakeClock()
        shared = InProcessRegistry(heartbeat_interval=INTERVAL, clock=clock)

        async def forward(seconds: float) -> None:
            clock.now += seconds
            await asyncio.sleep(0)

        b = Backend("in-process", lambda: shared, forward, clock)
    else:
        server: RedisProcess = request.getfixturevalue("redis_server")
        b = Backend(
            "redis",
            lambda: RedisRegistry(server.url, heartbeat_interval=INTERVAL, op_timeout=1.0, max_backoff_s=0.3),
            asyncio.sleep,
            time.monotonic,
        )
    yield b
    for registry in b.made:
        await registry.close()


def node(node_id: str, county: str = "county-a", capacity: int = 100) -> Node:
    return Node(node_id, "region-1", county, f"http://{node_id}.test", capacity, role="edge")


# nodes


async def test_register_then_list_with_load(backend: Backend) -> None:
    a, b = backend.client(), backend.client()
    await a.register(node("n1"), Load(subscriptions=3, cpu=0.25, egress_mbps=7.5))
    await b.register(node("n2", county="县乙"))
    listed = await b.nodes()
    assert [s.node.id for s in listed] == ["n1", "n2"]
    assert listed[0].node == node("n1")
    assert listed[0].load == Load(3, 0.25, 7.5)
    assert listed[1].node.county == "县乙"
    assert listed[0].free == 97


async def test_a_nodes_lessons_and_when_it_was_last_heard_of(backend: Backend) -> None:
    a, other = backend.client(), backend.client()
    await a.register(node("n1"), Load(subscriptions=2, lessons=(12, 7)))
    await backend.advance(INTERVAL)
    assert await a.heartbeat("n1", Load(subscriptions=3, lessons=(7, 12, 30)))
    [state] = await other.nodes()
    assert state.load.lessons == (7, 12, 30)
    assert 0.0 <= other.seen_now() - state.seen < INTERVAL + 1.0


async def test_heartbeat_updates_load_and_keeps_node_alive(backend: Backend) -> None:
    a, other = backend.client(), backend.client()
    await a.register(node("n1"))
    for i in range(5):  # 5 intervals in all, longer than the expiry, heartbeating every interval
        await backend.advance(INTERVAL)
        assert await a.heartbeat("n1", Load(subscriptions=i))
    [state] = await other.nodes()
    assert state.load.subscriptions == 4


async def test_node_expires_after_missed_heartbeats_and_registers_again(backend: Backend) -> None:
    a = backend.client()
    assert a.expiry_s == pytest.approx(3 * INTERVAL)
    await a.register(node("n1"))
    await a.register(node("n2"))
    await backend.advance(INTERVAL * 2)
    assert await a.heartbeat("n2", Load())
    assert [s.node.id for s in await a.nodes()] == ["n1", "n2"]  # two missed: still listed
    await backend.advance(INTERVAL * 1.6)
    assert [s.node.id for s in await a.nodes()] == ["n2"]  # n1 missed three
    assert not await a.heartbeat("n1", Load())  # expired: its heartbeat says so
    await a.register(node("n1"))
    assert [s.node.id for s in await a.nodes()] == ["n1", "n2"]


async def test_deregister(backend: Backend) -> None:
    a = backend.client()
    await a.register(node("n1"))
    await a.deregister("n1")
    assert await a.nodes() == []
    assert not await a.heartbeat("n1", Load())


# leases


async def test_lease_is_exclusive_between_clients(backend: Backend) -> None:
    a, b = backend.client(), backend.client()
    got = await a.acquire_lease("jobs", "node-a", LEASE)
    assert got is not None and got.epoch >= 1 and got.holder == "node-a"
    assert got.valid(backend.now())
    assert await b.acquire_lease("jobs", "node-b", LEASE) is None
    assert await b.lease_holder("jobs") == ("node-a", got.epoch)
    again = await a.acquire_lease("jobs", "node-a", LEASE)  # its own: the same lease, the same epoch
    assert again is not None and again.epoch == got.epoch


async def test_exactly_one_of_many_racing_clients_gets_the_lease(backend: Backend) -> None:
    clients = [backend.client() for _ in range(6)]
    got = await asyncio.gather(*(c.acquire_lease("jobs", f"node-{i}", LEASE) for i, c in enumerate(clients)))
    winners = [lease for lease in got if lease is not None]
    assert len(winners) == 1
    assert await clients[0].lease_holder("jobs") == (winners[0].holder, winners[0].epoch)


async def test_only_the_holder_renews(backend: Backend) -> None:
    a, b = backend.client(), backend.client()
    lease = await a.acquire_lease("jobs", "node-a", LEASE)
    assert lease is not None
    forged = type(lease)(lease.name, "node-b", lease.epoch, lease.ttl_s, lease.deadline)
    assert await b.renew_lease(forged) is None
    assert not await b.release_lease(forged)
    for _ in range(4):  # renewed past several lease times
        await backend.advance(LEASE / 2)
        renewed = await a.renew_lease(lease)
        assert renewed is not None and renewed.epoch == lease.epoch
        assert renewed.deadline > lease.deadline
        lease = renewed
    assert await b.acquire_lease("jobs", "node-b", LEASE) is None
    assert await b.lease_holder("jobs") == ("node-a", lease.epoch)


async def test_lease_lost_on_expiry_then_taken_over_with_higher_epoch(backend: Backend) -> None:
    a, b = backend.client(), backend.client()
    old = await a.acquire_lease("jobs", "node-a", LEASE)
    assert old is not None
    await backend.advance(LEASE * 1.3)  # node-a died: no renewal
    assert not old.valid(backend.now())  # the stale holder knows by its own clock
    assert await b.lease_holder("jobs") is None
    new = await b.acquire_lease("jobs", "node-b", LEASE)
    assert new is not None and new.epoch > old.epoch
    assert await a.renew_lease(old) is None  # the stale holder is told, and cannot take it back
    assert not await a.release_lease(old)
    assert await a.acquire_lease("jobs", "node-a", LEASE) is None
    assert await a.lease_holder("jobs") == ("node-b", new.epoch)


async def test_release_hands_over_at_once(backend: Backend) -> None:
    a, b = backend.client(), backend.client()
    lease = await a.acquire_lease("jobs", "node-a", LEASE)
    assert lease is not None and await a.release_lease(lease)
    taken = await b.acquire_lease("jobs", "node-b", LEASE)
    assert taken is not None and taken.epoch == lease.epoch + 1


async def test_min_epoch_keeps_epochs_rising(backend: Backend) -> None:
    a = backend.client()
    lease = await a.acquire_lease("other", "node-a", LEASE, min_epoch=41)
    assert lease is not None and lease.epoch == 42


async def test_leases_of_different_names_are_independent(backend: Backend) -> None:
    a, b = backend.client(), backend.client()
    assert await a.acquire_lease("jobs", "node-a", LEASE) is not None
    assert await b.acquire_lease("reports", "node-b", LEASE) is not None


# events


async def test_events_reach_every_subscriber_and_none_after_unsubscribe(backend: Backend) -> None:
    a, b, publisher = backend.client(), backend.client(), backend.client()
    s1 = await a.subscribe("lesson.7")
    s2 = await a.subscribe("lesson.7")
    s3 = await b.subscribe("lesson.7")
    elsewhere = await b.subscribe("lesson.8")
    assert await publisher.publish("lesson.7", {"type": "window_open", "lesson": 7, "教室": "一班"}) >= 1
    for sub in (s1, s2, s3):
        assert await sub.get(timeout=2) == {"type": "window_open", "lesson": 7, "教室": "一班"}
    first = await s1.get(timeout=0) if s1.pending() else None
    assert first is None
    s1.close()
    s3.close()
    await publisher.publish("lesson.7", {"n": 2})
    assert await s2.get(timeout=2) == {"n": 2}
    await asyncio.sleep(0.2)
    assert s3.pending() == 0 and elsewhere.pending() == 0
    with pytest.raises(RuntimeError):
        await s1.get(timeout=0.1)


async def test_subscriber_gets_its_own_copy(backend: Backend) -> None:
    a = backend.client()
    s1, s2 = await a.subscribe("c"), await a.subscribe("c")
    await a.publish("c", {"list": [1]})
    m1, m2 = await s1.get(timeout=2), await s2.get(timeout=2)
    m1["list"].append(2)
    assert m2 == {"list": [1]}


async def test_publish_without_subscribers_reaches_nobody(backend: Backend) -> None:
    a = backend.client()
    sub = await a.subscribe("c")
    sub.close()
    await asyncio.sleep(0.2)  # Redis: the unsubscribe is done by the listener
    assert await a.publish("c", {"x": 1}) == 0
    with pytest.raises(TypeError):
        await a.publish("c", ["not", "an", "object"])  # type: ignore[arg-type]


async def test_async_iteration_and_context(backend: Backend) -> None:
    a = backend.client()
    got: list[dict[str, Any]] = []
    async with await a.subscribe("c") as sub:
        for i in range(3):
            await a.publish("c", {"i": i})
        async for message in sub:
            got.append(message)
            if len(got) == 3:
                break
    assert [m["i"] for m in got] == [0, 1, 2]
    assert sub.closed


# Redis going away and coming back


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except RegistryUnavailable:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("not within the time")


async def test_redis_outage_raises_promptly_and_recovers(redis_server: RedisProcess) -> None:
    a = RedisRegistry(redis_server.url, heartbeat_interval=INTERVAL, op_timeout=1.0, max_backoff_s=0.3)
    b = RedisRegistry(redis_server.url, heartbeat_interval=INTERVAL, op_timeout=1.0, max_backoff_s=0.3)
    try:
        await a.register(node("n1"))
        lease = await a.acquire_lease("jobs", "node-a", 5.0)
        assert lease is not None
        sub = await b.subscribe("lesson.7")
        assert await a.publish("lesson.7", {"before": True}) == 1
        assert await sub.get(timeout=2) == {"before": True}

        redis_server.stop()
        operations: list[Callable[[], Awaitable[object]]] = [
            a.nodes, lambda: a.register(node("n2")), lambda: a.heartbeat("n1", Load()),
            lambda: a.publish("lesson.7", {"during": True}), lambda: b.subscribe("other"),
            lambda: a.renew_lease(lease), lambda: b.acquire_lease("jobs", "node-b", 5.0),
            lambda: a.lease_holder("jobs"), lambda: a.deregister("n1"),
        ]
        for operation in operations:
            started = time.monotonic()
            with pytest.raises(RegistryUnavailable, match=f"127.0.0.1:{redis_server.port}"):
                await operation()
            assert time.monotonic() - started < 2.5  # never hangs: op_timeout, a refused connection at once
        assert not sub.closed

        redis_server.start()  # the same port, empty (no persistence)
        await _until(lambda: _reachable(a))
        assert not await a.heartbeat("n1", Load())  # Redis forgot it: the node registers again
        await a.register(node("n1"))
        assert [s.node.id for s in await b.nodes()] == ["n1"]
        # the old holder passes the highest epoch it saw: the takeover's epoch still rises
        again = await b.acquire_lease("jobs", "node-b", 5.0, min_epoch=lease.epoch)
        assert again is not None and again.epoch > lease.epoch
        # the subscriber subscribed again by itself
        await _until(lambda: _published(a, "lesson.7", {"after": True}))
        assert await sub.get(timeout=2) == {"after": True}
    finally:
        await a.close()
        await b.close()


async def _reachable(registry: RedisRegistry) -> bool:
    await registry.lease_holder("jobs")
    return True


async def _published(registry: RedisRegistry, channel: str, message: dict[str, Any]) -> bool:
    return await registry.publish(channel, message) > 0


async def test_redis_not_running_at_start(tmp_path: Any) -> None:
    from tests.conftest import free_port

    registry = RedisRegistry(f"redis://127.0.0.1:{free_port()}/0", op_timeout=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            await registry.nodes()
        with pytest.raises(RegistryUnavailable):
            await registry.subscribe("c")
        assert time.monotonic() - started < 3
    finally:
        await registry.close()


async def test_a_redis_that_refuses_the_node_says_so_and_the_right_password_works(tmp_path: Any) -> None:
    """A Redis other hosts reach has a password; a node with none or a wrong one is told it was refused
    (not a crash, not "cannot be reached"), and keeps retrying like in an outage."""
    from tests.conftest import free_port

    server = RedisProcess(free_port(), tmp_path / "redis", password="s3cret-for-the-test")
    server.start()
    try:
        for url in (f"redis://127.0.0.1:{server.port}/0", f"redis://:wrong@127.0.0.1:{server.port}/0"):
            registry = RedisRegistry(url, op_timeout=1.0, max_backoff_s=0.3)
            try:
                with pytest.raises(RegistryUnavailable, match="refused this node") as refused:
                    await registry.register(node("n1"))
                assert "redis://:PASSWORD@" in str(refused.value)
                with pytest.raises(RegistryUnavailable, match="refused this node"):
                    await registry.subscribe("lesson.7")
            finally:
                await registry.close()
        good = RedisRegistry(server.url, op_timeout=1.0)
        try:
            await good.register(node("n1"))
            assert [s.node.id for s in await good.nodes()] == ["n1"]
        finally:
            await good.close()
    finally:
        server.stop()
