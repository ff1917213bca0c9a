"""The relay link between two copies of a room, in one process: two media planes (as two workers
would have), a real UDP proxy between them that loses packets or forges datagrams, real aiortc peers."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from media_clients import Publisher, Subscriber
from relay_proxy import LinkProxy, first_transmissions

from media.api import EventKind, ParticipantRole, TrackKind
from media.config import MediaConfig
from media.local import LocalMediaPlane
from media.relay import KIND_RTP, KIND_STATE
from media.relay_seal import MAGIC, TAG, LinkSeal
from media.rtcp import build_pli

ROOM = "lesson"
LINK = "lesson:0>1"


def config(ports: int) -> MediaConfig:
    return MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=ports, udp_port_max=ports + 499)


@pytest.fixture
async def linked() -> AsyncIterator[tuple[LocalMediaPlane, LocalMediaPlane, LinkProxy]]:
    """An origin plane owning the room, a copy plane, and the link between them through a proxy."""
    origin, copy = LocalMediaPlane(config(47000)), LocalMediaPlane(config(47500))
    await origin.start()
    await copy.start()
    proxy = LinkProxy()
    await proxy.start()
    await origin.open_room(ROOM)
    key = secrets.token_bytes(32)
    proxy.link_key = key
    proxy.copy_addr = await copy.relay_copy(ROOM, LINK, key)
    proxy.origin_addr = await origin.relay_origin(ROOM, LINK, key, proxy.origin_side)
    await copy.relay_connect(ROOM, LINK, proxy.copy_side)
    try:
        yield origin, copy, proxy
    finally:
        proxy.close()
        await copy.stop()
        await origin.stop()


def link_of(stats: dict) -> dict:
    [link] = stats["links"]
    return link


def camera(entries: list[dict]) -> dict:
    return next(e for e in entries if e["track"] == "camera")


async def until(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_subscriber_of_the_copy_decodes_the_lead_through_a_lossy_link(linked):
    origin, copy, proxy = linked
    lead = await Publisher.connect(origin, ROOM, "lead")
    proxy.drop_to_copy = first_transmissions(0.08, random.Random(7), proxy.link_key)
    sub = await Subscriber.connect(copy, ROOM, "class-9", audio_slots=1)
    try:
        await sub.wait_frames(90, timeout=30)
        numbers = [f.number for f in sub.frames if f.source == 1]
        # a decoder that missed packets would stall until the next keyframe (none is asked for after
        # the first one): repaired loss leaves the picture running
        assert len(set(numbers)) >= 90
        gaps = [b - a for a, b in itertools.pairwise(numbers) if b - a > 1]
        assert len(gaps) <= 3, gaps
        assert proxy.dropped > 20
        copy_link = link_of(await copy.stats(ROOM))
        origin_link = link_of(await origin.stats(ROOM))
        received = camera(copy_link["received"])
        sent = camera(origin_link["sent"])
        assert received["nacks_sent"] > 0  # the copy NACKed what the link lost...
        assert sent["retransmitted"] > 0  # ...and the origin answered from its history
        assert sent["sending"] and received["wanted"]
        # the copy's subscriber is served from the copy's own fan-out
        slots = (await copy.stats(ROOM))["participants"]["class-9"]["slots"]
        assert any(s["source"] == {"participant_id": "lead", "track": "camera"} and s["packets_sent"] > 0
                   for s in slots.values())
        assert origin_link["refused"] == copy_link["refused"] == 0
    finally:
        await sub.close()
        await lead.close()


async def test_a_forged_or_junk_datagram_on_the_link_is_refused_and_counted(linked):
    origin, copy, proxy = linked
    lead = await Publisher.connect(origin, ROOM, "lead")
    sub = await Subscriber.connect(copy, ROOM, "class-9", audio_slots=0)
    try:
        await sub.wait_frames(20)
        before = link_of(await copy.stats(ROOM))
        # from the origin's address as the copy knows it: a frame with a wrong tag, junk, a stub
        forged = bytes([MAGIC, KIND_RTP | 0x80, 0, 1]) + bytes(8) + bytes(12) + b"x" * 200 + secrets.token_bytes(TAG)
        proxy.inject_to_copy(forged)
        proxy.inject_to_copy(secrets.token_bytes(300))
        proxy.inject_to_copy(b"\xc1")
        # and from anywhere else
        stranger = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        stranger[0].sendto(forged, tuple(before["local"]))
        await asyncio.sleep(0.3)
        after = link_of(await copy.stats(ROOM))
        assert after["refused"] - before["refused"] == 3
        assert after["wrong_address"] - before["wrong_address"] == 1
        assert after["errors"] == 0
        count = len(sub.frames)
        await sub.wait_frames(count + 20)  # the lesson goes on
        stranger[0].close()
    finally:
        await sub.close()
        await lead.close()


async def test_nothing_of_the_lesson_crosses_the_link_in_clear_and_a_replayed_datagram_changes_nothing(linked):
    origin, copy, proxy = linked
    lead = await Publisher.connect(origin, ROOM, "lead")
    sub = await Subscriber.connect(copy, ROOM, "class-9", audio_slots=1)
    try:
        await sub.wait_frames(30)
        crossed = list(proxy.captured)
        opener = {True: LinkSeal(proxy.link_key, origin=False), False: LinkSeal(proxy.link_key, origin=True)}
        opened = [(d, opener[bool(d[1] & 0x80)].open(d)) for d in crossed]
        assert all(o is not None for _, o in opened)  # every datagram was sealed with the link's key
        rtp = [(d, o[3]) for d, o in opened if o[0] == KIND_RTP]
        states = [(d, o[3]) for d, o in opened if o[0] == KIND_STATE]
        assert len(rtp) > 50 and states
        for datagram, body in rtp:
            assert body[0] >> 6 == 2  # inside: a real RTP packet...
            assert body[:12] not in datagram  # ...that never crossed in clear: neither its header...
            assert len(body) < 28 or body[12:44] not in datagram  # ...nor its payload
        for datagram, body in states:
            assert b'"tracks"' in body and b'"tracks"' not in datagram and b"class-9" not in datagram
        counters = [(d[1] & 0x80, int.from_bytes(d[4:12], "big")) for d in crossed]
        assert len(set(counters)) == len(counters)  # no nonce twice in one direction
        # every datagram the origin sent, sent again by someone who recorded them: all refused as replays
        before = link_of(await copy.stats(ROOM))
        old = [d for d in crossed if d[1] & 0x80][:200]
        for datagram in old:
            proxy.inject_to_copy(datagram)
        await asyncio.sleep(0.3)
        after = link_of(await copy.stats(ROOM))
        assert after["replayed"] - before["replayed"] == len(old)
        assert after["refused"] == before["refused"] and after["errors"] == 0
        count = len(sub.frames)
        await sub.wait_frames(count + 20)  # the lesson goes on
    finally:
        await sub.close()
        await lead.close()


async def test_closing_the_origin_room_and_the_copy_closes_both_ends(linked):
    origin, copy, _proxy = linked
    lead = await Publisher.connect(origin, ROOM, "lead")
    sub = await Subscriber.connect(copy, ROOM, "class-9", audio_slots=0)
    try:
        await sub.wait_frames(10)
        room = copy.rooms[ROOM]
        link = room.links[0]
        await copy.close_room(ROOM)
        await origin.close_room(ROOM)
        assert link.closed and link.sock.fileno() == -1
        assert not origin.rooms and not copy.rooms
    finally:
        await sub.close()
        await lead.close()


async def test_keyframe_requests_of_the_copys_subscribers_cross_the_link_coalesced(linked):
    origin, copy, _proxy = linked
    lead = await Publisher.connect(origin, ROOM, "lead")
    subs = [await Subscriber.connect(copy, ROOM, f"class-{i}", audio_slots=0) for i in range(3)]
    try:
        for sub in subs:
            await sub.wait_frames(10)
        room = copy.rooms[ROOM]
        slots = [room.participants[f"class-{i}"].slots[0] for i in range(3)]
        asked0 = camera(link_of(await origin.stats(ROOM))["sent"])["keyframe_requests_received"]
        # three playing classrooms asking for a picture 4 times a second each, for 4 s
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            for sub, slot in zip(subs, slots, strict=True):
                await sub.pc.getTransceivers()[0].sender.transport._send_rtp(build_pli(1, slot.ssrc))
            await asyncio.sleep(0.25)
        await asyncio.sleep(0.3)
        sent = sum(slot.keyframe_requests_received for slot in slots)
        asked = camera(link_of(await origin.stats(ROOM))["sent"])["keyframe_requests_received"] - asked0
        assert sent >= 40
        assert 1 <= asked <= 8, asked  # the copy's backoff, once for all of its classrooms
        count = len(subs[0].frames)
        await subs[0].wait_frames(count + 10)
    finally:
        for sub in subs:
            await sub.close()
        await lead.close()


async def test_the_leads_previews_show_a_classroom_of_the_copy(linked):
    origin, copy, _proxy = linked
    events: list = []

    async def collect() -> None:
        async for e in origin.events():
            events.append(e)

    collector = asyncio.ensure_future(collect())
    # the lead's second video slot is a preview (thumbnail) slot
    lead = await Subscriber.connect(origin, ROOM, "lead", role=ParticipantRole.LEAD, publish_source=1,
                                    video_slots=2, audio_slots=0, decode_all=True)
    there = await Subscriber.connect(copy, ROOM, "class-far", publish_source=3, video_slots=1, audio_slots=0)
    try:
        await there.wait_frames(10, source=1)  # the classroom of the copy watches the lead...
        preview_mid = lead.pc.getTransceivers()[3].mid

        def shown() -> int:
            return sum(f.source == 3 for f in lead.by_mid.get(preview_mid, []))

        await until(lambda: shown() >= 10, 20)  # ...and the lead sees it in its preview
        assert any(e.kind == EventKind.PREVIEW and {"mid": preview_mid, "participant_id": "class-far"}
                   in e.detail["slots"] for e in events)
        # it leaves the copy: the preview is freed at the origin
        await copy.leave(ROOM, "class-far")
        await until(lambda: origin.rooms[ROOM].preview_ids == [None], 10)
    finally:
        collector.cancel()
        await there.close()
        await lead.close()


async def test_a_lead_reconnecting_at_the_origin_resumes_on_the_copys_slots(linked):
    origin, copy, _proxy = linked
    lead = await Publisher.connect(origin, ROOM, "lead", source=1)
    sub = await Subscriber.connect(copy, ROOM, "class-9", audio_slots=0)
    try:
        await sub.wait_frames(20, source=1)
        ssrcs = {p[0] for p in sub.packets}
        await lead.close()
        lead = await Publisher.connect(origin, ROOM, "lead", source=5)  # a new connection, same lead
        await sub.wait_frames(20, source=5)
        assert {p[0] for p in sub.packets} == ssrcs  # the same slot, the same SSRC
        [link] = (await origin.stats(ROOM))["links"]
        assert sum(s["participant_id"] == "lead" for s in link["sent"]) == 2  # the new connection's tracks only
    finally:
        await sub.close()
        await lead.close()


async def test_classrooms_coming_and_going_in_the_copy_leave_nothing_behind_at_either_end(linked):
    origin, copy, _proxy = linked
    lead = await Publisher.connect(origin, ROOM, "lead")
    try:
        for i in range(12):
            sub = await Subscriber.connect(copy, ROOM, f"class-{i % 3}", audio_slots=0, publish_source=2)
            await until(lambda n=f"class-{i % 3}": (n, TrackKind.CAMERA) in origin.rooms[ROOM].sources, 10)
            await copy.leave(ROOM, f"class-{i % 3}")
            await sub.close()
        await until(lambda: set(origin.rooms[ROOM].sources) == {("lead", TrackKind.CAMERA), ("lead", TrackKind.AUDIO)})
        origin_link, copy_link = origin.rooms[ROOM].links[0], copy.rooms[ROOM].links[0]
        await until(lambda: not origin_link.remote_participants and len(origin_link.remote) == 0
                    and len(copy_link.senders) == 0 and len(copy_link.remote) == 2)
        assert set(copy.rooms[ROOM].sources) == {("lead", TrackKind.CAMERA), ("lead", TrackKind.AUDIO)}
        assert origin_link.errors == copy_link.errors == 0
    finally:
        await lead.close()


async def test_opening_a_room_where_its_copy_is_starts_it_afresh_and_a_late_copy_close_leaves_it(linked):
    _origin, copy, _proxy = linked
    old = copy.rooms[ROOM]
    link = old.links[0]
    await copy.open_room(ROOM)  # its origin died and the room is opened again here
    room = copy.rooms[ROOM]
    assert room is not old and not room.is_copy and not room.links and link.closed
    await copy.close_copy(ROOM, lost=True)  # the clean-up of the old copy, arriving late
    assert copy.rooms[ROOM] is room
