"""The media plane in the calling process: rooms run on the caller's event loop.

Used by tests and benchmarks directly, and inside each worker process by `media.workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from media.api import (
    EventKind,
    MediaError,
    MediaEvent,
    ParticipantRole,
    RecordingRequest,
    SlotKind,
    TrackKind,
    candidate_fields,
)
from media.config import CAPACITY_REASON, MediaCapacityError, MediaConfig
from media.event_hub import EventHub
from media.ratelimit import FairShares
from media.relay import RelayLink, open_link_socket
from media.replay import ReplayError, ReplayFiles, ReplayPublisher
from media.room import Room

logger = logging.getLogger(__name__)
FINISH_TIMEOUT_S = 60.0  # how long stopping waits for recordings to finalise (the rest is done at the next start)


class LocalMediaPlane:
    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self.rooms: dict[str, Room] = {}
        self._hub = EventHub()
        self._started = False
        # Joins admitted but not finished yet, so that a burst of concurrent joins cannot overshoot
        # the capacity while their SDP work awaits.
        self._joining = 0
        self.refused_joins = 0
        # the worker's retransmissions, shared equally among its rooms that retransmit (media/ratelimit.py)
        self.retransmit_shares = FairShares(config.worker_retransmissions_per_second)
        # closed rooms' recordings being finalised (each in a thread), awaited by stop()
        self._finishing: set[asyncio.Task[None]] = set()
        # room id -> the recording published into it as its lead, and the task that tells of its end
        self._replays: dict[str, tuple[ReplayPublisher, asyncio.Task[None]]] = {}

    def subscriptions(self) -> int:
        """Subscriptions this plane carries: every participant but the leads, plus joins under way."""
        held = sum(
            1 for room in self.rooms.values() for p in room.participants.values() if p.role != ParticipantRole.LEAD
        )
        return held + self._joining

    def _admit(self, room: Room, participant_id: str, role: ParticipantRole, count: bool = True) -> bool:
        """Whether this join needs a new subscription; raises MediaCapacityError when none is left
        (counted as a refusal unless `count` is false: the join is then tried in a copy elsewhere)."""
        if role == ParticipantRole.LEAD:
            return False  # a lesson never loses its teacher to capacity; one lead per room
        old = room.participants.get(participant_id)
        if old is not None and old.role != ParticipantRole.LEAD:
            return False  # a reconnect replaces its own subscription
        limit = self.config.max_subscriptions_per_worker
        if limit and self.subscriptions() >= limit:
            if count:
                self.refused_joins += 1
                room.refused_joins += 1
            raise MediaCapacityError(
                f"{CAPACITY_REASON}: this media worker carries {limit} subscriptions; try again later"
            )
        return True

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        for room_id in list(self.rooms):
            await self.close_room(room_id)
        if self._finishing:
            _, pending = await asyncio.wait(set(self._finishing), timeout=FINISH_TIMEOUT_S)
            if pending:
                logger.warning("%d recordings still finalising at stop; their dumps are finalised at the next start",
                               len(pending))
        self._started = False
        self._hub.close()

    def _emit(
        self,
        kind: EventKind,
        room_id: str,
        participant_id: str | None,
        track: TrackKind | None,
        detail: Mapping[str, Any] | None,
    ) -> None:
        self._hub.publish(MediaEvent(kind, room_id, participant_id, track, time.time(), dict(detail or {})))

    def _room(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise MediaError(f"no open room {room_id!r}")
        return room

    async def open_room(
        self, room_id: str, recording: RecordingRequest | None = None, fast_start: bool = False
    ) -> None:
        """Open a room; opening one that is already open does nothing."""
        if not self._started:
            raise MediaError("the media plane is not started")
        existing = self.rooms.get(room_id)
        if existing is not None and not existing.is_copy:
            return
        if existing is not None:
            await self.close_copy(room_id)  # a copy whose origin is gone: the room starts again here
        self.rooms[room_id] = Room(
            room_id, self.config, self._emit, recording, shares=self.retransmit_shares, fast_start=fast_start
        )
        self._emit(EventKind.ROOM_OPENED, room_id, None, None,
                   {"pid": os.getpid(), "recording": recording is not None})

    async def close_room(self, room_id: str) -> None:
        await self._close(room_id, "room_closed")

    async def _close(self, room_id: str, reason: str) -> None:
        room = self._room(room_id)
        await self.stop_replay(room_id)
        del self.rooms[room_id]
        await room.close(reason)
        if not room.is_copy:  # a copy's room closes with its origin's, which says so
            self._emit(EventKind.ROOM_CLOSED, room_id, None, None, None)
        if room.recorder is not None:
            task = asyncio.get_running_loop().create_task(room.finish_recording())
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    async def join(
        self,
        room_id: str,
        participant_id: str,
        role: ParticipantRole,
        offer_sdp: str,
        tracks: Mapping[str, TrackKind] | None = None,
        slots: Mapping[str, SlotKind] | None = None,
    ) -> str:
        return await self._join(room_id, participant_id, role, offer_sdp, tracks, slots, count_refusal=True)

    async def join_or_spill(
        self,
        room_id: str,
        participant_id: str,
        role: ParticipantRole,
        offer_sdp: str,
        tracks: Mapping[str, TrackKind] | None = None,
        slots: Mapping[str, SlotKind] | None = None,
    ) -> str:
        """`join`, but a refusal for capacity is not counted: the caller tries a copy of the room in
        another worker next (media/workers.py)."""
        return await self._join(room_id, participant_id, role, offer_sdp, tracks, slots, count_refusal=False)

    async def _join(
        self,
        room_id: str,
        participant_id: str,
        role: ParticipantRole,
        offer_sdp: str,
        tracks: Mapping[str, TrackKind] | None,
        slots: Mapping[str, SlotKind] | None,
        count_refusal: bool,
    ) -> str:
        room = self._room(room_id)
        role = ParticipantRole(role)
        reserved = self._admit(room, participant_id, role, count_refusal)
        if reserved:
            self._joining += 1
        try:
            return await room.join(participant_id, role, offer_sdp, tracks, slots)
        finally:
            if reserved:
                self._joining -= 1

    async def leave(self, room_id: str, participant_id: str) -> None:
        await self._room(room_id).leave(participant_id)

    async def add_candidate(self, room_id: str, participant_id: str, candidate: Mapping[str, Any]) -> None:
        await self._room(room_id).add_candidate(participant_id, *candidate_fields(candidate))

    async def set_talkback(self, room_id: str, participant_id: str | None, to_all: bool = False) -> None:
        self._room(room_id).set_talkback(participant_id, to_all)

    async def start_replay(self, room_id: str, camera: str, screen: str | None = None, offset_s: float = 0.0) -> None:
        self._room(room_id)
        await self.stop_replay(room_id)
        files = ReplayFiles(Path(camera), Path(screen) if screen else None)
        publisher = ReplayPublisher(self, room_id, files, offset_s)
        try:
            await publisher.start()
        except ReplayError as exc:
            await publisher.stop()
            raise MediaError(str(exc)) from None
        except BaseException:
            await publisher.stop()
            raise
        task = asyncio.get_running_loop().create_task(self._replay_until_the_end(room_id, publisher))
        self._replays[room_id] = (publisher, task)

    async def _replay_until_the_end(self, room_id: str, publisher: ReplayPublisher) -> None:
        await publisher.ended.wait()
        if self._replays.get(room_id, (None,))[0] is publisher:
            del self._replays[room_id]
        await publisher.stop()
        self._emit(EventKind.REPLAY_ENDED, room_id, publisher.participant_id, None,
                   {"packets": publisher.packets_sent, "offset_s": publisher.offset_s})

    async def stop_replay(self, room_id: str) -> None:
        running = self._replays.pop(room_id, None)
        if running is None:
            return
        publisher, task = running
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await publisher.stop()

    async def free_subscriptions(self) -> int | None:
        """Subscriptions this plane can still admit (None: no limit)."""
        limit = self.config.max_subscriptions_per_worker
        return max(0, limit - self.subscriptions()) if limit else None

    # -- relay links between copies of a room (media/relay.py) -------------------------------------

    async def relay_copy(self, room_id: str, link_id: str, key: bytes, fast_start: bool = False) -> tuple[str, int]:
        """Open a copy of a room owned elsewhere (if not yet open here), with one end of a link to
        the origin bound; returns its address, to hand to the origin (`relay_origin`). `fast_start` as
        the room was opened with (a replay)."""
        if not self._started:
            raise MediaError("the media plane is not started")
        room = self.rooms.get(room_id)
        if room is None:
            room = Room(room_id, self.config, self._emit, None, shares=self.retransmit_shares, fast_start=fast_start)
            room.is_copy = True
            self.rooms[room_id] = room
        elif not room.is_copy:
            raise MediaError(f"room {room_id!r} is owned here; a copy goes to another worker")
        return self._add_link(room, link_id, key, origin=False, peer=None)

    async def relay_origin(self, room_id: str, link_id: str, key: bytes, peer: tuple[str, int]) -> tuple[str, int]:
        """The upstream end of a link to a copy at `peer`; returns its address (`relay_connect`). The room
        here is the origin, or a copy that passes the room on down a chain (a region's edge to a county's)."""
        room = self._room(room_id)
        return self._add_link(room, link_id, key, origin=True, peer=peer)

    async def relay_connect(self, room_id: str, link_id: str, peer: tuple[str, int]) -> None:
        """The copy's end learns the origin's address: media and state start flowing."""
        self._link(room_id, link_id).connect(peer)

    async def close_copy(self, room_id: str, lost: bool = False) -> None:
        """Close this worker's copy of a room (its origin closed, or died: `lost`, and its classrooms are
        told `room_lost`); an owned room is left alone."""
        room = self.rooms.get(room_id)
        if room is not None and room.is_copy:
            await self._close(room_id, "room_lost" if lost else "room_closed")

    async def relay_drop(self, room_id: str, link_id: str) -> None:
        """Close one link (its other end is gone); the room goes on."""
        link = self._link(room_id, link_id)
        link.room.links.remove(link)
        link.close()
        link.room.rebind(time.monotonic())

    def _add_link(
        self, room: Room, link_id: str, key: bytes, origin: bool, peer: tuple[str, int] | None
    ) -> tuple[str, int]:
        if any(link.link_id == link_id for link in room.links):
            raise MediaError(f"relay link {link_id!r} exists")
        try:
            sock = open_link_socket(self.config.relay_address)
        except OSError as exc:
            raise MediaError(f"cannot open a relay link on {self.config.relay_address}: {exc}") from exc
        link = RelayLink(room, link_id, bytes(key), origin, sock)
        room.links.append(link)
        link.listen()
        if peer is not None:
            link.connect(peer)
        host, port = link.local
        return str(host), int(port)

    def _link(self, room_id: str, link_id: str) -> RelayLink:
        for link in self._room(room_id).links:
            if link.link_id == link_id:
                return link
        raise MediaError(f"no relay link {link_id!r} in room {room_id!r}")

    async def stats(self, room_id: str | None = None) -> dict[str, Any]:
        if room_id is not None:
            return self._room(room_id).snapshot()
        return {
            "pid": os.getpid(),
            "rooms": {rid: room.snapshot() for rid, room in self.rooms.items()},
            "events_dropped": self._hub.dropped,
            "subscriptions": self.subscriptions(),
            "capacity": self.config.max_subscriptions_per_worker,
            "refused_joins": self.refused_joins,
        }

    def events(self) -> AsyncIterator[MediaEvent]:
        return self._hub.subscribe()
