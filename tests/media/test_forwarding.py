"""Real aiortc peers on 127.0.0.1 through the in-process media plane: what a classroom would see."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import struct
import time

import pytest
from media_clients import Publisher, Subscriber, random_drop

from media.api import EventKind, MediaEvent, ParticipantRole, TrackKind
from media.config import MediaConfig
from media.local import LocalMediaPlane

ROOM = "lesson-1"


@pytest.fixture
async def plane():
    base = 41000 + (os.getpid() % 8) * 100
    p = LocalMediaPlane(
        MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=base, udp_port_max=base + 99)
    )
    await p.start()
    await p.open_room(ROOM)
    yield p
    await p.stop()


class EventLog:
    def __init__(self, plane: LocalMediaPlane) -> None:
        self.events: list[MediaEvent] = []
        self._task = asyncio.ensure_future(self._run(plane.events()))

    async def _run(self, it) -> None:
        async for e in it:
            self.events.append(e)

    async def wait(self, kind: EventKind, participant_id: str | None = None, timeout: float = 15.0) -> MediaEvent:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e.kind == kind and (participant_id is None or e.participant_id == participant_id):
                    return e
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind} for {participant_id}: {[(e.kind, e.participant_id) for e in self.events]}")


def assert_continuous(seqs: list[int]) -> None:
    """Every number from the first to the last arrived: no jump, no gap (as unwrapped 16-bit values)."""
    unwrapped = [seqs[0]]
    for s in seqs[1:]:
        d = (s - unwrapped[-1]) & 0xFFFF
        unwrapped.append(unwrapped[-1] + (d if d < 0x8000 else d - 0x10000))
    got = set(unwrapped)
    missing = set(range(min(got), max(got) + 1)) - got
    assert not missing, f"sequence gap: {sorted(missing)[:10]}"
    assert max(abs(b - a) for a, b in itertools.pairwise(unwrapped)) < 50


async def test_three_classrooms_see_the_leads_pictures_in_order(plane):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    subs = [await Subscriber.connect(plane, ROOM, f"class-{i}", video_slots=1, audio_slots=1) for i in range(3)]
    for sub in subs:
        await sub.wait_frames(60)
    for sub in subs:
        numbers = [f.number for f in sub.frames]
        assert {f.source for f in sub.frames} == {1}
        assert numbers == sorted(set(numbers)), "pictures out of order or repeated"
        assert numbers[-1] - numbers[0] + 1 - len(numbers) <= 2, "pictures missing on a clean loopback"
    stats = await plane.stats(ROOM)
    assert stats["lead_on_air"] is True
    camera = stats["participants"]["lead"]["published"]["camera"]
    assert camera["subscribers"] == 3 and camera["packets"] > 0
    for i in range(3):
        slots = stats["participants"][f"class-{i}"]["slots"]
        assert {s["slot"] for s in slots.values()} == {"camera", "audio"}
        assert all(s["packets_sent"] > 0 and s["source_on_air"] for s in slots.values())
    for sub in subs:
        await sub.close()
    await pub.close()


async def test_a_late_joiner_gets_video_after_a_keyframe_request(plane):
    log = EventLog(plane)
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    early = await Subscriber.connect(plane, ROOM, "early")
    await early.wait_frames(45)
    requests_before = (await plane.stats(ROOM))["participants"]["lead"]["published"]["camera"]["keyframe_requests"]
    # The publisher's encoder makes a keyframe only every 100 s unless asked: pictures for the late
    # joiner prove the SFU asked for one.
    late = await Subscriber.connect(plane, ROOM, "late")
    joined = time.monotonic()
    await late.wait_frames(10, timeout=10)
    assert late.frames[0].at - joined < 5.0
    assert late.frames[0].number > 40
    event = await log.wait(EventKind.FIRST_KEYFRAME, "late")
    assert event.detail["slot"] == "camera"
    stats = await plane.stats(ROOM)
    assert stats["participants"]["lead"]["published"]["camera"]["keyframe_requests"] > requests_before
    await late.close()
    await early.close()
    await pub.close()


async def test_dropped_packets_are_repaired_by_nack(plane):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    lossy = await Subscriber.connect(plane, ROOM, "rural", audio_slots=0, drop=random_drop(0.1, seed=4))
    await lossy.wait_frames(120, timeout=25)
    numbers = [f.number for f in lossy.frames]
    assert numbers == sorted(set(numbers))
    missing = numbers[-1] - numbers[0] + 1 - len(numbers)
    assert lossy.dropped >= 5
    slot = (await plane.stats(ROOM))["participants"]["rural"]["slots"]["0"]
    assert slot["nacks_received"] > 0 and slot["retransmitted"] > 0
    assert missing <= 2, f"{missing} pictures lost although {slot['retransmitted']} packets were resent"
    await lossy.close()
    await pub.close()


async def test_talkback_switch_keeps_the_stream_continuous(plane):
    log = EventLog(plane)
    lead = await Subscriber.connect(plane, ROOM, "lead", role=ParticipantRole.LEAD, publish_source=1)
    class_a = await Subscriber.connect(plane, ROOM, "class-a", publish_source=2, video_slots=0, audio_slots=0)
    class_b = await Subscriber.connect(plane, ROOM, "class-b", publish_source=3, video_slots=0, audio_slots=0)
    await log.wait(EventKind.PUBLISHER_UP, "class-b")
    await plane.set_talkback(ROOM, "class-a")
    await lead.wait_frames(30, source=2)
    await plane.set_talkback(ROOM, "class-b", to_all=True)
    await lead.wait_frames(30, source=3)
    await log.wait(EventKind.TALKBACK, "class-b")

    sources = [f.source for f in lead.frames]
    assert set(sources) == {2, 3}, "a picture that is neither classroom's: the decoder saw garbage"
    first_b = sources.index(3)
    assert 3 not in sources[:first_b] and 2 not in sources[first_b:]
    for src in (2, 3):
        numbers = [f.number for f in lead.frames if f.source == src]
        assert numbers == sorted(set(numbers))
    ssrcs = {p[0] for p in lead.packets if p[1] >= 96}
    video_ssrc = lead.packets[0][0]
    video = [p for p in lead.packets if p[0] == video_ssrc]
    assert_continuous([p[2] for p in video])
    stamps = [p[3] for p in video]
    assert all(0 <= (b - a) & 0xFFFFFFFF < 0x80000000 for a, b in itertools.pairwise(stamps))
    stats = await plane.stats(ROOM)
    slot = next(s for s in stats["participants"]["lead"]["slots"].values() if s["slot"] == "talkback_camera")
    assert slot["source"] == {"participant_id": "class-b", "track": "camera"} and slot["switches"] == 2
    assert len(ssrcs) >= 1
    await plane.set_talkback(ROOM, None)
    for peer in (lead, class_a, class_b):
        await peer.close()


async def test_a_publisher_reconnect_resumes_the_same_outgoing_stream(plane):
    log = EventLog(plane)
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    sub = await Subscriber.connect(plane, ROOM, "class-1", audio_slots=0)
    await sub.wait_frames(30, source=1)
    await pub.close()  # the lead's browser vanishes without a goodbye
    await log.wait(EventKind.PUBLISHER_DOWN, "lead")
    stats = await plane.stats(ROOM)
    assert stats["lead_on_air"] is False
    slot = stats["participants"]["class-1"]["slots"]["0"]
    assert slot["source_on_air"] is False and slot["source"]["participant_id"] == "lead"

    pub2 = await Publisher.connect(plane, ROOM, "lead", source=5)
    await sub.wait_frames(30, source=5)
    assert {p[0] for p in sub.packets} == {sub.packets[0][0]}, "the subscriber's SSRC changed"
    assert_continuous([p[2] for p in sub.packets])
    assert (await plane.stats(ROOM))["lead_on_air"] is True
    await sub.close()
    await pub2.close()


async def test_hostile_rtp_and_rtcp_do_not_stop_the_lesson(plane):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    sub = await Subscriber.connect(plane, ROOM, "class-1", audio_slots=0)
    await sub.wait_frames(15)
    # Over the wire: well-encrypted but meaningless packets from the publisher's own connection.
    dtls = pub.pc.getTransceivers()[0].sender.transport
    rnd = random.Random(7)
    for i in range(400):
        tail = rnd.randbytes(rnd.randrange(0, 80))
        b0 = 0x80 | rnd.randrange(0, 0x40)  # random padding / extension / CSRC count bits
        rtp = struct.pack("!BBHII", b0, rnd.choice([96, 97, 100, 127]), i, rnd.getrandbits(32), rnd.getrandbits(32))
        rtcp = bytes([0x80 | rnd.randrange(32), rnd.choice([200, 201, 205, 206]), 0, rnd.randrange(8)]) + tail
        for data in (rtp + tail, rtcp):
            # The client's own SRTP may refuse some; the point is what reaches the SFU.
            with contextlib.suppress(Exception):
                await dtls._send_rtp(data)
    # Directly: the SFU's receive handlers with arbitrary bytes, some on the camera's own SSRC so
    # they reach forwarding (tests/media/test_forwarding_fuzz.py fuzzes that path with hypothesis).
    peer = plane.rooms[ROOM].participants["lead"].peer
    camera = plane.rooms[ROOM].participants["lead"].inbound[TrackKind.CAMERA]
    for _ in range(1000):
        ssrc = camera.ssrc if rnd.random() < 0.5 else rnd.getrandbits(32)
        pt = rnd.choice([*camera.codecs, *camera.rtx_apt, 0])
        # Sequence numbers far from the live ones: a forged jump must not be believed.
        seq = (camera.max_seq + 1000 + rnd.randrange(60000)) & 0xFFFF
        header = struct.pack("!BBHII", 0x80 | rnd.randrange(0x40), pt, seq, rnd.getrandbits(32), ssrc)
        await peer._on_rtp(header + rnd.randbytes(rnd.randrange(0, 100)), 0)
        await peer._on_rtcp(rnd.randbytes(rnd.randrange(0, 100)))
    before = len(sub.frames)
    await sub.wait_frames(before + 30, timeout=30)
    stats = await plane.stats(ROOM)
    assert stats["participants"]["lead"]["errors"] == 0
    assert stats["lead_on_air"] is True
    await sub.close()
    await pub.close()
