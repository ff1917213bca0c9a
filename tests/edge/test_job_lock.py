"""The job lock's keeper on a fake clock: gains, renews, loses by its own deadline when the registry is cut
off, hands over; the jobs act only while it holds the lock; this node's presence and load."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.joblock import JobLock, holder_name, next_step, pause
from edge.presence import NodePresence, node_load
from edge.registry import InProcessRegistry, Lease, Load, Node, RegistryUnavailable
from monitoring.alerts import ProcessHealth
from monitoring.metrics import RoomGauges
from scheduler.jobs import LessonJobs
from tests.edge.test_registry_contract import FakeClock


class Flaky(InProcessRegistry):
    """The in-process registry with a switch that makes every lease and node call fail as Redis down would."""

    down: bool = False

    async def _check(self) -> None:
        if self.down:
            raise RegistryUnavailable("Redis at 127.0.0.1:1 cannot be reached (test)")

    async def acquire_lease(self, *args: Any, **kw: Any) -> Lease | None:
        await self._check()
        return await super().acquire_lease(*args, **kw)

    async def renew_lease(self, lease: Lease) -> Lease | None:
        await self._check()
        return await super().renew_lease(lease)

    async def heartbeat(self, node_id: str, load: Load) -> bool:
        await self._check()
        return await super().heartbeat(node_id, load)

    async def register(self, node: Node, load: Load | None = None) -> Any:
        await self._check()
        return await super().register(node, load)


def test_next_step() -> None:
    lease = Lease("jobs", "a", 1, 9.0, deadline=10.0)
    assert next_step(None, 0.0).action == "acquire"
    step = next_step(lease, 5.0)
    assert (step.action, step.lost) == ("renew", False)
    step = next_step(lease, 10.0)
    assert (step.action, step.lost) == ("acquire", True)
    assert (pause(True, 9.0), pause(False, 9.0)) == (3.0, 1.5)


def test_holder_names_differ_per_process_and_carry_no_colon() -> None:
    a, b = holder_name("host:8080"), holder_name("host:8080")
    assert a != b and ":" not in a and a.startswith("host_8080/")


async def test_one_holder_then_takeover_with_higher_epoch_and_callbacks() -> None:
    clock = FakeClock()
    registry = InProcessRegistry(clock=clock)
    events: list[str] = []
    a = JobLock(registry, "a", lease_s=9.0, on_gained=lambda lease: events.append(f"a+{lease.epoch}"),
                on_lost=lambda why: events.append("a-"))
    b = JobLock(registry, "b", lease_s=9.0, on_gained=lambda lease: events.append(f"b+{lease.epoch}"))
    assert await a.step() == 3.0 and a.held and a.epoch == 1
    assert await b.step() == 1.5 and not b.held and b.highest_epoch == 1
    for _ in range(5):  # a renews every 3 s, b keeps trying
        clock.now += 3.0
        await a.step()
        await b.step()
    assert a.held and not b.held and events == ["a+1"]
    clock.now += 9.0  # a is gone (no renewal)
    await b.step()
    assert b.held and b.epoch == 2 and not a.held
    await a.step()  # a comes back: told it lost, cannot take it back
    assert events == ["a+1", "b+2", "a-"] and not a.held
    assert a.describe() == {"name": "scheduler-jobs", "holder": "a", "held": False, "epoch": None, "lease_s": 9.0}


async def test_cut_off_holder_stops_at_its_own_deadline_before_another_can_take_over() -> None:
    clock = FakeClock()
    registry = Flaky(clock=clock)
    lost: list[str] = []
    a = JobLock(registry, "a", lease_s=9.0, on_lost=lost.append)
    await a.step()
    registry.down = True
    clock.now += 3.0
    await a.step()  # the renewal fails: still its lease until the deadline
    assert a.held
    clock.now += 6.0
    assert not a.held  # by its own clock, at the deadline
    await a.step()
    assert lost == ["its lease ran out before it could be renewed"]
    registry.down = False
    await a.step()
    assert a.held and a.epoch == 2  # it took it again, as a new holding


async def test_stop_releases_for_another_at_once() -> None:
    clock = FakeClock()
    registry = InProcessRegistry(clock=clock)
    a, b = JobLock(registry, "a", lease_s=9.0), JobLock(registry, "b", lease_s=9.0)
    await a.step()
    a.start()
    await a.stop()
    await b.step()
    assert b.held and not a.held
    with pytest.raises(ValueError):
        JobLock(registry, "c", lease_s=0)


class _Timetable:
    """Just enough of a timetable for the gate: any use of it means a job acted."""

    def __init__(self) -> None:
        self.used = 0

    def __getattr__(self, name: str) -> Any:
        self.used += 1
        raise AssertionError(f"a job acted while this node does not hold the lock ({name})")


def test_jobs_do_nothing_without_the_lock(tmp_path: Path) -> None:
    timetable = _Timetable()
    jobs = LessonJobs(timetable, tmp_path, clock=lambda: datetime(2026, 9, 1, tzinfo=UTC))  # type: ignore[arg-type]
    jobs.may_run = lambda: False
    jobs.plan()
    jobs.watch()
    jobs.open(1)
    jobs.close(1)
    assert jobs.weekly_report() == []
    assert timetable.used == 0


def test_node_load_from_gauges_and_processes() -> None:
    rooms = [RoomGauges("master", subscriptions={"receiver": 3, "lead": 1}, bitrate_out=4_000_000.0),
             RoomGauges("specialised", subscriptions={"receiver": 2}, bitrate_out=1_500_000.0)]
    processes = [ProcessHealth("control", 50.0, 1.0), ProcessHealth("worker 7", 100.0, 2.0),
                 ProcessHealth("worker 8", None, None)]
    # the loop lag is the worst process's: a node is as late as its slowest loop
    assert node_load(rooms, processes, cores=4) == Load(subscriptions=6, cpu=0.375, egress_mbps=5.5, loop_lag_ms=2.0)
    assert node_load([], [ProcessHealth("control", 900.0, 0.0)], cores=2).cpu == 1.0


async def test_presence_registers_again_after_expiry_or_an_outage() -> None:
    clock = FakeClock()
    registry = Flaky(heartbeat_interval=1.0, clock=clock)
    node = Node("n1", "region-1", "county-a", "http://n1", 10)
    loads = iter(Load(subscriptions=i) for i in range(100))
    presence = NodePresence(registry, node, lambda: next(loads))
    await presence.beat()
    assert [s.load.subscriptions for s in await registry.nodes()] == [0]
    registry.down = True
    await presence.beat()  # logged once, never raised
    clock.now += 5.0
    registry.down = False
    assert await registry.nodes() == []  # expired meanwhile
    await presence.beat()
    assert [s.node.id for s in await registry.nodes()] == ["n1"]
    await presence.stop()
    assert await registry.nodes() == []
