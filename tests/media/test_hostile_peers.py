"""Hostile and broken peers against real aiortc clients and the SFU's real receive path (issue 16).

Packets are injected where an authenticated peer's packets arrive: through the client's own SRTP
(`RTCDtlsTransport._send_rtp`), or, for sizes the client's SRTP refuses, into the SFU's handler right
after SRTP decryption (`Peer._on_rtp`), as the issue's reproductions did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket
import struct
import time

import pytest
from media_clients import Publisher, Subscriber
from test_forwarding import EventLog

from media.api import EventKind, TrackKind
from media.config import MediaConfig
from media.local import LocalMediaPlane
from media.rtcp import build_nack, build_pli

ROOM = "lesson-h"
# A STUN binding response whose attribute is cut short: aioice's parser raises struct.error on it.
MALFORMED_STUN = bytes.fromhex("010100112112a44266f77560b16d18b5d754e6c20019d8b8be53f49f217c8d64daa4536ce8")


def make_plane(**overrides: object) -> LocalMediaPlane:
    base = 46000 + (os.getpid() % 8) * 100
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


def sfu(plane: LocalMediaPlane, participant_id: str):
    return plane.rooms[ROOM].participants[participant_id]


def client_dtls(client: Publisher | Subscriber):
    return client.pc.getTransceivers()[0].sender.transport


async def frames_go_on(subs: list[Subscriber], more: int = 30, timeout: float = 20.0) -> None:
    for sub in subs:
        await sub.wait_frames(len(sub.frames) + more, timeout=timeout)


def newest_ts(track) -> int:
    entry = track.history[track.max_seq & track.mask]
    return entry[1] if entry else 0


def sfu_port(client: Publisher | Subscriber) -> int:
    """The SFU's UDP port for this client, from the answer's host candidate."""
    found = re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", client.pc.remoteDescription.sdp)
    assert found is not None
    return int(found[1])


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, pt: int) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


async def test_oversized_packets_and_their_retransmission_do_not_break_fanout_or_feedback(plane):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    subs = [await Subscriber.connect(plane, ROOM, f"class-{i}", audio_slots=0) for i in range(2)]
    await frames_go_on(subs, 15)
    lead = sfu(plane, "lead")
    camera = lead.inbound[TrackKind.CAMERA]
    pt = next(iter(camera.codecs))
    top = camera.max_seq
    # 1,344 bytes of payload (forwardable, but 1,358 bytes on RTX) and 1,450 (beyond SRTP even when
    # forwarded), in one pass of the loop with a normal packet behind them.
    for i, size in enumerate((1344, 1450, 300)):
        data = rtp(top + 1 + i, newest_ts(camera), camera.ssrc, b"\x00" * size, pt)
        await lead.peer._on_rtp(data, 0)
    plane.rooms[ROOM].fanout.flush()
    await asyncio.sleep(0.3)
    for i, sub in enumerate(subs):
        dt = sfu(plane, f"class-{i}").slots[0]
        big_out = (top + 1 + dt.rw.seq_offset) & 0xFFFF
        later = [(dt.rw.last_seq - k) & 0xFFFF for k in (3, 2, 1)]
        before = dt.retransmitted
        await client_dtls(sub)._send_rtp(build_nack(1, dt.ssrc, [big_out, *later]))
        deadline = time.monotonic() + 5
        while dt.retransmitted < before + 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert dt.retransmitted >= before + 3, "a NACK list stopped at the oversized packet"
    # The publisher's camera NACKs upstream too: a long list must still fit in SRTCP.
    camera.send_nack(list(range(0, 4000, 3)))
    stats = await plane.stats(ROOM)
    assert stats["participants"]["lead"]["published"]["camera"]["oversized"] == 2
    assert all(p["errors"] == 0 for p in stats["participants"].values()), stats["participants"]
    await frames_go_on(subs)
    for sub in subs:
        await sub.close()
    await pub.close()


async def test_a_publisher_jumping_its_sequence_numbers_does_not_lock_its_camera_out(plane):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    sub = await Subscriber.connect(plane, ROOM, "class-1", audio_slots=0)
    await sub.wait_frames(15)
    lead = sfu(plane, "lead")
    camera = lead.inbound[TrackKind.CAMERA]
    pt = next(iter(camera.codecs))
    fake = camera.max_seq
    for _ in range(130):  # believable jumps of 250, until the real numbers look half a cycle old
        fake += 250
        await lead.peer._on_rtp(rtp(fake, newest_ts(camera), camera.ssrc, b"\x00junk", pt), 0)
    # Today's code drops the real stream as old until it catches up: about two minutes here.
    await sub.wait_frames(len(sub.frames) + 30, timeout=15)
    assert (await plane.stats(ROOM))["participants"]["lead"]["published"]["camera"]["restarts"] >= 1
    await sub.close()
    await pub.close()


async def test_a_subscribers_nack_and_pli_flood_is_bounded_and_the_others_keep_their_picture(plane):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    good = await Subscriber.connect(plane, ROOM, "class-good", audio_slots=0)
    bad = await Subscriber.connect(plane, ROOM, "class-bad", audio_slots=0)
    await good.wait_frames(15)
    await bad.wait_frames(5)
    dt = sfu(plane, "class-bad").slots[0]
    camera = sfu(plane, "lead").inbound[TrackKind.CAMERA]
    requests_before = camera.keyframe_requests
    dtls = client_dtls(bad)
    # The frame rate on this (shared, busy) machine without the flood first, then with it.
    frames_before = len(good.frames)
    await asyncio.sleep(2.0)
    calm_fps = (len(good.frames) - frames_before) / 2.0
    frames_before = len(good.frames)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 2.0:  # about 470 NACKs of 136 bytes and 470 PLIs a second
        last = dt.rw.last_seq
        await dtls._send_rtp(build_nack(1, dt.ssrc, [(last - k) & 0xFFFF for k in range(0, 527, 1)]))
        await dtls._send_rtp(build_pli(1, dt.ssrc))
        sent += 1
        await asyncio.sleep(1 / 470)
    elapsed = time.monotonic() - started
    slot = (await plane.stats(ROOM))["participants"]["class-bad"]
    resent_bytes = dt.retransmitted_octets
    assert slot["rate_limited"] > 0
    # Retransmissions: its budget (half of what it was sent, a floor, a burst), not 152 per NACK.
    assert resent_bytes <= dt.retransmit_burst + 0.5 * dt.octets + dt.retransmit_floor * elapsed + 1400
    assert dt.over_budget > 0
    assert dt.keyframe_requests_received <= 5 * elapsed + 10 + 1
    assert camera.keyframe_requests - requests_before <= elapsed / 0.5 + 2  # subscriber_keyframe_interval
    fps = (len(good.frames) - frames_before) / elapsed
    assert fps >= 0.6 * calm_fps, f"the well-behaved classroom dropped from {calm_fps:.1f} to {fps:.1f} fps"
    await frames_go_on([good])
    for c in (good, bad):
        await c.close()
    await pub.close()


async def test_malformed_stun_at_the_udp_port_is_dropped_counted_and_logged_once(plane, caplog):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    sub = await Subscriber.connect(plane, ROOM, "class-1", audio_slots=0)
    await sub.wait_frames(10)
    port = sfu_port(sub)
    caplog.set_level(logging.WARNING)
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(300):  # junk from anyone who reaches the port, before any authentication
            junk.sendto(MALFORMED_STUN, ("127.0.0.1", port))
            if i % 50 == 49:
                await asyncio.sleep(0.01)
    finally:
        junk.close()
    await asyncio.sleep(0.5)
    assert (await plane.stats(ROOM))["participants"]["class-1"]["malformed_stun"] >= 250
    stun_lines = [r for r in caplog.records if "STUN" in r.getMessage()]
    tracebacks = [r for r in caplog.records if r.exc_info or "Exception in callback" in r.getMessage()]
    assert len(stun_lines) == 1 and not tracebacks, [r.getMessage() for r in caplog.records][:5]
    await frames_go_on([sub])
    await sub.close()
    await pub.close()


async def test_empty_and_oversized_datagrams_from_anyone_do_not_end_a_connection(plane):
    pub = await Publisher.connect(plane, ROOM, "lead", source=1)
    sub = await Subscriber.connect(plane, ROOM, "class-1", audio_slots=0)
    await sub.wait_frames(10)
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for port in (sfu_port(pub), sfu_port(sub)):
            # aiortc reads data[0] of an empty datagram, and pylibsrtp refuses to unprotect over 1,500
            # bytes: either ended aiortc's DTLS receive loop, so the participant dropped out.
            junk.sendto(b"", ("127.0.0.1", port))
            junk.sendto(b"\x80" + bytes(1600), ("127.0.0.1", port))
    finally:
        junk.close()
    await asyncio.sleep(0.5)
    await frames_go_on([sub])
    stats = await plane.stats(ROOM)
    assert set(stats["participants"]) == {"lead", "class-1"}
    assert stats["participants"]["class-1"]["bad_size_datagrams"] == 2
    await sub.close()
    await pub.close()


async def test_a_participant_that_keeps_failing_is_dropped_as_misbehaving():
    plane = make_plane(misbehaving_errors=100, misbehaving_window=5.0)
    await plane.start()
    await plane.open_room(ROOM)
    log = EventLog(plane)
    try:
        pub = await Publisher.connect(plane, ROOM, "lead", source=1)
        good = await Subscriber.connect(plane, ROOM, "class-good", audio_slots=0)
        bad = await Subscriber.connect(plane, ROOM, "class-bad", audio_slots=0)
        await bad.wait_frames(5)
        dt = sfu(plane, "class-bad").slots[0]
        dtls = client_dtls(bad)
        for _ in range(400):
            try:
                await dtls._send_rtp(build_pli(1, dt.ssrc))
            except ConnectionError:
                break  # dropped: the SFU closed the connection
            await asyncio.sleep(0.002)
        event = await log.wait(EventKind.SUBSCRIBER_DOWN, "class-bad", timeout=10)
        assert event.detail["reason"] == "misbehaving"
        assert "class-good" in (await plane.stats(ROOM))["participants"]
        await frames_go_on([good])
        for c in (good, bad):
            await c.close()
        await pub.close()
    finally:
        await plane.stop()


async def test_soak_a_room_keeps_its_picture_while_a_hostile_subscriber_and_publisher_send_junk():
    """A short soak in CI; MEDIA_SOAK_SECONDS=60 for the issue's full minute."""
    seconds = float(os.environ.get("MEDIA_SOAK_SECONDS", "8"))
    plane = make_plane(misbehaving_errors=0)  # keep the hostile ones in the room the whole time
    await plane.start()
    await plane.open_room(ROOM)
    try:
        pub = await Publisher.connect(plane, ROOM, "lead", source=1)
        goods = [await Subscriber.connect(plane, ROOM, f"class-{i}", audio_slots=0) for i in range(2)]
        hostile_sub = await Subscriber.connect(plane, ROOM, "hostile-sub", audio_slots=0)
        hostile_pub = await Subscriber.connect(
            plane, ROOM, "hostile-pub", publish_source=9, video_slots=0, audio_slots=0
        )
        await frames_go_on(goods, 15)
        room = plane.rooms[ROOM]
        dt = room.participants["hostile-sub"].slots[0]
        hp = room.participants["hostile-pub"]
        hp_camera = hp.inbound[TrackKind.CAMERA]
        sub_dtls, pub_dtls = client_dtls(hostile_sub), client_dtls(hostile_pub)
        rnd = random.Random(16)
        # The frame rate without hostile peers first, on this (shared, busy) machine, then with them.
        counts = [len(g.frames) for g in goods]
        await asyncio.sleep(seconds / 2)
        calm = [(len(g.frames) - before) / (seconds / 2) for g, before in zip(goods, counts, strict=True)]
        counts = [len(g.frames) for g in goods]
        started = time.monotonic()
        loops = 0
        while time.monotonic() - started < seconds and loops < 100_000:
            loops += 1
            last = dt.rw.last_seq
            await sub_dtls._send_rtp(build_nack(1, dt.ssrc, [(last - k) & 0xFFFF for k in range(0, 300, 2)]))
            await sub_dtls._send_rtp(build_pli(1, dt.ssrc))
            junk = bytes([0x80 | rnd.randrange(32), rnd.choice([200, 201, 205, 206])]) + rnd.randbytes(60)
            await sub_dtls._send_rtp(junk)
            seq = rnd.getrandbits(16)
            pt = rnd.choice([*hp_camera.codecs, *hp_camera.rtx_apt, 0])
            size = rnd.choice([0, 10, 1000, 1344])
            with contextlib.suppress(Exception):  # the client's own SRTP refuses some (replay check)
                await pub_dtls._send_rtp(rtp(seq, rnd.getrandbits(32), hp_camera.ssrc or 1, rnd.randbytes(size), pt))
            # and what the client's SRTP would refuse, straight after the SFU's decryption
            await hp.peer._on_rtp(rtp(seq + 1, 0, hp_camera.ssrc or 1, rnd.randbytes(1450), pt), 0)
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        for g, before, calm_fps in zip(goods, counts, calm, strict=True):
            fps = (len(g.frames) - before) / elapsed
            assert fps >= 0.6 * calm_fps, f"a well-behaved classroom dropped from {calm_fps:.1f} to {fps:.1f} fps"
            numbers = [f.number for f in g.frames[-int(elapsed * fps) :]]
            assert numbers == sorted(set(numbers))
            assert numbers[-1] - numbers[0] + 1 - len(numbers) <= 3, "pictures lost to the hostile ones"
        stats = await plane.stats(ROOM)
        assert stats["participants"]["lead"]["errors"] == 0
        for c in (*goods, hostile_sub, hostile_pub):
            await c.close()
        await pub.close()
    finally:
        await plane.stop()
