"""Slots beyond the first of their kind: talk-back audio to every classroom, and the lead's previews."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from media_clients import BUNDLE, Subscriber
from test_forwarding import EventLog

from media.api import EventKind, MediaError, ParticipantRole
from media.config import MediaConfig
from media.local import LocalMediaPlane

ROOM = "lesson-slots"


@pytest.fixture
async def plane():
    base = 43000 + (os.getpid() % 8) * 100
    p = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=base, udp_port_max=base + 99))
    await p.start()
    await p.open_room(ROOM)
    yield p
    await p.stop()


def slot_of(stats: dict, participant_id: str, kind: str) -> list[dict]:
    return [s for s in stats["participants"][participant_id]["slots"].values() if s["slot"] == kind]


async def wait_for(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out: {what}")


async def test_every_classroom_hears_the_called_classroom_on_its_second_audio_slot(plane):
    """The talk-back audio slot is a classroom's second audio m-line: it must carry packets (bundle)."""
    log = EventLog(plane)
    lead = await Subscriber.connect(plane, ROOM, "lead", role=ParticipantRole.LEAD, publish_source=1)
    caller = await Subscriber.connect(plane, ROOM, "class-2", publish_source=2, video_slots=0, audio_slots=0)
    listener = await Subscriber.connect(plane, ROOM, "class-1", video_slots=3, audio_slots=2)
    await log.wait(EventKind.PUBLISHER_UP, "class-2")
    await listener.wait_frames(10, source=1)
    await plane.set_talkback(ROOM, "class-2", to_all=True)
    stats = await plane.stats(ROOM)
    (talk_audio,) = slot_of(stats, "class-1", "talkback_audio")
    (lead_audio,) = slot_of(stats, "class-1", "audio")
    assert talk_audio["source"] == {"participant_id": "class-2", "track": "audio"}

    async def heard() -> bool:
        ssrcs = [p[0] for p in listener.packets]
        return ssrcs.count(talk_audio["ssrc"]) > 25 and ssrcs.count(lead_audio["ssrc"]) > 25

    await wait_for(heard, what="classroom 1 gets the lead's and classroom 2's audio")
    stats = await plane.stats(ROOM)
    (talk_audio,) = slot_of(stats, "class-1", "talkback_audio")
    assert talk_audio["packets_sent"] > 25
    for peer in (lead, caller, listener):
        await peer.close()


async def test_the_lead_sees_classrooms_in_its_preview_slots_first_come_first_served(plane):
    log = EventLog(plane)
    # the lead's offer: 0 camera and 1 audio (sent), 2 talkback_camera, 3 and 4 preview (the default order)
    lead = await Subscriber.connect(
        plane, ROOM, "lead", role=ParticipantRole.LEAD, publish_source=1, video_slots=3, audio_slots=0,
        decode_all=True,
    )
    first = await log.wait(EventKind.PREVIEW, "lead")
    assert first.detail["slots"] == [{"mid": "3", "participant_id": None}, {"mid": "4", "participant_id": None}]
    classrooms = {}
    for pid, source in (("class-a", 2), ("class-b", 3), ("class-c", 4)):
        classrooms[pid] = await Subscriber.connect(
            plane, ROOM, pid, publish_source=source, video_slots=0, audio_slots=0
        )
        await log.wait(EventKind.PUBLISHER_UP, pid)

    async def pictures(mid: str, source: int, count: int) -> None:
        async def enough() -> bool:
            return sum(1 for f in lead.by_mid.get(mid, []) if f.source == source) >= count

        await wait_for(enough, what=f"{count} pictures of classroom {source} in preview slot {mid}")

    await pictures("3", 2, 20)
    await pictures("4", 3, 20)
    stats = await plane.stats(ROOM)
    assert stats["preview"] == ["class-a", "class-b"]  # class-c waits: both slots are taken
    assert not any(f.source == 4 for frames in lead.by_mid.values() for f in frames)
    previews = slot_of(stats, "lead", "preview")
    ssrcs = [s["ssrc"] for s in previews]
    assert [s["source"]["participant_id"] for s in previews] == ["class-a", "class-b"]
    assert all(s["codec_mismatch"] is False for s in previews)

    # class-a leaves: its slot goes to the classroom that waited, without renegotiation; class-b stays put
    await plane.leave(ROOM, "class-a")
    await classrooms.pop("class-a").close()
    await pictures("3", 4, 20)
    stats = await plane.stats(ROOM)
    assert stats["preview"] == ["class-c", "class-b"]
    previews = slot_of(stats, "lead", "preview")
    assert [s["ssrc"] for s in previews] == ssrcs and previews[0]["switches"] == 2
    last = [e for e in log.events if e.kind == EventKind.PREVIEW][-1]
    assert last.detail["slots"] == [
        {"mid": "3", "participant_id": "class-c"},
        {"mid": "4", "participant_id": "class-b"},
    ]
    before = len(lead.by_mid["4"])
    await pictures("4", 3, before + 10)
    # each slot shows one classroom's pictures at a time, in order: nothing from another slipped in
    assert {f.source for f in lead.by_mid["4"]} == {3}
    shown = [f.source for f in lead.by_mid["3"]]
    assert set(shown) == {2, 4} and shown == sorted(shown)  # classroom a's pictures, then classroom c's
    for source in (2, 4):
        numbers = [f.number for f in lead.by_mid["3"] if f.source == source]
        assert numbers == sorted(set(numbers))
    for peer in (lead, *classrooms.values()):
        await peer.close()


async def test_only_the_lead_has_preview_slots(plane):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=BUNDLE))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    with pytest.raises(MediaError, match="only the lead"):
        await plane.join(ROOM, "class-x", ParticipantRole.RECEIVER, pc.localDescription.sdp, slots={"0": "preview"})
    await pc.close()
    assert "class-x" not in (await plane.stats(ROOM))["participants"]
