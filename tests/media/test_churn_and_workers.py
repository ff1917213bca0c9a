"""Resources come back when classrooms come and go; a dead worker loses only its own rooms."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time

import pytest
from aiortc import RTCPeerConnection
from media_clients import CLIENT_PORTS, Publisher, Subscriber

from media.api import EventKind, MediaError, ParticipantRole
from media.config import MediaConfig
from media.ice import control_host_candidates
from media.local import LocalMediaPlane
from media.workers import WorkerMediaPlane


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def subscriber_offer() -> str:
    pc = RTCPeerConnection()
    for kind in ("video", "video", "video", "audio", "audio"):
        pc.addTransceiver(kind, direction="recvonly")
    control_host_candidates(pc, ["127.0.0.1"], *CLIENT_PORTS)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def churn(plane: LocalMediaPlane, offer: str, cycles: int) -> None:
    for i in range(cycles):
        await plane.join("lesson", f"class-{i % 7}", ParticipantRole.RECEIVER, offer)
        await plane.leave("lesson", f"class-{i % 7}")


async def run_churn(cycles: int) -> None:
    plane = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=43000, udp_port_max=43999))
    await plane.start()
    await plane.open_room("lesson")
    offer = await subscriber_offer()
    await churn(plane, offer, 100)  # warm up caches and allocator pools
    gc.collect()
    await asyncio.sleep(0.2)
    before = rss_kib()
    await churn(plane, offer, cycles)
    gc.collect()
    await asyncio.sleep(0.2)
    after = rss_kib()
    room = plane.rooms["lesson"]
    assert not room.participants and not room.sources
    await plane.stop()
    assert after - before < 4 * 1024, f"RSS grew by {after - before} KiB over {cycles} join/leave cycles"


async def test_a_thousand_join_leave_cycles_end_with_the_memory_they_started_with():
    await run_churn(1000)


async def test_a_vanished_subscriber_is_freed_within_seconds():
    plane = LocalMediaPlane(
        MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=43000, udp_port_max=43999, peer_timeout=2.0)
    )
    await plane.start()
    await plane.open_room("lesson")
    pub = await Publisher.connect(plane, "lesson", "lead")
    sub = await Subscriber.connect(plane, "lesson", "class-1", audio_slots=0)
    await sub.wait_frames(10)
    # Gone without a goodbye: its transport stops dead, no DTLS close, no RTCP.
    sub.pc.getTransceivers()[0].receiver.transport.transport._connection._nominated.clear()
    for t in sub.tasks:
        t.cancel()
    for transceiver in sub.pc.getTransceivers():
        transceiver.receiver.transport._rtp_router.receivers.clear()
    dtls = sub.pc.getTransceivers()[0].receiver.transport
    dtls._handle_rtcp_data = dtls._handle_rtp_data = _swallow
    for t in sub.pc.getTransceivers():
        t.receiver._RTCRtpReceiver__rtcp_task.cancel()
    deadline = time.monotonic() + 10
    while "class-1" in plane.rooms["lesson"].participants and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert "class-1" not in plane.rooms["lesson"].participants
    assert (await plane.stats("lesson"))["participants"]["lead"]["published"]["camera"]["subscribers"] == 0
    await sub.close()
    await pub.close()
    await plane.stop()


async def _swallow(*args: object, **kwargs: object) -> None:
    return None


async def test_a_killed_worker_reports_its_rooms_lost_and_others_carry_on():
    plane = WorkerMediaPlane(
        MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=44000, udp_port_max=44999, workers=2)
    )
    await plane.start()
    events: list = []

    async def collect() -> None:
        async for e in plane.events():
            events.append(e)

    collector = asyncio.ensure_future(collect())
    try:
        await plane.open_room("maths")
        await plane.open_room("music")
        pids = plane.worker_pids()
        assert pids["maths"] != pids["music"] and os.getpid() not in pids.values()

        # Media flows through the worker that owns the room.
        pub = await Publisher.connect(plane, "music", "lead")
        sub = await Subscriber.connect(plane, "music", "class-1", audio_slots=0)
        await sub.wait_frames(20)

        os.kill(pids["maths"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not any(e.kind == EventKind.ROOM_LOST for e in events) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        lost = [e for e in events if e.kind == EventKind.ROOM_LOST]
        assert [e.room_id for e in lost] == ["maths"]
        with pytest.raises(MediaError):
            await plane.stats("maths")

        before = len(sub.frames)
        await sub.wait_frames(before + 20)  # the other worker's lesson goes on
        assert (await plane.stats("music"))["lead_on_air"] is True

        await plane.open_room("maths")  # reopened on a live worker
        assert plane.worker_pids()["maths"] != pids["maths"]
        deadline = time.monotonic() + 60
        while plane.workers_alive() < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert plane.workers_alive() == 2  # a replacement was started
        await sub.close()
        await pub.close()
    finally:
        await plane.stop()
        collector.cancel()
