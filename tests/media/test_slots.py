"""Slots beyond the first of their kind: talk-back audio to every classroom, and the lead's previews."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from media_clients import Subscriber
from test_forwarding import EventLog

from media.api import EventKind, ParticipantRole
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
