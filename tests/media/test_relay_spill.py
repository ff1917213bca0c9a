"""One lesson over two worker processes: the owner's worker admits 2 subscriptions, the next classrooms
join a copy of the room in the other worker, linked by a relay link that nobody configured."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamError
from media_clients import Publisher, Received, Subscriber, read_number

from media.api import EventKind, MediaEvent
from media.config import MediaCapacityError, MediaConfig
from media.workers import WorkerMediaPlane

ROOM = "famous-school"
LEAD_SOURCE, TALKBACK_SOURCE = 1, 2


@pytest.fixture
async def plane(request: pytest.FixtureRequest) -> AsyncIterator[tuple[WorkerMediaPlane, list[MediaEvent]]]:
    workers, capacity = getattr(request, "param", (2, 2))
    plane = WorkerMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=48000,
                                         udp_port_max=48999, workers=workers, max_subscriptions_per_worker=capacity))
    await plane.start()
    events: list[MediaEvent] = []

    async def collect() -> None:
        async for e in plane.events():
            events.append(e)

    collector = asyncio.ensure_future(collect())
    try:
        yield plane, events
    finally:
        await plane.stop()
        collector.cancel()


async def until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout} s")
        await asyncio.sleep(0.05)


def watch(track: Any, into: list[Received]) -> asyncio.Task[None]:
    """Decode a client's received video track, keeping the numbers drawn in its frames."""

    async def run() -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            source, number = read_number(frame)
            into.append(Received(source, number, time.monotonic()))

    return asyncio.ensure_future(run())


async def until_async(check: Callable[[dict[str, Any]], bool], plane: WorkerMediaPlane) -> None:
    deadline = time.monotonic() + 10
    while not check(await plane.stats(ROOM)):
        assert time.monotonic() < deadline, "the room's stats never showed it"
        await asyncio.sleep(0.1)


def camera_sent(link: dict[str, Any]) -> int:
    return sum(s["packets_sent"] for s in link["sent"] if s["participant_id"] == "lead" and s["track"] == "camera")


async def test_a_lesson_larger_than_a_worker_spills_into_a_linked_copy(plane):
    plane, events = plane
    await plane.open_room(ROOM)
    lead = await Publisher.connect(plane, ROOM, "lead", source=LEAD_SOURCE, recv_slots=True)
    lead_sees: list[Received] = []
    lead_watch = watch(lead.pc.getTransceivers()[2].receiver.track, lead_sees)
    classes: dict[str, Subscriber] = {}
    try:
        for name in ("class-1", "class-2", "class-3", "class-4"):
            classes[name] = await Subscriber.connect(
                plane, ROOM, name, video_slots=3, audio_slots=1, decode_all=True,
                publish_source=TALKBACK_SOURCE if name == "class-3" else None)
        # the two workers are full now: a fifth classroom is refused, as before
        with pytest.raises(MediaCapacityError):
            await Subscriber.connect(plane, ROOM, "class-5")

        for sub in classes.values():
            await sub.wait_frames(30, source=LEAD_SOURCE, timeout=40)
        stats = await plane.stats(ROOM)
        where = {pid: p["worker_pid"] for pid, p in stats["participants"].items()}
        owner = plane.worker_pids()[ROOM]
        assert where["lead"] == where["class-1"] == where["class-2"] == owner
        assert where["class-3"] == where["class-4"] != owner
        [copy] = stats["copies"]
        assert copy["worker_pid"] == where["class-3"] and copy["participants"] == ["class-3", "class-4"]
        first_keyframes = {e.participant_id for e in events if e.kind == EventKind.FIRST_KEYFRAME}
        assert {"class-3", "class-4"} <= first_keyframes  # events of the copy's classrooms reach us

        # Each track crosses the link once, however many classrooms watch it in the copy: count it.
        before = await plane.stats(ROOM)
        await asyncio.sleep(3)
        after = await plane.stats(ROOM)
        [link0], [link1] = before["links"], after["links"]
        assert link1["errors"] == 0 and after["copies"][0]["links"][0]["errors"] == 0
        sent = camera_sent(link1) - camera_sent(link0)
        published = (after["participants"]["lead"]["published"]["camera"]["packets"]
                     - before["participants"]["lead"]["published"]["camera"]["packets"])
        assert published > 50
        assert 0.9 <= sent / published <= 1.05, (sent, published)
        for name in ("class-3", "class-4"):  # ...and the copy served both of its classrooms from it
            slots0, slots1 = (s["participants"][name]["slots"] for s in (before, after))
            served = [slots1[m]["packets_sent"] - slots0[m]["packets_sent"] for m in slots1
                      if slots1[m]["source"] == {"participant_id": "lead", "track": "camera"}]
            assert served and served[0] >= 0.9 * sent, (name, served, sent)
        assert all(s["sending"] for s in link1["sent"] if s["participant_id"] == "lead")
        assert stats["refused_joins"] == 1  # class-5; the two that spilled were not refusals

        # Junk at both ends' relay ports, from an address that is not the other end's: dropped, counted.
        copy_link = copy["links"][0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            for port_of in (copy_link["local"], link1["local"]):
                stranger.sendto(secrets.token_bytes(200), tuple(port_of))
                stranger.sendto(b"\xc1\x01\x00\x01" + secrets.token_bytes(60), tuple(port_of))
        await until_async(lambda s: s["copies"][0]["links"][0]["wrong_address"] >= 2
                          and s["links"][0]["wrong_address"] >= 2, plane)
        count = len(classes["class-4"].frames)
        await classes["class-4"].wait_frames(count + 15)  # the copy's classrooms go on

        # Talk-back from a classroom in the copy, to the lead and to every classroom (to_all).
        await plane.set_talkback(ROOM, "class-3", to_all=True)
        await until(lambda: sum(f.source == TALKBACK_SOURCE for f in lead_sees) >= 15, 30, "the lead sees class-3")
        for name in ("class-2", "class-4"):
            sub = classes[name]
            await until(lambda s=sub: any(sum(f.source == TALKBACK_SOURCE for f in got) >= 10
                                          for got in s.by_mid.values()), 30, f"{name} sees class-3")

        # Leaving works for a classroom of the copy; its talk-back ends when it leaves.
        await plane.leave(ROOM, "class-3")
        await until(lambda: any(e.kind == EventKind.TALKBACK and e.detail.get("reason") for e in events),
                    10, "talk-back ended")
        assert any(e.kind == EventKind.SUBSCRIBER_DOWN and e.participant_id == "class-3"
                   and e.detail["reason"] == "left" for e in events)
        assert "class-3" not in (await plane.stats(ROOM))["participants"]

        # Closing the room closes its copy and the link on both workers.
        await plane.close_room(ROOM)
        everything = await plane.stats()
        assert everything["rooms"] == {}
        assert all(w["copies"] == [] and w["rooms"] == [] for w in everything["workers"])
        await until(lambda: any(e.kind == EventKind.SUBSCRIBER_DOWN and e.participant_id == "class-4"
                                and e.detail["reason"] == "room_closed" for e in events), 10, "class-4 closed")
        assert [e.kind for e in events].count(EventKind.ROOM_CLOSED) == 1
    finally:
        lead_watch.cancel()
        for sub in classes.values():
            with contextlib.suppress(Exception):
                await sub.close()
        await lead.close()


async def test_when_the_owner_dies_its_copy_goes_and_the_room_is_lost_once(plane):
    plane, events = plane
    await plane.open_room(ROOM)
    lead = await Publisher.connect(plane, ROOM, "lead")
    subs = [await Subscriber.connect(plane, ROOM, f"class-{i}", audio_slots=0) for i in range(3)]
    try:
        await subs[2].wait_frames(20, timeout=40)
        stats = await plane.stats(ROOM)
        copy_pid = stats["participants"]["class-2"]["worker_pid"]
        owner = plane.worker_pids()[ROOM]
        assert copy_pid != owner
        os.kill(owner, signal.SIGKILL)
        await until(lambda: any(e.kind == EventKind.ROOM_LOST for e in events), 10, "room lost")
        lost = [e for e in events if e.kind == EventKind.ROOM_LOST]
        assert [e.room_id for e in lost] == [ROOM] and lost[0].detail["copies"] == [copy_pid]

        async def copy_gone() -> bool:
            workers = (await plane.stats())["workers"]
            return all(not w.get("copies") for w in workers if w["pid"] == copy_pid)

        deadline = time.monotonic() + 10
        while not await copy_gone():
            assert time.monotonic() < deadline, "the copy outlived its owner"
            await asyncio.sleep(0.1)
        everything = await plane.stats()
        assert ROOM not in everything["rooms"]
        await until(lambda: any(e.kind == EventKind.SUBSCRIBER_DOWN and e.participant_id == "class-2"
                                and e.detail["reason"] == "room_lost" for e in events), 10, "the copy's classroom told")
        await plane.open_room(ROOM)  # and the lesson can be opened again
        assert plane.worker_pids()[ROOM] != owner
    finally:
        for sub in subs:
            await sub.close()
        await lead.close()


async def test_when_a_copy_dies_its_classrooms_are_told_and_the_lesson_goes_on_at_the_owner(plane):
    plane, events = plane
    await plane.open_room(ROOM)
    lead = await Publisher.connect(plane, ROOM, "lead")
    subs = [await Subscriber.connect(plane, ROOM, f"class-{i}", audio_slots=0) for i in range(3)]
    try:
        await subs[2].wait_frames(20, timeout=40)
        stats = await plane.stats(ROOM)
        copy_pid = stats["participants"]["class-2"]["worker_pid"]
        assert copy_pid != plane.worker_pids()[ROOM] and len(stats["links"]) == 1
        os.kill(copy_pid, signal.SIGKILL)
        await until(lambda: any(e.kind == EventKind.SUBSCRIBER_DOWN and e.participant_id == "class-2"
                                and e.detail["reason"] == "worker_lost" for e in events), 10, "class-2 told")
        assert not any(e.kind == EventKind.ROOM_LOST for e in events)
        deadline = time.monotonic() + 10
        while (await plane.stats(ROOM))["links"]:
            assert time.monotonic() < deadline, "the owner kept the dead copy's link"
            await asyncio.sleep(0.1)
        count = len(subs[0].frames)
        await subs[0].wait_frames(count + 20)  # the owner's classrooms go on
        assert set((await plane.stats(ROOM))["participants"]) == {"lead", "class-0", "class-1"}
    finally:
        for sub in subs:
            await sub.close()
        await lead.close()


@pytest.mark.parametrize("plane", [(3, 1)], indirect=True)
async def test_talkback_from_one_copy_reaches_a_classroom_in_another_through_the_owner(plane):
    plane, _events = plane
    await plane.open_room(ROOM)
    lead = await Publisher.connect(plane, ROOM, "lead", source=LEAD_SOURCE)
    # one classroom per worker: the owner's, then one in each of the two copies
    near = await Subscriber.connect(plane, ROOM, "class-near", audio_slots=0)
    called = await Subscriber.connect(plane, ROOM, "class-called", video_slots=1, audio_slots=0,
                                      publish_source=TALKBACK_SOURCE)
    far = await Subscriber.connect(plane, ROOM, "class-far", video_slots=3, audio_slots=0, decode_all=True)
    subs = [near, called, far]
    try:
        for sub in subs:
            await sub.wait_frames(20, source=LEAD_SOURCE, timeout=40)
        stats = await plane.stats(ROOM)
        assert len({p["worker_pid"] for p in stats["participants"].values()}) == 3
        assert len(stats["links"]) == 2 and len(stats["copies"]) == 2
        await plane.set_talkback(ROOM, "class-called", to_all=True)
        await until(lambda: any(sum(f.source == TALKBACK_SOURCE for f in got) >= 10 for got in far.by_mid.values()),
                    30, "class-far sees class-called")
        # up one link to the owner, down the other: the owner sends it once to the far copy
        after = await plane.stats(ROOM)
        sent = [s for link in after["links"] for s in link["sent"] if s["participant_id"] == "class-called"
                and s["track"] == "camera" and s["sending"]]
        assert len(sent) == 1 and sent[0]["packets_sent"] > 0
    finally:
        for sub in subs:
            await sub.close()
        await lead.close()


async def test_a_room_lost_with_its_owner_can_be_opened_again_at_once_where_its_copy_was(plane):
    plane, events = plane
    await plane.open_room(ROOM)
    lead = await Publisher.connect(plane, ROOM, "lead")
    subs = [await Subscriber.connect(plane, ROOM, f"class-{i}", audio_slots=0) for i in range(3)]
    await subs[2].wait_frames(10, timeout=40)
    copy_pid = (await plane.stats(ROOM))["participants"]["class-2"]["worker_pid"]
    for client in (lead, *subs):
        await client.close()
    os.kill(plane.worker_pids()[ROOM], signal.SIGKILL)
    await until(lambda: any(e.kind == EventKind.ROOM_LOST for e in events), 10, "room lost")
    await plane.open_room(ROOM)  # as signaling does on room_lost: at once, the copy may still be there
    assert plane.worker_pids()[ROOM] == copy_pid  # the only live worker with no room
    lead = await Publisher.connect(plane, ROOM, "lead")
    sub = await Subscriber.connect(plane, ROOM, "class-0", audio_slots=0)
    try:
        await sub.wait_frames(20, timeout=30)
        await asyncio.sleep(1.0)  # the late clean-up of the old copy must not close the new room
        count = len(sub.frames)
        await sub.wait_frames(count + 10)
        snapshot = await plane.stats(ROOM)
        assert not snapshot["copy"] and set(snapshot["participants"]) == {"lead", "class-0"}
    finally:
        await sub.close()
        await lead.close()
