"""Hostile feedback against real aiortc peers in real rooms (issue 16, what remained): keyframe
request backoff per publisher track, RTCP floods refused before decryption, NACK packets refused
unread once the budget is spent, and the worker's retransmissions shared fairly between its rooms.

Feedback is sent the way an authenticated client sends it: through the client's own SRTCP
(`RTCDtlsTransport._send_rtp`), on the ICE pair it selected.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time

import pytest
from media_clients import Publisher, Subscriber, random_drop

from media.api import ParticipantRole, TrackKind
from media.config import MediaConfig
from media.local import LocalMediaPlane
from media.rtcp import build_nack, build_pli

ROOM = "lesson-f"


def make_plane(**overrides: object) -> LocalMediaPlane:
    base = 47000 + (os.getpid() % 8) * 100
    return LocalMediaPlane(
        MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=base, udp_port_max=base + 99, **overrides)
    )


@pytest.fixture
async def plane():
    p = make_plane()
    await p.start()
    await p.open_room(ROOM)
    yield p
    await p.stop()


def client_dtls(client: Publisher | Subscriber):
    return client.pc.getTransceivers()[0].sender.transport


def sfu_port(client: Publisher | Subscriber) -> int:
    found = re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", client.pc.remoteDescription.sdp)
    assert found is not None
    return int(found[1])


async def wait_until(check, timeout: float, what: str) -> float:
    """Seconds until `check()` held (polled every 20 ms); fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not within {timeout} s")


async def pli_flood(clients: list[tuple[Subscriber, list[int]]], seconds: float, per_second: float) -> None:
    """Each client sends a PLI for each of its slot SSRCs `per_second` times a second (bounded)."""
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline and rounds < 10_000:
        rounds += 1
        for client, ssrcs in clients:
            for ssrc in ssrcs:
                await client_dtls(client)._send_rtp(build_pli(1, ssrc))
        await asyncio.sleep(1 / per_second)


async def test_playing_subscribers_keyframe_requests_back_off_but_joiners_the_lead_and_switches_are_served():
    plane = make_plane()
    await plane.start()
    await plane.open_room(ROOM)
    try:
        lead = await Subscriber.connect(plane, ROOM, "lead", role=ParticipantRole.LEAD, publish_source=1,
                                        audio_slots=0)
        class_a = await Subscriber.connect(plane, ROOM, "class-a", publish_source=2, video_slots=0, audio_slots=0)
        class_b = await Subscriber.connect(plane, ROOM, "class-b", publish_source=3, video_slots=0, audio_slots=0)
        good = await Subscriber.connect(plane, ROOM, "class-good", audio_slots=0)
        # camera, screen and talk-back slots: they harass the lead's camera and the called classroom's
        hostile = [await Subscriber.connect(plane, ROOM, f"hostile-{i}", video_slots=3, audio_slots=0)
                   for i in range(3)]
        room = plane.rooms[ROOM]
        await plane.set_talkback(ROOM, "class-a", to_all=True)
        await lead.wait_frames(10, source=2)
        for h in hostile:
            await h.wait_frames(5)
        camera = room.participants["lead"].inbound[TrackKind.CAMERA]
        a_camera = room.participants["class-a"].inbound[TrackKind.CAMERA]
        targets = []
        for i, h in enumerate(hostile):
            slots = {dt.slot: dt for dt in room.participants[f"hostile-{i}"].slots}
            targets.append((h, [slots["camera"].ssrc, slots["talkback_camera"].ssrc]))
        lead_camera_before, a_before = camera.keyframe_requests, a_camera.keyframe_requests
        good_before = len(good.frames)
        # Three playing subscribers, 4 PLIs a second each on each slot: within the per-participant
        # limit of 5, so only the backoff stands between them and the publishers' encoders.
        flood = asyncio.ensure_future(pli_flood(targets, 8.0, 4.0))
        await asyncio.sleep(5.0)
        # A classroom joining in the middle of it still gets its first picture at once (held slot).
        late = await Subscriber.connect(plane, ROOM, "late", audio_slots=0)
        joined = time.monotonic()
        await late.wait_frames(1, timeout=10)
        first_picture = late.frames[0].at - joined
        # The lead's own PLI for its talk-back picture (class-a's camera, which the hostile ones
        # keep asking for too) is sent on at once, backoff or not.
        lead_slot = next(dt for dt in room.participants["lead"].slots if dt.slot == "talkback_camera")
        await asyncio.sleep(0.25)  # out of the base coalescing window of the last request
        requested = a_camera.keyframe_requests
        await client_dtls(lead)._send_rtp(build_pli(1, lead_slot.ssrc))
        lead_wait = await wait_until(lambda: a_camera.keyframe_requests > requested, 1.0, "the lead's keyframe request")
        await flood
        lead_camera_requests = camera.keyframe_requests - lead_camera_before
        a_requests = a_camera.keyframe_requests - a_before
        # A talk-back switch back to a track in backoff: the lead sees the classroom again at once.
        await plane.set_talkback(ROOM, "class-b", to_all=True)
        await lead.wait_frames(len(lead.frames) + 5, source=3)
        switched = time.monotonic()
        count_a = sum(1 for f in lead.frames if f.source == 2)
        await plane.set_talkback(ROOM, "class-a", to_all=True)
        await wait_until(lambda: sum(1 for f in lead.frames if f.source == 2) > count_a, 5.0, "class-a back on")
        switch_wait = next(f.at for f in lead.frames if f.source == 2 and f.at > switched) - switched

        # main: every 0.5 s, 16 in 8 s; with the backoff (0.5, 1, 2, 4 s) 5, and the late joiner's
        assert lead_camera_requests <= 7, f"{lead_camera_requests} keyframes asked of the lead's camera in 8 s"
        # class-a's camera: the flood through the backoff, and the lead's own request
        assert a_requests <= 8, a_requests
        assert first_picture < 2.0, f"a late joiner waited {first_picture:.2f} s for its first picture"
        assert lead_wait < 0.5, f"the lead's request waited {lead_wait:.2f} s"
        assert switch_wait < 2.0, f"the switch back took {switch_wait:.2f} s"
        snap = camera.snapshot()
        assert snap["subscriber_keyframes_coalesced"] > 50
        assert len(good.frames) - good_before > 150  # the well-behaved classroom kept its picture
        for c in (late, good, *hostile, class_a, class_b, lead):
            await c.close()
    finally:
        await plane.stop()


async def test_an_rtcp_flood_is_refused_before_decryption_and_spent_budgets_leave_nacks_unread():
    # A generous NACK rate, so that only the datagram gate and the budget check stand in the way.
    plane = make_plane(nack_packets_per_second=2000.0)
    await plane.start()
    await plane.open_room(ROOM)
    try:
        pub = await Publisher.connect(plane, ROOM, "lead", source=1)
        good = await Subscriber.connect(plane, ROOM, "class-good", audio_slots=0)
        bad = await Subscriber.connect(plane, ROOM, "class-bad", audio_slots=0)
        await good.wait_frames(15)
        await bad.wait_frames(5)
        room = plane.rooms[ROOM]
        bad_peer = room.participants["class-bad"].peer
        dt = room.participants["class-bad"].slots[0]
        dtls = client_dtls(bad)
        rtcp_before = bad_peer.rtcp_packets
        good_before = len(good.frames)
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 2.0 and sent < 5000:  # about 1,000 NACK datagrams a second
            last = dt.rw.last_seq
            for _ in range(10):
                await dtls._send_rtp(build_nack(1, dt.ssrc, [(last - k) & 0xFFFF for k in range(200)]))
                sent += 1
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.3)
        # Junk that looks like SRTCP for this participant, from an address that is not its ICE pair.
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(50):
                junk.sendto(b"\x81\xc9" + bytes(60), ("127.0.0.1", sfu_port(bad)))
        finally:
            junk.close()
        await asyncio.sleep(0.3)
        stats = (await plane.stats(ROOM))["participants"]["class-bad"]
        slot = stats["slots"][dt.mid]
        decrypted = bad_peer.rtcp_packets - rtcp_before
        # The gate: 200 a second and a burst of 400 got through to decryption; the rest were dropped.
        assert decrypted <= 200 * (elapsed + 0.6) + 400 + 5, (decrypted, sent)
        assert stats["rtcp_rate_limited"] >= sent - decrypted - 5
        assert stats["wrong_address_datagrams"] == 50
        # Of the NACKs decrypted, those that found the budget spent were not unpacked: every NACK
        # whose numbers were read made at least one retransmission (main reads all of them).
        walked = slot["nacks_received"] // 200
        assert stats["nacks_over_budget"] > 0 and slot["nack_packets_over_budget"] == stats["nacks_over_budget"]
        assert walked <= slot["retransmitted"] + 5, (walked, slot["retransmitted"])
        assert walked + slot["nack_packets_over_budget"] <= decrypted
        assert len(good.frames) - good_before >= 30
        for c in (good, bad):
            await c.close()
        await pub.close()
    finally:
        await plane.stop()


async def test_one_rooms_hostile_subscribers_cannot_take_the_workers_retransmissions_from_another_room():
    rate = 150.0
    plane = make_plane(worker_retransmissions_per_second=rate, misbehaving_errors=0)
    await plane.start()
    await plane.open_room("room-a")
    await plane.open_room("room-b")
    try:
        pub_a = await Publisher.connect(plane, "room-a", "lead-a", source=1)
        hostile = [await Subscriber.connect(plane, "room-a", f"hostile-{i}", audio_slots=0) for i in range(2)]
        for h in hostile:
            await h.wait_frames(5)
        room_a, room_b = plane.rooms["room-a"], plane.rooms["room-b"]
        slots_a = [room_a.participants[f"hostile-{i}"].slots[0] for i in range(2)]

        def a_retransmitted() -> int:
            return sum(dt.retransmitted for dt in slots_a)

        async def harass(seconds: float) -> float:
            """Both hostile ones NACK the last 200 numbers 80 times a second (within their NACK rate)."""
            started = time.monotonic()
            rounds = 0
            while time.monotonic() - started < seconds and rounds < 2000:
                rounds += 1
                for h, dt in zip(hostile, slots_a, strict=True):
                    last = dt.rw.last_seq
                    await client_dtls(h)._send_rtp(build_nack(1, dt.ssrc, [(last - k) & 0xFFFF for k in range(200)]))
                await asyncio.sleep(1 / 80)
            return time.monotonic() - started

        # Room B idle: room A may use the worker's whole rate (an unused share is redistributed).
        await harass(1.0)  # spend the saved-up bursts first
        before = a_retransmitted()
        alone = await harass(3.0)
        alone_rate = (a_retransmitted() - before) / alone

        # Room B's lesson starts, with a classroom on a lossy link that needs retransmissions.
        pub_b = await Publisher.connect(plane, "room-b", "lead-b", source=5)
        lossy = await Subscriber.connect(plane, "room-b", "rural", audio_slots=0, drop=random_drop(0.1, seed=7))
        await lossy.wait_frames(10)
        harassment = asyncio.ensure_future(harass(8.0))
        await asyncio.sleep(1.0)  # room B counts as active from its first NACK on
        before = a_retransmitted()
        frames_before = len(lossy.frames)
        measured = time.monotonic()
        await harassment
        shared = time.monotonic() - measured
        shared_rate = (a_retransmitted() - before) / shared
        b_slot = room_b.participants["rural"].slots[0]
        numbers = [f.number for f in lossy.frames[frames_before:]]

        assert alone_rate >= 0.6 * rate, f"room A alone got {alone_rate:.0f}/s of the worker's {rate:.0f}"
        assert alone_rate <= 1.1 * rate + 60
        # with room B active, room A is held to its half (plus its burst of 0.2 s)
        assert shared_rate <= 0.5 * rate * 1.1 + 0.2 * rate / shared, f"room A took {shared_rate:.0f}/s"
        # and room B's classroom got its repairs: every picture, nothing refused for budget
        assert b_slot.retransmitted > 0 and b_slot.over_budget == 0 and b_slot.nack_packets_over_budget == 0
        assert len(numbers) > 100 and numbers == sorted(set(numbers))
        assert numbers[-1] - numbers[0] + 1 - len(numbers) <= 2, "room B lost pictures to room A's hostile ones"
        assert all(dt.over_budget + dt.nack_packets_over_budget > 0 for dt in slots_a)
        for c in (lossy, pub_b, *hostile, pub_a):
            await c.close()
    finally:
        await plane.stop()


async def test_a_participant_whose_rtcp_achieves_nothing_is_throttled_harder_and_recovers(plane):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    lossy = await Subscriber.connect(plane, ROOM, "class-lossy", audio_slots=0, drop=random_drop(0.1, seed=3))
    junky = await Subscriber.connect(plane, ROOM, "class-junk", audio_slots=0)
    await lossy.wait_frames(15)
    await junky.wait_frames(5)
    room = plane.rooms[ROOM]
    gate = room.participants["class-junk"].peer.gate
    dtls = client_dtls(junky)
    # RTCP that decrypts fine and means nothing: reports and feedback for SSRCs nobody has
    junk = build_pli(1, 0xDEAD) + build_nack(1, 0xBEEF, range(40))
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 4.0 and sent < 2000:
        for _ in range(3):
            await dtls._send_rtp(junk)
            sent += 1
        await asyncio.sleep(0.02)  # 150 a second: within the gate's 200 until it is cut
    stats = (await plane.stats(ROOM))["participants"]
    assert stats["class-junk"]["rtcp_penalties"] >= 1  # junk only: straight to the floor
    assert stats["class-junk"]["rtcp_rate_per_s"] <= 50.0
    assert stats["class-junk"]["rtcp_rate_limited"] > 20
    # the classroom on a lossy link, NACKing for real, is never cut
    assert stats["class-lossy"]["rtcp_penalties"] == 0 and stats["class-lossy"]["rtcp_rate_per_s"] == 200.0
    assert stats["class-lossy"]["slots"]["0"]["retransmitted"] > 0
    # once it only sends its receiver reports again, its rate doubles back each second
    await wait_until(lambda: gate.bucket.rate == 200.0, 8.0, "the rate coming back")
    await frames_go_on_after(lossy, 30)
    for c in (lossy, junky):
        await c.close()
    await pub.close()


async def frames_go_on_after(sub: Subscriber, more: int) -> None:
    await sub.wait_frames(len(sub.frames) + more, timeout=20)
