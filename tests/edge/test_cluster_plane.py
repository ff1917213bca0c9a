"""The control node's cluster plane without media: who is placed where, and the fall-backs to this node
(an edge that cannot be reached, a lead, a classroom of unknown place, a registry that is down); and the
load an edge heartbeats, read off its plane's stats."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from edge.cluster_plane import ClusterMediaPlane
from edge.control_client import link_mismatch
from edge.load import LoadSampler
from edge.placement import ClassroomLocation
from edge.registry import InProcessRegistry, Load, Node, RegistryUnavailable
from media.api import EventKind, MediaError, MediaEvent, ParticipantRole
from media.event_hub import EventHub
from media.workers import LoopLag
from tests.conftest import free_port

WHERE = ClassroomLocation("中宁县", "宁夏")


class FakeOrigin:
    """This node's plane, recording the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.hub = EventHub()

    async def start(self) -> None: ...
    async def stop(self) -> None:
        self.hub.close()

    async def open_room(self, room_id: str, recording: Any = None, fast_start: bool = False) -> None:
        self.calls.append(("open_room", (room_id,)))

    async def close_room(self, room_id: str) -> None:
        self.calls.append(("close_room", (room_id,)))

    async def join(self, room_id: str, participant_id: str, role: ParticipantRole, offer_sdp: str,
                   tracks: Mapping[str, Any] | None = None, slots: Mapping[str, Any] | None = None) -> str:
        self.calls.append(("join", (room_id, participant_id)))
        return "answer-here"

    async def leave(self, room_id: str, participant_id: str) -> None:
        self.calls.append(("leave", (room_id, participant_id)))

    async def add_candidate(self, room_id: str, participant_id: str, candidate: Mapping[str, Any]) -> None:
        self.calls.append(("add_candidate", (room_id, participant_id)))

    async def set_talkback(self, room_id: str, participant_id: str | None, to_all: bool = False) -> None: ...
    async def start_replay(self, room_id: str, camera: str, screen: str | None = None,
                           offset_s: float = 0.0) -> None: ...
    async def stop_replay(self, room_id: str) -> None: ...

    async def stats(self, room_id: str | None = None) -> dict[str, Any]:
        return {"participants": {}}

    def events(self) -> AsyncIterator[MediaEvent]:
        return self.hub.subscribe()

    async def relay_origin(self, room_id: str, link_id: str, key: bytes, peer: tuple[str, int]) -> tuple[str, int]:
        self.calls.append(("relay_origin", (room_id,)))
        return ("127.0.0.1", 9)

    async def relay_drop(self, room_id: str, link_id: str) -> None: ...


class DownRegistry(InProcessRegistry):
    async def nodes(self) -> list[Any]:
        raise RegistryUnavailable("redis is down")


async def plane_with_edge(registry: InProcessRegistry) -> tuple[ClusterMediaPlane, FakeOrigin]:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    await registry.register(Node("edge-zn", "宁夏", "中宁县", dead, 100, role="edge"), Load())
    await registry.register(Node("control-1", "", "", "http://127.0.0.1:1", 600), Load())
    origin = FakeOrigin()
    plane = ClusterMediaPlane(origin, registry, "control-1", "s" * 24,  # type: ignore[arg-type]
                              lambda pid: WHERE if pid.startswith("classroom-") else None)
    await plane.start()
    return plane, origin


async def test_a_classroom_placed_on_an_edge_that_cannot_be_reached_joins_this_node(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "edge.cluster_plane")
    plane, origin = await plane_with_edge(InProcessRegistry())
    try:
        answer = await plane.join("r", "classroom-3", ParticipantRole.RECEIVER, "offer")
        assert answer == "answer-here" and ("join", ("r", "classroom-3")) in origin.calls
        assert plane.where("r", "classroom-3") is None
        [choice] = plane.placements
        assert choice["node"] == "edge-zn" and choice["tier"] == "county" and "中宁县" in choice["reason"]
        assert "placement of classroom-3" in caplog.text and "could not take classroom-3" in caplog.text
        await plane.add_candidate("r", "classroom-3", {"candidate": ""})
        await plane.leave("r", "classroom-3")
        assert [c[0] for c in origin.calls[-2:]] == ["add_candidate", "leave"]
    finally:
        await plane.stop()


async def test_leads_observers_and_classrooms_of_no_known_place_are_not_placed() -> None:
    plane, origin = await plane_with_edge(InProcessRegistry())
    try:
        await plane.join("r", "lead-1", ParticipantRole.LEAD, "offer")
        await plane.join("r", "observer-x", ParticipantRole.OBSERVER, "offer")
        await plane.join("r", "guest", ParticipantRole.RECEIVER, "offer")
        assert [c for c in origin.calls if c[0] == "join"] == [("join", ("r", p)) for p in ("lead-1", "observer-x",
                                                                                              "guest")]
        assert plane.placements == []
    finally:
        await plane.stop()


async def test_with_the_registry_down_a_classroom_joins_this_node(caplog: pytest.LogCaptureFixture) -> None:
    origin = FakeOrigin()
    plane = ClusterMediaPlane(origin, DownRegistry(), "control-1", "s" * 24,  # type: ignore[arg-type]
                              lambda _pid: WHERE)
    await plane.start()
    try:
        assert await plane.join("r", "classroom-3", ParticipantRole.RECEIVER, "offer") == "answer-here"
        assert "redis is down" in caplog.text
    finally:
        await plane.stop()


def test_an_edges_load_counts_its_classrooms_its_egress_and_its_own_cpu() -> None:
    def stats(sent: int) -> dict[str, Any]:
        slot = {"bytes_sent": sent}
        return {"rooms": {"lesson-12": {"participants": {
            "lead": {"role": "lead", "slots": {}},
            "classroom-1": {"role": "receiver", "slots": {"0": slot}},
            "observer-1": {"role": "observer", "slots": {"0": {"bytes_sent": 0}}}}}},
            "workers": [{"cpu_seconds": 10.0}]}

    sampler = LoadSampler(cores=2)
    first = sampler.sample(stats(0), now=100.0)
    assert first.subscriptions == 2 and first.egress_mbps == 0.0
    later = sampler.sample(stats(2_500_000), now=110.0)  # 2.5 MB in 10 s
    assert later.egress_mbps == 2.0 and 0.0 <= later.cpu <= 1.0
    assert later.lessons == (12,)  # the lesson whose copy it carries, for the technicians' nodes tab


async def test_an_edge_whose_loop_is_held_up_heartbeats_the_lag_of_its_own_loop_or_its_workers() -> None:
    lag = LoopLag(interval=0.05)
    lag.start()
    try:
        sampler = LoadSampler(cores=2, lag=lag)
        await asyncio.sleep(0.2)
        quiet = sampler.sample({"rooms": {}, "workers": [{"loop_lag_s": 0.002}]})
        assert quiet.loop_lag_ms < 100.0, quiet
        time.sleep(0.4)  # the edge's own loop held up, as by a burst of DTLS handshakes
        await asyncio.sleep(0.1)
        held = sampler.sample({"rooms": {}, "workers": []})
        assert held.loop_lag_ms >= 300.0, held
        # a worker process's loop that runs later than the edge's own is what the edge reports
        assert sampler.sample({"rooms": {}, "workers": [{"loop_lag_s": 2.5}]}).loop_lag_ms == 2500.0
    finally:
        lag.stop()


async def test_an_upstream_that_loops_is_lost_or_is_not_an_edge_is_passed_over(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = InProcessRegistry()
    for node in (Node("edge-a", "宁夏", "中宁县", "http://127.0.0.1:1", 100, role="edge", upstream="edge-b"),
                 Node("edge-b", "宁夏", "", "http://127.0.0.1:2", 100, role="edge", upstream="edge-a"),
                 Node("edge-c", "宁夏", "沙坡头区", "http://127.0.0.1:3", 100, role="edge", upstream="control-2"),
                 Node("control-2", "", "", "http://127.0.0.1:4", 600)):
        await registry.register(node, Load())
    plane = ClusterMediaPlane(FakeOrigin(), registry, "control-1", "s" * 24,  # type: ignore[arg-type]
                              lambda _pid: WHERE)
    nodes = {n.node.id: n for n in await registry.nodes()}
    plane._nodes = nodes
    up = plane._upstream_of(nodes["edge-a"], ("edge-a",))
    assert up is not None and up.node.id == "edge-b"
    assert plane._upstream_of(nodes["edge-b"], ("edge-a", "edge-b")) is None  # back to edge-a: a loop
    assert "in a loop or too deep" in caplog.text
    assert plane._upstream_of(nodes["edge-c"], ("edge-c",)) is None  # an origin is not an upstream edge
    plane._lost.add("edge-b")
    assert plane._upstream_of(nodes["edge-a"], ("edge-a",)) is None
    assert "its upstream edge-b is lost" in caplog.text


async def test_a_silent_link_to_an_edge_drops_its_copy_and_keeps_the_room_off_that_edge_for_a_while(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = InProcessRegistry()
    plane, origin = await plane_with_edge(registry)
    events = plane.events()
    try:
        # as if classroom-3 played on edge-zn over link L1, and the origin's end of L1 then went silent
        plane._copies["r"] = {"edge-zn": "L1"}
        plane._parents[("r", "edge-zn")] = None
        plane._where[("r", "classroom-3")] = "edge-zn"
        origin.hub.publish(MediaEvent(EventKind.LINK_DOWN, "r", None, None, 0.0,
                                      {"link_id": "L1", "end": "origin", "silent_s": 3.0}))
        told = None
        async for event in events:
            if event.kind == EventKind.SUBSCRIBER_DOWN:
                told = event
                break
        assert told is not None and told.participant_id == "classroom-3" and told.detail["reason"] == "node_lost"
        assert "relay link to edge edge-zn is silent" in caplog.text
        assert plane.where("r", "classroom-3") is None and "r" not in plane._copies
        # its rejoin is not placed on edge-zn again (the origin takes it); another room may still go there
        await plane.join("r", "classroom-3", ParticipantRole.RECEIVER, "offer")
        assert plane.placements[-1]["node"] != "edge-zn"
        await plane.join("r2", "classroom-4", ParticipantRole.RECEIVER, "offer")
        assert plane.placements[-1]["node"] == "edge-zn"
    finally:
        await plane.stop()


async def test_a_burst_of_joins_spreads_over_the_edges_before_their_heartbeats_carry_it() -> None:
    """A lesson's classrooms all come in at its start, faster than edges heartbeat: each one placed counts
    on its edge's load at once, so they alternate instead of all going to the edge that was least loaded."""
    registry = InProcessRegistry()
    for name in ("edge-a", "edge-b"):
        await registry.register(Node(name, "宁夏", name, f"http://127.0.0.1:{free_port()}", 100, role="edge"), Load())
    origin = FakeOrigin()
    plane = ClusterMediaPlane(origin, registry, "control-1", "s" * 24,  # type: ignore[arg-type]
                              lambda pid: WHERE, heartbeat_s=1.0)
    await plane.start()
    try:
        chosen = [(await plane._placed_edge("r", f"classroom-{i}")).node.id for i in range(6)]  # type: ignore[union-attr]
        assert chosen.count("edge-a") == 3 and chosen.count("edge-b") == 3, chosen
        assert "98 of 100 subscriptions free" in plane.placements[-1]["reason"]  # 2 placed there before
        # once the pending ones are old enough to be in the heartbeats, only the heartbeats count
        assert plane.pending_s == pytest.approx(5.0)
        assert plane._pending_counts(time.monotonic() + plane.pending_s) == {}
    finally:
        await plane.stop()


class StubEdge:
    """An edge's control API that answers, its copy's link end on the edge's LAN address."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def close_copy(self, room_id: str, lost: bool = False) -> None:
        self.calls.append("close_copy")

    async def relay_copy(self, room_id: str, link_id: str, key: bytes) -> tuple[str, int]:
        self.calls.append("relay_copy")
        return ("10.77.0.2", 40000)

    async def relay_connect(self, room_id: str, link_id: str, peer: tuple[str, int]) -> None:
        self.calls.append("relay_connect")


async def test_a_relay_link_with_one_end_on_loopback_is_refused_with_the_setting_to_fix() -> None:
    """This node left at relay_address 127.0.0.1, an edge on another host: the link could never carry a
    packet, so the copy is not made (the classroom joins this node) and the reason names the setting."""
    registry = InProcessRegistry()
    await registry.register(Node("edge-zn", "宁夏", "中宁县", "http://10.77.0.2:8090", 100, role="edge"), Load())
    origin = FakeOrigin()  # its relay_origin answers 127.0.0.1
    plane = ClusterMediaPlane(origin, registry, "control-1", "s" * 24,  # type: ignore[arg-type]
                              lambda pid: WHERE)
    edge = StubEdge()
    plane._client = lambda state: edge  # type: ignore[assignment,method-assign,return-value]
    try:
        [state] = await registry.nodes()
        with pytest.raises(MediaError, match="relay_address"):
            await plane._ensure_copy("r", state)
        assert "relay_connect" not in edge.calls and edge.calls[-1] == "close_copy"
        assert not plane._copies.get("r")
    finally:
        await plane.stop()


def test_link_ends_on_loopback_and_off_it_do_not_match() -> None:
    assert link_mismatch("127.0.0.1", "10.0.0.2") and link_mismatch("10.0.0.2", "::1")
    assert not link_mismatch("127.0.0.1", "127.0.0.1") and not link_mismatch("10.0.0.1", "10.0.0.2")
    assert not link_mismatch("localhost", "127.0.0.1") and link_mismatch("localhost", "edge.example")


async def test_a_rooms_stats_read_while_an_edge_is_lost_and_its_copy_dropped_do_not_fail() -> None:
    """The technician's view reads each edge's stats in turn; an edge lost meanwhile drops its copy (another
    edge takes the room over). The read carries on with the copies it started with (found by CI: the
    iteration over the room's copies broke, and the lesson's stats loop logged an error)."""
    registry = InProcessRegistry()
    plane, _origin = await plane_with_edge(registry)

    class DroppingEdge:
        async def stats(self, room_id: str | None = None) -> dict[str, Any]:
            plane._copies["r"].pop("edge-b", None)  # as the lost edge's stream ending does, mid-read
            return {"participants": {"classroom-3": {"role": "receiver"}}}

        async def close_copy(self, room_id: str, lost: bool = False) -> None: ...
        async def close(self) -> None: ...

    try:
        plane._copies["r"] = {"edge-a": "L1", "edge-b": "L2"}
        plane._where[("r", "classroom-3")] = "edge-a"
        plane._clients["edge-a"] = DroppingEdge()  # type: ignore[assignment]
        snapshot = await plane.stats("r")
        assert [e["node"] for e in snapshot["edges"]] == ["edge-a", "edge-b"]
        assert snapshot["participants"]["classroom-3"]["node"] == "edge-a"
    finally:
        await plane.stop()
