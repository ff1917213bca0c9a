"""The media plane in worker processes: one per core, each owning whole rooms.

The control process (signaling, scheduler, monitoring) holds a `WorkerMediaPlane`, a proxy that
sends each call over a pipe to the worker owning the room and relays events back. It never sees a
packet: ICE sockets, DTLS and forwarding live in the worker, which runs a `LocalMediaPlane`. Python
runs one thread of bytecode per process, so processes, not threads, multiply forwarding capacity.

A worker that dies takes its rooms with it: the proxy reports ROOM_LOST for each, starts a
replacement worker, and the rooms can be opened again (on any live worker). Other workers go on.

A room whose worker is full spills: the next subscriber joins a copy of the room in the least loaded
other worker, linked to the owner's by a relay link (media/relay.py) that this proxy sets up (an
address and a random key for each end). Calls for a participant go to the worker it joined; the
room's stats gather its copies' participants; closing the room closes its copies; if the owner dies,
its copies are closed with it and the room is reported lost once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
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
from media.config import MediaCapacityError, MediaConfig
from media.event_hub import EventHub

logger = logging.getLogger(__name__)

_CALLS = frozenset(
    {"open_room", "close_room", "join", "leave", "add_candidate", "set_talkback", "start_replay", "stop_replay",
     "stats", "process", "stop", "join_or_spill", "free_subscriptions", "close_copy", "relay_copy", "relay_origin",
     "relay_connect", "relay_drop"}
)
_START_TIMEOUT = 60.0  # a spawned worker imports aiortc, av and numpy before it is ready
PROCESS_TIMEOUT = 2.0  # a worker that cannot say its CPU and loop lag in this time is reported as not responding


class LoopLag:
    """How late this process's event loop runs a timer: a sign that forwarding (or anything else on the
    loop) is falling behind. A timer every `interval` seconds; `worst()` is the largest lateness of the
    last `window` timers (5 s by default), so a scrape every few seconds sees a stall that has passed."""

    def __init__(self, interval: float = 0.25, window: int = 20) -> None:
        self.interval = interval
        self._lags: deque[float] = deque(maxlen=window)
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._tick, loop)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self._lags.append(max(0.0, now - self._due))
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._tick, loop)

    def worst(self) -> float:
        return max(self._lags, default=0.0)

    def take_worst(self) -> float:
        """The worst lateness of the timers kept so far, forgetting them: a benchmark's per-phase figure."""
        worst = self.worst()
        self._lags.clear()
        return worst


def process_figures(lag: LoopLag) -> dict[str, Any]:
    """This process's CPU seconds (all threads, user + system) and its event loop's recent worst lag."""
    return {"pid": os.getpid(), "cpu_seconds": time.process_time(), "loop_lag_s": round(lag.worst(), 6)}


def merge_copies(
    origin: dict[str, Any], origin_pid: int | None, copies: list[tuple[int | None, dict[str, Any]]]
) -> dict[str, Any]:
    """One room's snapshot from its owner's and its copies': every participant (each with the
    `worker_pid` it is in), the owner's links, and per copy its pid, links and refused joins."""
    participants = {pid: {**p, "worker_pid": origin_pid} for pid, p in origin.get("participants", {}).items()}
    for pid, snapshot in copies:
        for participant_id, p in snapshot.get("participants", {}).items():
            participants.setdefault(participant_id, {**p, "worker_pid": pid})
    return {
        **origin,
        "participants": participants,
        "worker_pid": origin_pid,
        "copies": [{"worker_pid": pid, "links": s.get("links", []), "refused_joins": s.get("refused_joins", 0),
                    "participants": sorted(s.get("participants", {}))} for pid, s in copies],
    }


# -- worker side -----------------------------------------------------------------------------------


def worker_main(config: MediaConfig, conn: Connection) -> None:
    """Entry point of a worker process."""
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, conn))


async def _serve(config: MediaConfig, conn: Connection) -> None:
    from media.local import LocalMediaPlane  # imported here: the control process never loads aiortc's path

    plane = LocalMediaPlane(config)
    await plane.start()
    loop = asyncio.get_running_loop()
    lag = LoopLag()
    lag.start()
    done = loop.create_future()
    tasks: set[asyncio.Task[None]] = set()

    def send(message: tuple[Any, ...]) -> None:
        try:
            conn.send(message)
        except (OSError, EOFError):
            if not done.done():
                done.set_result(None)

    async def relay_events() -> None:
        async for e in plane.events():
            send(("event", str(e.kind), e.room_id, e.participant_id, e.track and str(e.track), e.at, dict(e.detail)))

    async def call(call_id: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            if method not in _CALLS:
                raise MediaError(f"unknown call {method}")
            if method == "stop":
                await plane.stop()
                send(("result", call_id, True, None))
                if not done.done():
                    done.set_result(None)
                return
            if method == "process":
                send(("result", call_id, True, process_figures(lag)))
                return
            value = await getattr(plane, method)(*args, **kwargs)
            if method == "stats" and not args:
                value = {**value, "process": process_figures(lag)}  # one scrape sees every worker's load
            send(("result", call_id, True, value))
        except MediaError as exc:
            send(("result", call_id, False, str(exc), getattr(exc, "code", None)))
        except Exception as exc:
            logger.exception("worker call %s failed", method)
            send(("result", call_id, False, f"{type(exc).__name__}: {exc}"))

    def readable() -> None:
        try:
            while conn.poll():
                message = conn.recv()
                _, call_id, method, args, kwargs = message
                task = loop.create_task(call(call_id, method, args, kwargs))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (EOFError, OSError):
            # The control process went away: nobody is left to serve.
            if not done.done():
                done.set_result(None)

    events_task = loop.create_task(relay_events())
    loop.add_reader(conn.fileno(), readable)
    send(("ready", os.getpid()))
    try:
        await done
    finally:
        lag.stop()
        loop.remove_reader(conn.fileno())
        await plane.stop()
        events_task.cancel()


# -- control side ----------------------------------------------------------------------------------


class _Worker:
    def __init__(self, index: int, process: BaseProcess, conn: Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.pid = process.pid
        self.rooms: set[str] = set()
        self.copies: set[str] = set()  # rooms owned by another worker that this one carries a copy of
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.alive = True


class WorkerMediaPlane:
    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._room_worker: dict[str, _Worker] = {}
        self._hub = EventHub()
        self._ids = itertools.count(1)
        self._indexes = itertools.count()
        self._stopping = False
        self._respawns: set[asyncio.Task[None]] = set()
        # spill: each room's copies (worker index -> relay link id), the worker each participant
        # joined, and one lock per room so two joins never link the same copy twice
        self._copies: dict[str, dict[int, str]] = {}
        self._where: dict[tuple[str, str], _Worker] = {}
        self._copy_locks: dict[str, asyncio.Lock] = {}
        self._fast_start: set[str] = set()  # rooms opened with `fast_start` (replays): their copies too
        self._node_copies: set[str] = set()  # rooms held here as copies of a room owned on another node (an edge)
        self._cleanups: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        count = self.config.workers or os.cpu_count() or 1
        self._stopping = False
        await asyncio.gather(*(self._spawn() for _ in range(count)))

    async def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=worker_main, args=(self.config, child), daemon=True, name="media-worker")
        await asyncio.to_thread(process.start)
        child.close()
        worker = _Worker(next(self._indexes), process, parent)
        self._workers.append(worker)
        asyncio.get_running_loop().add_reader(parent.fileno(), self._readable, worker)
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), _START_TIMEOUT)
        except (TimeoutError, MediaError) as exc:
            self._lost(worker)
            raise MediaError("a media worker did not start") from exc
        return worker

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._respawns):
            task.cancel()
        workers = [w for w in self._workers if w.alive]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(*(self._call(w, "stop") for w in workers), return_exceptions=True), 10.0
            )
        for w in workers:
            await asyncio.to_thread(w.process.join, 5.0)
            if w.process.is_alive():
                w.process.kill()
                await asyncio.to_thread(w.process.join, 5.0)
            self._lost(w, announce=False)
        for task in list(self._cleanups):
            task.cancel()
        self._workers.clear()
        self._room_worker.clear()
        self._copies.clear()
        self._where.clear()
        self._hub.close()

    # -- pipe -------------------------------------------------------------------------------------

    def _readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            self._lost(worker)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        tag = message[0]
        if tag == "result":
            _, call_id, ok, value = message[:4]
            code = message[4] if len(message) > 4 else None
            future = worker.pending.pop(call_id, None)
            if future is not None and not future.done():
                if ok:
                    future.set_result(value)
                elif code == MediaCapacityError.code:
                    future.set_exception(MediaCapacityError(value))
                else:
                    future.set_exception(MediaError(value))
        elif tag == "event":
            _, kind, room_id, participant_id, track, at, detail = message
            self._hub.publish(
                MediaEvent(EventKind(kind), room_id, participant_id, TrackKind(track) if track else None, at, detail)
            )
        elif tag == "ready" and not worker.ready.done():
            worker.ready.set_result(None)

    def _lost(self, worker: _Worker, announce: bool = True) -> None:
        if not worker.alive:
            return
        worker.alive = False
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            loop.remove_reader(worker.conn.fileno())
        with contextlib.suppress(Exception):
            worker.conn.close()
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(MediaError(f"media worker {worker.pid} died"))
        worker.pending.clear()
        if not worker.ready.done():
            worker.ready.set_exception(MediaError("worker exited before it was ready"))
            worker.ready.exception()  # retrieved here so an unawaited failure is not logged
        if worker in self._workers:
            self._workers.remove(worker)
        for room_id in sorted(worker.rooms):
            if self._room_worker.get(room_id) is worker:
                del self._room_worker[room_id]
            # its copies in other workers go with it: the room is lost once, for everyone in it
            copies = self._forget_room(room_id)
            if announce and not self._stopping:
                self._later(self._close_copies(room_id, copies, lost=True))
            if announce:
                detail = {"worker_pid": worker.pid, "copies": [w.pid for w in copies]}
                self._hub.publish(MediaEvent(EventKind.ROOM_LOST, room_id, None, None, time.time(), detail))
        worker.rooms.clear()
        for room_id in sorted(worker.copies):
            # a copy died: its participants are gone, the room goes on at its owner and other copies
            link_id = self._copies.get(room_id, {}).pop(worker.index, None)
            owner = self._room_worker.get(room_id)
            if link_id is not None and owner is not None and announce and not self._stopping:
                self._later(self._drop_link(owner, room_id, link_id))
            for key, where in list(self._where.items()):
                if key[0] == room_id and where is worker:
                    del self._where[key]
                    if announce:
                        self._hub.publish(MediaEvent(EventKind.SUBSCRIBER_DOWN, room_id, key[1], None, time.time(),
                                                     {"reason": "worker_lost", "worker_pid": worker.pid}))
        worker.copies.clear()
        if announce and not self._stopping:
            logger.error("media worker %s died; its rooms are lost, starting a replacement", worker.pid)
            task = loop.create_task(self._respawn())
            self._respawns.add(task)
            task.add_done_callback(self._respawns.discard)

    def _later(self, coro: Any) -> None:
        """Run clean-up calls to other workers after a loss, without waiting for them here."""
        task = asyncio.get_running_loop().create_task(coro)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _close_copies(self, room_id: str, copies: list[_Worker], lost: bool = False) -> None:
        for w in copies:
            with contextlib.suppress(MediaError):
                await self._call(w, "close_copy", room_id, lost)

    async def _drop_link(self, owner: _Worker, room_id: str, link_id: str) -> None:
        with contextlib.suppress(MediaError):
            await self._call(owner, "relay_drop", room_id, link_id)

    def _forget_room(self, room_id: str) -> list[_Worker]:
        """Forget a room's copies and participants; the workers that held copies."""
        indexes = self._copies.pop(room_id, {})
        self._copy_locks.pop(room_id, None)
        self._fast_start.discard(room_id)
        self._node_copies.discard(room_id)
        copies = [w for w in self._workers if w.index in indexes and w.alive]
        for w in copies:
            w.copies.discard(room_id)
        for key in [k for k in self._where if k[0] == room_id]:
            del self._where[key]
        return copies

    async def _respawn(self) -> None:
        try:
            await self._spawn()
        except MediaError:
            logger.exception("could not replace a media worker")

    async def _call(self, worker: _Worker, method: str, *args: Any, **kwargs: Any) -> Any:
        if not worker.alive:
            raise MediaError(f"media worker {worker.pid} is gone")
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker.pending[call_id] = future
        try:
            worker.conn.send(("call", call_id, method, args, kwargs))
        except (OSError, EOFError) as exc:
            worker.pending.pop(call_id, None)
            self._lost(worker)
            raise MediaError(f"media worker {worker.pid} is gone") from exc
        return await future

    def _owner(self, room_id: str) -> _Worker:
        worker = self._room_worker.get(room_id)
        if worker is None or not worker.alive:
            raise MediaError(f"no open room {room_id!r}")
        return worker

    # -- MediaPlane -------------------------------------------------------------------------------

    async def open_room(
        self, room_id: str, recording: RecordingRequest | None = None, fast_start: bool = False
    ) -> None:
        if room_id in self._room_worker:
            return
        live = [w for w in self._workers if w.alive and w.ready.done()]
        if not live:
            raise MediaError("no media worker is running")
        worker = min(live, key=lambda w: (len(w.rooms), w.index))
        self._room_worker[room_id] = worker
        worker.rooms.add(room_id)
        if fast_start:
            self._fast_start.add(room_id)
        else:
            self._fast_start.discard(room_id)
        try:
            await self._call(worker, "open_room", room_id, recording, fast_start)
        except MediaError:
            worker.rooms.discard(room_id)
            if self._room_worker.get(room_id) is worker:
                del self._room_worker[room_id]
            raise

    async def close_room(self, room_id: str) -> None:
        worker = self._owner(room_id)
        del self._room_worker[room_id]
        worker.rooms.discard(room_id)
        await self._close_copies(room_id, self._forget_room(room_id))
        await self._call(worker, "close_room", room_id)

    async def join(
        self,
        room_id: str,
        participant_id: str,
        role: ParticipantRole,
        offer_sdp: str,
        tracks: Mapping[str, TrackKind] | None = None,
        slots: Mapping[str, SlotKind] | None = None,
    ) -> str:
        owner = self._owner(room_id)
        role = ParticipantRole(role)
        args = (room_id, participant_id, role, offer_sdp, dict(tracks) if tracks is not None else None,
                dict(slots) if slots is not None else None)
        key = (room_id, participant_id)
        known = self._where.get(key)
        if role == ParticipantRole.LEAD or room_id in self._node_copies:
            # a lesson's lead is always where the room is owned (and always admitted); a copy of a room
            # owned on another node lives in one worker here, and its classrooms join it there
            target = owner
        elif known is not None and known.alive and (known is owner or room_id in known.copies):
            target = known  # a reconnect replaces its own subscription where it is
        else:
            answer, target = await self._join_anywhere(owner, args)
            self._where[key] = target
            return answer
        answer = await self._call(target, "join", *args)
        if known is not None and known is not target and known.alive:
            with contextlib.suppress(MediaError):
                await self._call(known, "leave", room_id, participant_id)  # it moved (became the lead)
        self._where[key] = target
        return answer

    async def _join_anywhere(self, owner: _Worker, args: tuple[Any, ...]) -> tuple[str, _Worker]:
        """A new subscription: at the owner while it has room, else in a copy of the room in the
        least loaded other worker (linked first if it has none). Refused only when every worker is full."""
        room_id = args[0]
        free = await self._free(owner)
        if free is None or free > 0:
            try:
                return await self._call(owner, "join_or_spill", *args), owner
            except MediaCapacityError:
                pass  # filled up meanwhile
        others = [w for w in self._workers if w is not owner and w.alive and w.ready.done()]
        frees = await asyncio.gather(*(self._free(w) for w in others), return_exceptions=True)
        ranked = sorted(
            ((f, w) for f, w in zip(frees, others, strict=True) if not isinstance(f, BaseException) and f != 0),
            key=lambda fw: (-(fw[0] if fw[0] is not None else 1 << 30), fw[1].index),
        )
        for _, worker in ranked:
            try:
                await self._ensure_copy(room_id, owner, worker)
                return await self._call(worker, "join_or_spill", *args), worker
            except MediaCapacityError:
                continue
        # every worker is full: refused (and counted) by the owner, as before there were copies
        return await self._call(owner, "join", *args), owner

    async def _free(self, worker: _Worker) -> int | None:
        return await self._call(worker, "free_subscriptions")

    async def _ensure_copy(self, room_id: str, owner: _Worker, worker: _Worker) -> None:
        """A copy of the room in `worker`, linked to the owner's: both ends bound, then the key and
        each end's address handed to the other."""
        copies = self._copies.setdefault(room_id, {})
        if worker.index in copies:
            return
        lock = self._copy_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            if worker.index in copies:
                return
            link_id = f"{room_id}:{owner.index}>{worker.index}:{next(self._ids)}"
            key = secrets.token_bytes(32)
            copy_addr = await self._call(worker, "relay_copy", room_id, link_id, key,
                                         room_id in self._fast_start)
            try:
                origin_addr = await self._call(owner, "relay_origin", room_id, link_id, key, tuple(copy_addr))
                await self._call(worker, "relay_connect", room_id, link_id, tuple(origin_addr))
            except MediaError:
                with contextlib.suppress(MediaError):
                    await self._call(worker, "close_copy", room_id)
                raise
            if self._room_worker.get(room_id) is not owner:  # closed or lost meanwhile
                with contextlib.suppress(MediaError):
                    await self._call(worker, "close_copy", room_id)
                raise MediaError(f"no open room {room_id!r}")
            copies[worker.index] = link_id
            worker.copies.add(room_id)

    # -- copies of rooms owned on another node (`classroom edge`) ----------------------------------

    async def relay_copy(self, room_id: str, link_id: str, key: bytes, fast_start: bool = False) -> tuple[str, int]:
        """A copy of a room owned on another node, in the worker that holds it already or else the
        least loaded one, with its end of a link bound (`LocalMediaPlane.relay_copy`); its address."""
        worker = self._room_worker.get(room_id)
        if worker is not None and room_id not in self._node_copies:
            raise MediaError(f"room {room_id!r} is owned here; a copy goes to another node")
        if worker is None or not worker.alive:
            live = [w for w in self._workers if w.alive and w.ready.done()]
            if not live:
                raise MediaError("no media worker is running")
            worker = min(live, key=lambda w: (len(w.rooms) + len(w.copies), w.index))
        host, port = await self._call(worker, "relay_copy", room_id, link_id, key, fast_start)
        self._room_worker[room_id] = worker
        worker.rooms.add(room_id)
        self._node_copies.add(room_id)
        return str(host), int(port)

    async def relay_connect(self, room_id: str, link_id: str, peer: tuple[str, int]) -> None:
        await self._call(self._owner(room_id), "relay_connect", room_id, link_id, tuple(peer))

    async def close_copy(self, room_id: str, lost: bool = False) -> None:
        """Close this node's copy of a room owned on another node; a room owned here is left alone."""
        if room_id not in self._node_copies:
            return
        worker = self._room_worker.pop(room_id, None)
        self._forget_room(room_id)
        if worker is not None:
            worker.rooms.discard(room_id)
            await self._call(worker, "close_copy", room_id, lost)

    async def relay_origin(self, room_id: str, link_id: str, key: bytes, peer: tuple[str, int]) -> tuple[str, int]:
        """The owner's end of a link to a copy of the room on another node at `peer`; its address."""
        host, port = await self._call(self._owner(room_id), "relay_origin", room_id, link_id, key, tuple(peer))
        return str(host), int(port)

    async def relay_drop(self, room_id: str, link_id: str) -> None:
        """Close one link of the room's owner (the copy at its other end is gone); the room goes on."""
        await self._call(self._owner(room_id), "relay_drop", room_id, link_id)

    async def free_subscriptions(self) -> int | None:
        """Subscriptions the live workers can still admit together (None: no limit)."""
        live = [w for w in self._workers if w.alive and w.ready.done()]
        frees = await asyncio.gather(*(self._free(w) for w in live))
        if any(f is None for f in frees):
            return None
        return sum(int(f) for f in frees if f is not None)

    def _participant_worker(self, room_id: str, participant_id: str) -> _Worker:
        owner = self._owner(room_id)
        where = self._where.get((room_id, participant_id))
        return where if where is not None and where.alive else owner

    async def leave(self, room_id: str, participant_id: str) -> None:
        worker = self._participant_worker(room_id, participant_id)
        await self._call(worker, "leave", room_id, participant_id)
        self._where.pop((room_id, participant_id), None)

    async def add_candidate(self, room_id: str, participant_id: str, candidate: Mapping[str, Any]) -> None:
        candidate_fields(candidate)  # refuse junk here, before it crosses the pipe
        await self._call(self._participant_worker(room_id, participant_id), "add_candidate", room_id,
                         participant_id, dict(candidate))

    async def set_talkback(self, room_id: str, participant_id: str | None, to_all: bool = False) -> None:
        await self._call(self._owner(room_id), "set_talkback", room_id, participant_id, to_all)

    async def start_replay(self, room_id: str, camera: str, screen: str | None = None, offset_s: float = 0.0) -> None:
        await self._call(self._owner(room_id), "start_replay", room_id, camera, screen, offset_s)

    async def stop_replay(self, room_id: str) -> None:
        await self._call(self._owner(room_id), "stop_replay", room_id)

    async def stats(self, room_id: str | None = None) -> dict[str, Any]:
        if room_id is not None:
            owner = self._owner(room_id)
            copies = [w for w in self._workers if room_id in w.copies and w.alive]
            results = await asyncio.gather(self._call(owner, "stats", room_id),
                                           *(self._call(w, "stats", room_id) for w in copies), return_exceptions=True)
            if isinstance(results[0], BaseException):
                raise results[0]
            found = [(w.pid, r) for w, r in zip(copies, results[1:], strict=True) if isinstance(r, dict)]
            return merge_copies(results[0], owner.pid, found)
        workers = [w for w in self._workers if w.alive]
        results = await asyncio.gather(*(self._call(w, "stats") for w in workers), return_exceptions=True)
        rooms: dict[str, Any] = {}
        copy_snapshots: dict[str, list[tuple[int | None, dict[str, Any]]]] = {}
        per_worker = []
        refused = 0
        for w, r in zip(workers, results, strict=True):
            ok = isinstance(r, dict)
            entry: dict[str, Any] = {"index": w.index, "pid": w.pid, "rooms": sorted(w.rooms), "responding": ok,
                                     "copies": sorted(w.copies)}
            if ok:
                for rid, snapshot in r["rooms"].items():
                    if snapshot.get("copy"):
                        copy_snapshots.setdefault(rid, []).append((w.pid, snapshot))
                    else:
                        rooms[rid] = (w.pid, snapshot)
                refused += r.get("refused_joins", 0)
                for key in ("subscriptions", "capacity", "refused_joins"):
                    entry[key] = r.get(key)
                process = r.get("process") or {}
                entry["cpu_seconds"] = process.get("cpu_seconds")
                entry["loop_lag_s"] = process.get("loop_lag_s")
            per_worker.append(entry)
        for rid in self._node_copies:
            held = copy_snapshots.pop(rid, [])
            if rid not in rooms and held:
                rooms[rid] = held[0]  # a copy of a room owned on another node: the room as this node has it
        merged = {rid: merge_copies(snapshot, pid, copy_snapshots.get(rid, []))
                  for rid, (pid, snapshot) in rooms.items()}
        return {
            "pid": os.getpid(),
            "rooms": merged,
            "workers": per_worker,
            "events_dropped": self._hub.dropped,
            "refused_joins": refused,
        }

    def events(self) -> AsyncIterator[MediaEvent]:
        return self._hub.subscribe()

    async def worker_stats(self) -> list[dict[str, Any]]:
        """Each worker's load without its rooms' snapshots (cheap enough for every second): index, pid,
        rooms, whether it answered within `PROCESS_TIMEOUT`, CPU seconds and event-loop lag."""
        workers = [w for w in self._workers if w.alive]
        results = await asyncio.gather(
            *(asyncio.wait_for(self._call(w, "process"), PROCESS_TIMEOUT) for w in workers), return_exceptions=True
        )
        out = []
        for w, r in zip(workers, results, strict=True):
            entry: dict[str, Any] = {"index": w.index, "pid": w.pid, "rooms": len(w.rooms), "responding": False}
            if isinstance(r, dict):
                entry.update(responding=True, cpu_seconds=r.get("cpu_seconds"), loop_lag_s=r.get("loop_lag_s"))
            out.append(entry)
        return out

    # -- for operators and tests ------------------------------------------------------------------

    def worker_pids(self) -> dict[str, int]:
        """The process id owning each open room."""
        return {room_id: w.pid for room_id, w in self._room_worker.items() if w.pid is not None}

    def workers_alive(self) -> int:
        return sum(1 for w in self._workers if w.alive)
