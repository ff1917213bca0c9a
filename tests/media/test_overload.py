"""Overload protection: joins beyond capacity are refused, join bursts do not take the publisher down."""

from __future__ import annotations

import asyncio
import socket
import time

import aioice.ice
import pytest
from aioice import Connection, stun
from media_clients import Publisher, Subscriber

from media.api import EventKind, MediaError, ParticipantRole
from media.config import CAPACITY_REASON, MediaCapacityError, MediaConfig
from media.forwarding import InboundTrack, Wire
from media.ice import READ_BATCH, bound_queue, gather_host_candidates
from media.local import LocalMediaPlane
from media.nack_tracker import NackTracker
from media.workers import WorkerMediaPlane

PORTS = {"udp_port_min": 47000, "udp_port_max": 47999}


async def test_joins_beyond_capacity_are_refused_with_the_reason_and_the_admitted_keep_receiving():
    plane = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), max_subscriptions_per_worker=2, **PORTS))
    await plane.start()
    await plane.open_room("lesson")
    subs: list[Subscriber] = []
    try:
        pub = await Publisher.connect(plane, "lesson", "lead")  # the lead never counts against capacity
        subs.append(await Subscriber.connect(plane, "lesson", "class-1", audio_slots=0))
        subs.append(await Subscriber.connect(plane, "lesson", "class-2", audio_slots=0))
        with pytest.raises(MediaCapacityError) as refused:
            subs.append(await Subscriber.connect(plane, "lesson", "class-3", audio_slots=0))
        assert str(refused.value).startswith(CAPACITY_REASON)
        assert refused.value.code == "media_capacity" and isinstance(refused.value, MediaError)
        stats = await plane.stats()
        assert stats["refused_joins"] == 1 and stats["subscriptions"] == 2 and stats["capacity"] == 2
        assert stats["rooms"]["lesson"]["refused_joins"] == 1
        assert "class-3" not in stats["rooms"]["lesson"]["participants"]

        for sub in subs:
            await sub.wait_frames(len(sub.frames) + 15)  # the admitted ones keep receiving

        # A reconnect of an admitted classroom replaces its own subscription: not refused at capacity.
        again = await Subscriber.connect(plane, "lesson", "class-1", audio_slots=0)
        await subs[0].close()
        subs[0] = again
        await again.wait_frames(10)
        assert (await plane.stats())["refused_joins"] == 1

        # A freed subscription admits the next classroom.
        await plane.leave("lesson", "class-2")
        await subs[1].close()
        subs[1] = await Subscriber.connect(plane, "lesson", "class-3", audio_slots=0)
        await subs[1].wait_frames(10)
        await pub.close()
    finally:
        for sub in subs:
            await sub.close()
        await plane.stop()


async def test_a_concurrent_join_burst_cannot_overshoot_the_capacity():
    plane = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), max_subscriptions_per_worker=3, **PORTS))
    await plane.start()
    await plane.open_room("lesson")
    try:
        results = await asyncio.gather(
            *(Subscriber.connect(plane, "lesson", f"class-{i}", audio_slots=0) for i in range(6)),
            return_exceptions=True,
        )
        admitted = [r for r in results if isinstance(r, Subscriber)]
        refused = [r for r in results if isinstance(r, MediaCapacityError)]
        assert len(admitted) == 3 and len(refused) == 3, results
        assert (await plane.stats())["refused_joins"] == 3
        for sub in admitted:
            await sub.close()
    finally:
        await plane.stop()


async def test_a_worker_answer_with_a_capacity_code_raises_media_capacity_error():
    plane = WorkerMediaPlane(MediaConfig())
    loop = asyncio.get_running_loop()

    class FakeWorker:
        def __init__(self) -> None:
            self.pending = {1: loop.create_future(), 2: loop.create_future()}

    worker = FakeWorker()
    capacity, other = worker.pending[1], worker.pending[2]
    plane._handle(worker, ("result", 1, False, f"{CAPACITY_REASON}: full", "media_capacity"))  # type: ignore[arg-type]
    plane._handle(worker, ("result", 2, False, "no open room 'x'", None))  # type: ignore[arg-type]
    with pytest.raises(MediaCapacityError, match=CAPACITY_REASON):
        capacity.result()
    with pytest.raises(MediaError) as exc:
        other.result()
    assert not isinstance(exc.value, MediaCapacityError)


async def test_stun_behind_a_backlog_of_media_is_answered_at_the_next_read():
    connection = Connection(ice_controlling=True)
    await gather_host_candidates(connection, ["127.0.0.1"], 47000, 47999)
    port = connection._protocols[0].local_candidate.port
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    try:
        backlog = READ_BATCH - 10
        for _ in range(backlog):
            client.sendto(b"\x80\x60" + bytes(200), ("127.0.0.1", port))  # RTP-like, not STUN
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        client.sendto(bytes(request), ("127.0.0.1", port))  # unauthenticated: answered 400 at once
        answer = None
        for _ in range(5):  # asyncio alone would need one loop iteration per queued datagram
            await asyncio.sleep(0)
            try:
                answer = stun.parse_message(client.recv(2048))
                break
            except BlockingIOError:
                continue
        assert answer is not None and answer.transaction_id == request.transaction_id
        assert connection._queue.qsize() == backlog  # the media went on to aioice's queue, in order
    finally:
        client.close()
        await connection.close()


def test_the_queue_of_one_connection_is_bounded():
    async def run() -> None:
        connection = Connection(ice_controlling=True)
        bound_queue(connection, limit=10)
        for i in range(25):
            connection.data_received(bytes([i]), 1)
        assert connection._queue.qsize() == 10
        assert connection.dropped_datagrams == 15  # type: ignore[attr-defined]

    asyncio.run(run())


async def test_a_join_burst_does_not_take_the_publisher_down(monkeypatch):
    # Consent checks every ~0.3 s instead of ~5 s: the ~30 s it takes a lagging server to lose its
    # publisher in production become a few seconds here.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.3)
    plane = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), **PORTS))
    await plane.start()
    await plane.open_room("lesson")
    events: list = []

    async def collect() -> None:
        async for e in plane.events():
            events.append(e)

    collector = asyncio.ensure_future(collect())
    subs: list[Subscriber] = []
    states: list[str] = []
    try:
        pub = await Publisher.connect(plane, "lesson", "lead")
        pub.pc.on("connectionstatechange", lambda: states.append(pub.pc.connectionState))
        first = await Subscriber.connect(plane, "lesson", "class-0", audio_slots=0)
        subs.append(first)
        await first.wait_frames(10)
        burst = await asyncio.gather(
            *(Subscriber.connect(plane, "lesson", f"class-{i}", audio_slots=0) for i in range(1, 13))
        )
        subs.extend(burst)
        deadline = time.monotonic() + 20
        for sub in subs:
            await sub.wait_frames(10, timeout=max(1.0, deadline - time.monotonic()))
        await asyncio.sleep(2.5)  # several more consent rounds after the burst
        before = len(first.frames)
        await first.wait_frames(before + 20)
        assert pub.pc.connectionState == "connected" and "failed" not in states and "closed" not in states
        down = [e for e in events if e.kind in (EventKind.PUBLISHER_DOWN, EventKind.SUBSCRIBER_DOWN)]
        assert not down, down
        stats = await plane.stats("lesson")
        assert stats["lead_on_air"] is True
        assert stats["participants"]["lead"]["role"] == str(ParticipantRole.LEAD)
        await pub.close()
    finally:
        for sub in subs:
            await sub.close()
        await plane.stop()
        collector.cancel()


def test_the_keyframe_request_interval_grows_with_what_a_keyframe_costs():
    track = InboundTrack(
        participant_id="lead", kind="camera", media_kind="video", mid="0", codecs={}, rtx_apt={}, ssrc=1,
        rtx_ssrc=None, wire=Wire(), rtcp_ssrc=2, fir_only=False, history_size=16, keyframe_interval=0.2,
        nack=NackTracker(256, 4, 0.03), emit=lambda *a: None, keyframe_max_interval=1.0, keyframe_cpu_budget=0.25,
    )
    assert track.keyframe_interval_now() == 0.2  # nothing measured yet
    track.keyframe_packets = 40
    track.fanout_cost = 100 * 5e-6  # 100 subscribers at 5 us: 20 ms per keyframe, 8 % of a core at 0.2 s
    assert track.keyframe_interval_now() == 0.2
    track.fanout_cost = 300 * 5e-6  # 60 ms per keyframe: one per 0.24 s stays within a quarter of a core
    assert track.keyframe_interval_now() == pytest.approx(0.24)
    track.fanout_cost = 2000 * 5e-6
    assert track.keyframe_interval_now() == 1.0  # capped
