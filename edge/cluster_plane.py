"""The control node's media plane in a cluster: its own plane, and copies of its rooms on edge nodes.

Leads, observers and classrooms placed here join the node's own plane (`WorkerMediaPlane` or
`LocalMediaPlane`), as on one machine. A receiving classroom's join first asks `edge.placement.place`
where it should go (its county's node, else its region's, else the least loaded; the live nodes from
the registry); when the answer is an edge, the room gets a copy there once (`relay_copy` on the edge's
control API, `relay_origin` here, `relay_connect` there: an encrypted relay link, each track once) and
the classroom joins the copy through the edge's API. The choice and its reason are logged. Anything
that goes wrong with the edge (unreachable, refused, full) falls back to this node, logged too.

The edges' media events come back over their event streams and are merged with this node's, so
signaling sees one plane. Closing a room closes its copies on the edges first.

An edge whose events stream breaks (the process died, its host or its link went away: the stream's
WebSocket pings every `EVENTS_HEARTBEAT_S` and gives up after half that without a pong) is lost: its
copies are dropped here, each of its classrooms gets `subscriber_down` with reason `node_lost` (signaling
tells the classroom to reconnect), and placement leaves the edge out until its stream is back, so the
rejoin lands on another node at once instead of waiting for the registry to expire the edge."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from edge.control_client import EdgeClient, link_mismatch, plain_off_host
from edge.placement import ClassroomLocation, place, place_on, with_pending
from edge.registry import NodeState, Registry, RegistryUnavailable
from media.api import EventKind, MediaError, MediaEvent, ParticipantRole, RecordingRequest, SlotKind, TrackKind
from media.config import MediaCapacityError
from media.event_hub import EventHub

log = logging.getLogger(__name__)

LINK_AVOID_S = 60.0  # a room whose link to an edge went silent is not placed there again for this long
MAX_CHAIN = 4  # edges in a chain from this node (region, city, county, and one more)
PENDING_CONNECT_S = 3.0  # a classroom just placed is connected by then (ICE and DTLS on a slow link)
EVENTS_HEARTBEAT_S = 2.0  # an edge's events stream pings this often; no pong in half of it: the edge is lost

Locate = Callable[[str], ClassroomLocation | None]  # participant id -> where the classroom is (None: not placed)


class OriginPlane(Protocol):
    """This node's own plane: the MediaPlane calls and the owner's end of relay links."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def open_room(self, room_id: str, recording: RecordingRequest | None = None,
                        fast_start: bool = False) -> None: ...
    async def close_room(self, room_id: str) -> None: ...
    async def join(self, room_id: str, participant_id: str, role: ParticipantRole, offer_sdp: str,
                   tracks: Mapping[str, TrackKind] | None = None,
                   slots: Mapping[str, SlotKind] | None = None) -> str: ...
    async def leave(self, room_id: str, participant_id: str) -> None: ...
    async def add_candidate(self, room_id: str, participant_id: str, candidate: Mapping[str, Any]) -> None: ...
    async def set_talkback(self, room_id: str, participant_id: str | None, to_all: bool = False) -> None: ...
    async def start_replay(self, room_id: str, camera: str, screen: str | None = None,
                           offset_s: float = 0.0) -> None: ...
    async def stop_replay(self, room_id: str) -> None: ...
    async def stats(self, room_id: str | None = None) -> dict[str, Any]: ...
    def events(self) -> AsyncIterator[MediaEvent]: ...
    async def relay_origin(self, room_id: str, link_id: str, key: bytes, peer: tuple[str, int]) -> tuple[str, int]: ...
    async def relay_drop(self, room_id: str, link_id: str) -> None: ...


class ClusterMediaPlane:
    def __init__(self, local: OriginPlane, registry: Registry, this_node: str, secret: str, locate: Locate,
                 ssl_context: ssl.SSLContext | None = None, heartbeat_s: float = 5.0) -> None:
        self.local = local
        # a classroom just placed counts on its node's load until a heartbeat sent after it connected has
        # carried it: two heartbeats after the connect (the registry may hold the previous one)
        self.pending_s = PENDING_CONNECT_S + 2 * heartbeat_s
        self.ssl_context = ssl_context  # checks the edges' HTTPS certificates (None: the system's CAs)
        self.registry = registry
        self.this_node = this_node
        self.secret = secret
        self.locate = locate
        self._hub = EventHub()
        self._clients: dict[str, EdgeClient] = {}  # by node id
        self._streams: dict[str, asyncio.Task[None]] = {}  # each edge's event stream, by node id
        self._copies: dict[str, dict[str, str]] = {}  # room -> node id -> link id
        self._where: dict[tuple[str, str], str] = {}  # (room, participant) -> edge node id
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._ids = itertools.count(1)
        self._run = secrets.token_hex(3)  # this process's run, in its link ids: a restart never reuses one
        self._parents: dict[tuple[str, str], str | None] = {}  # (room, edge) -> the edge its copy links to (None: here)
        self._nodes: dict[str, NodeState] = {}  # the registry's live nodes, as last read
        self._moves: dict[tuple[str, str], tuple[str, str]] = {}  # (room, participant) -> (node id, by whom)
        self._lost: set[str] = set()  # edges whose events stream is down: left out of placement
        self._avoid: dict[tuple[str, str], float] = {}  # (room, edge) -> until when (monotonic): its link failed
        self._cleanups: set[asyncio.Task[None]] = set()
        self._forward: asyncio.Task[None] | None = None
        self._pending: dict[str, list[float]] = {}  # node id -> when (monotonic) classrooms were placed there
        self.placements: list[dict[str, Any]] = []  # the last choices, newest last (technicians' view)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.local.start()
        self._forward = asyncio.get_running_loop().create_task(self._pump(self.local.events()), name="media-events")

    async def stop(self) -> None:
        for room_id in list(self._copies):
            await self._close_copies(room_id)
        for task in [*self._streams.values(), *self._cleanups, *([self._forward] if self._forward else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._streams.clear()
        for client in list(self._clients.values()):
            await client.close()
        self._clients.clear()
        await self.local.stop()
        self._hub.close()

    async def _pump(self, events: AsyncIterator[MediaEvent]) -> None:
        async for event in events:
            if event.kind == EventKind.LINK_DOWN:
                self._link_down(event)
            self._hub.publish(event)

    def _link_down(self, event: MediaEvent) -> None:
        """A relay link of one of the room's copies on an edge heard nothing for seconds (from either end):
        that copy is cut off though its edge may live. It is dropped, its classrooms reconnect, and
        placement keeps this room off that edge for `LINK_AVOID_S` (a path that failed once may fail
        again at once); links between this node's own workers are the workers plane's."""
        link_id = str(event.detail.get("link_id", ""))
        room_id = event.room_id
        node_id = next((n for n, link in self._copies.get(room_id, {}).items() if link == link_id), None)
        if node_id is None:
            return
        log.warning("room %s: its relay link to edge %s is silent (%s end, %s s): the copy there is dropped, "
                    "its classrooms reconnect elsewhere", room_id, node_id, event.detail.get("end"),
                    event.detail.get("silent_s"))
        self._avoid[(room_id, node_id)] = time.monotonic() + LINK_AVOID_S
        self._drop_copy(room_id, node_id, alive=node_id not in self._lost)

    async def _edge_stream(self, node_id: str, client: EdgeClient) -> None:
        """The edge's events for its classrooms, into this plane's; reconnected every second while the edge
        is away (said once, and once when it is back). The stream breaking loses the edge (`_lose_edge`)."""
        failing = False
        while True:
            why = "its events stream ended"
            try:
                async for event in client.events(heartbeat=EVENTS_HEARTBEAT_S,
                                                 on_open=lambda: self._lost.discard(node_id)):
                    if failing:
                        log.info("edge %s: events stream back", node_id)
                        failing = False
                    if event.kind == EventKind.LINK_DOWN:
                        self._link_down(event)
                        continue
                    # only its classrooms' events: the copy's own (e.g. room_lost) are not the room's
                    pid = event.participant_id
                    if pid is not None and self._where.get((event.room_id, pid)) == node_id:
                        self._hub.publish(event)
            except MediaError as exc:
                why = str(exc)
                if not failing:
                    log.warning("edge %s: events stream: %s (retried every second)", node_id, exc)
                    failing = True
            self._lose_edge(node_id, why)
            await asyncio.sleep(1.0)

    def _lose_edge(self, node_id: str, why: str) -> None:
        """The edge is gone: forget its copies (their links dropped upstream) and those of the edges that
        take the room from it (closed there), tell signaling each of their classrooms is down
        (`node_lost`), and leave the edge out of placement until its stream is back."""
        first = node_id not in self._lost
        self._lost.add(node_id)
        rooms = [room_id for room_id, copies in self._copies.items() if node_id in copies]
        moved = sum(1 for where in self._where.values() if where == node_id)
        if first or rooms or moved:
            log.warning("edge %s lost (%s): %d room copies dropped, %d classrooms told to reconnect; "
                        "placement leaves it out until it is back", node_id, why, len(rooms), moved)
        for room_id in rooms:
            self._drop_copy(room_id, node_id, alive=False)

    def _drop_copy(self, room_id: str, node_id: str, alive: bool) -> None:
        """Forget the room's copy on `node_id` (closed there if the edge is `alive`), its link dropped at its
        upstream end, its classrooms told to reconnect; the copies further down the chain go with it."""
        copies = self._copies.get(room_id, {})
        link_id = copies.pop(node_id, None)
        if link_id is None:
            return
        parent = self._parents.pop((room_id, node_id), None)
        self._locks.pop((room_id, node_id), None)
        self._later(self._drop_link_at(room_id, parent, link_id))
        client = self._clients.get(node_id)
        if alive and client is not None:
            self._later(self._close_copy_on(client, room_id))
        now = time.time()
        for key in [k for k, where in self._where.items() if k[0] == room_id and where == node_id]:
            del self._where[key]
            self._hub.publish(MediaEvent(EventKind.SUBSCRIBER_DOWN, room_id, key[1], None, now,
                                         {"reason": "node_lost", "node": node_id}))
        for child in [n for (r, n), p in list(self._parents.items()) if r == room_id and p == node_id]:
            log.warning("room %s: edge %s took it from edge %s, which is gone; its copy is closed and its "
                        "classrooms reconnect", room_id, child, node_id)
            self._drop_copy(room_id, child, alive=child not in self._lost)
        if not copies:
            self._copies.pop(room_id, None)

    @staticmethod
    async def _close_copy_on(client: EdgeClient, room_id: str) -> None:
        with contextlib.suppress(MediaError):
            await client.close_copy(room_id, lost=True)

    def _later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    # -- placement --------------------------------------------------------------------------------

    async def _placed_edge(self, room_id: str, participant_id: str, full_here: bool = False) -> NodeState | None:
        """The edge a receiving classroom goes to (None: this node). `full_here`: this node refused it for
        capacity, so the choice is among the edges only, wherever they are."""
        where = self.locate(participant_id)
        if where is None:
            if not full_here:
                return None
            where = ClassroomLocation("", "")  # of no known place: the least loaded edge anywhere
        stale = False
        try:
            nodes = await self.registry.nodes()
            self._nodes = {n.node.id: n for n in nodes}
        except RegistryUnavailable as exc:
            # the registry is down, the nodes are not: those whose events stream is up are alive (the stream
            # pings every EVENTS_HEARTBEAT_S), so they go on taking classrooms, at their last known load
            nodes = [n for n in self._nodes.values()
                     if n.node.id == self.this_node or (n.node.id in self._streams and n.node.id not in self._lost)]
            if not any(n.node.role == "edge" for n in nodes):
                log.warning("placement of %s in %s: %s; joins this node", participant_id, room_id, exc)
                return None
            log.warning("placement of %s in %s: %s; placed among the nodes as last read whose events streams "
                        "are up (%s)", participant_id, room_id, exc, ", ".join(sorted(n.node.id for n in nodes)))
            stale = True
        now = time.monotonic()
        avoided = {n for (r, n), until in self._avoid.items() if r == room_id and until > now}
        nodes = [n for n in nodes if n.node.id not in self._lost and n.node.id not in avoided
                 and not (full_here and (n.node.id == self.this_node or n.node.role != "edge"))]
        nodes = with_pending(nodes, self._pending_counts(now))
        moved = self._moves.get((room_id, participant_id))
        placement = place_on(moved[0], where, nodes, by=moved[1]) if moved else place(where, nodes)
        node = placement.node
        if node is not None:
            self._pending.setdefault(node.node.id, []).append(now)
        on_edge = node is not None and node.node.role == "edge" and node.node.id != self.this_node
        zh, en = placement.reason("zh"), placement.reason("en")
        if full_here:
            zh, en = f"本节点已满，改用边缘节点：{zh}", f"this node is full, so an edge: {en}"
        if stale:
            zh = f"Redis 不可用，按上次所见的在线节点：{zh}"
            en = f"Redis is unavailable, among the nodes last seen live: {en}"
        self.placements = [*self.placements[-49:], {
            "room_id": room_id, "participant_id": participant_id, "node": node.node.id if node else None,
            "tier": placement.tier, "reason": en, "reason_zh": zh, "at": time.time()}]
        log.info("placement of %s in %s (county %s, region %s): %s%s", participant_id, room_id, where.county or "-",
                 where.region or "-", en, "" if on_edge or node is None else " (this node)")
        return node if on_edge else None

    def _pending_counts(self, now: float) -> dict[str, int]:
        """Classrooms placed on each node in the last `pending_s` seconds (older ones are in its heartbeats)."""
        for node_id in list(self._pending):
            recent = [t for t in self._pending[node_id] if now - t < self.pending_s]
            if recent:
                self._pending[node_id] = recent
            else:
                del self._pending[node_id]
        return {node_id: len(times) for node_id, times in self._pending.items()}

    def _client(self, state: NodeState) -> EdgeClient:
        node_id = state.node.id
        client = self._clients.get(node_id)
        if client is None or client.url != state.node.address.rstrip("/"):
            if plain_off_host(state.node.address):
                log.warning("edge %s: its control API %s is plain HTTP to another host: the node secret and the "
                            "relay links' keys cross the network in clear (start it with --tls-cert/--tls-key)",
                            node_id, state.node.address)
            client = self._clients[node_id] = EdgeClient(state.node.address, self.secret, self.ssl_context)
            old = self._streams.pop(node_id, None)
            if old is not None:
                old.cancel()
            self._streams[node_id] = asyncio.get_running_loop().create_task(
                self._edge_stream(node_id, client), name=f"edge-events-{node_id}")
        return client

    def _upstream_of(self, state: NodeState, chain: tuple[str, ...]) -> NodeState | None:
        """The live edge `state` takes its lessons from (`--upstream`), or None: from this node. An upstream
        that is lost, not in the registry, this node, or already in the chain (a loop) is passed over."""
        up = state.node.upstream
        if not up or up == self.this_node:
            return None
        upstream = self._nodes.get(up)
        if upstream is None or up in self._lost or upstream.node.role != "edge" or up in chain \
                or len(chain) >= MAX_CHAIN:
            log.warning("edge %s: its upstream %s is %s; it takes its lessons from this node", state.node.id, up,
                        "lost" if up in self._lost else "in a loop or too deep" if upstream is not None
                        and upstream.node.role == "edge" else "not a live edge")
            return None
        return upstream

    async def _ensure_copy(self, room_id: str, state: NodeState, chain: tuple[str, ...] = ()) -> None:
        """A copy of the room on edge `state`, linked to its upstream edge's copy (made first) or to this
        node's room."""
        node_id = state.node.id
        copies = self._copies.setdefault(room_id, {})
        if node_id in copies:
            return
        async with self._locks.setdefault((room_id, node_id), asyncio.Lock()):
            if node_id in copies:
                return
            client = self._client(state)
            upstream = self._upstream_of(state, (*chain, node_id))
            if upstream is not None:
                try:
                    await self._ensure_copy(room_id, upstream, (*chain, node_id))
                except MediaError as exc:
                    log.warning("room %s: edge %s's upstream %s cannot carry it (%s); it links to this node",
                                room_id, node_id, upstream.node.id, exc)
                    upstream = None
            source = self.this_node if upstream is None else upstream.node.id
            link_id = f"{room_id}:{source}.{self._run}>{node_id}:{next(self._ids)}"
            key = secrets.token_bytes(32)
            # a copy this process does not hold is stale (left by this node's previous run, or by a stream
            # that broke while the edge lived on): its link leads nowhere, its classrooms were told to go
            await client.close_copy(room_id, lost=True)
            copy_addr = await client.relay_copy(room_id, link_id, key)
            try:
                if upstream is None:
                    origin_addr = await self.local.relay_origin(room_id, link_id, key, copy_addr)
                else:
                    origin_addr = await self._client(upstream).relay_origin(room_id, link_id, key, copy_addr)
                if link_mismatch(str(origin_addr[0]), str(copy_addr[0])):
                    await self._drop_link_at(room_id, None if upstream is None else upstream.node.id, link_id)
                    raise MediaError(
                        f"a relay link from {origin_addr[0]} ({source}) to {copy_addr[0]} ({node_id}) cannot work: "
                        "one end is on loopback; set [media] relay_address on every node to an address the "
                        "others reach (docs/scaling.md, Three hosts)")
                await client.relay_connect(room_id, link_id, origin_addr)
            except MediaError:
                with contextlib.suppress(MediaError):
                    await client.close_copy(room_id)
                raise
            copies[node_id] = link_id
            self._parents[(room_id, node_id)] = None if upstream is None else upstream.node.id
            log.info("room %s: a copy on edge %s, linked to %s (%s)", room_id, node_id,
                     "this node" if upstream is None else f"edge {source}", link_id)

    async def _drop_link_at(self, room_id: str, parent: str | None, link_id: str) -> None:
        """Close one link at its upstream end: this node's room, or an upstream edge's copy."""
        with contextlib.suppress(MediaError):
            if parent is None:
                await self.local.relay_drop(room_id, link_id)
            elif parent in self._clients and parent not in self._lost:
                await self._clients[parent].relay_drop(room_id, link_id)

    async def _close_copies(self, room_id: str) -> None:
        for node_id, link_id in self._copies.pop(room_id, {}).items():
            client = self._clients.get(node_id)
            if client is not None:
                with contextlib.suppress(MediaError):
                    await client.close_copy(room_id)
            await self._drop_link_at(room_id, self._parents.pop((room_id, node_id), None), link_id)
        for table in (self._where, self._moves, self._locks, self._parents, self._avoid):
            for key in [k for k in table if k[0] == room_id]:
                del table[key]

    # -- MediaPlane -------------------------------------------------------------------------------

    async def open_room(self, room_id: str, recording: RecordingRequest | None = None,
                        fast_start: bool = False) -> None:
        await self.local.open_room(room_id, recording, fast_start)

    async def close_room(self, room_id: str) -> None:
        await self._close_copies(room_id)
        await self.local.close_room(room_id)

    async def join(self, room_id: str, participant_id: str, role: ParticipantRole, offer_sdp: str,
                   tracks: Mapping[str, TrackKind] | None = None, slots: Mapping[str, SlotKind] | None = None) -> str:
        """A receiving classroom goes where placement says (an edge, or this node); one this node has no room
        for goes to the least loaded edge that has, wherever it is. Everyone else joins this node."""
        key = (room_id, participant_id)
        before = self._where.pop(key, None)
        if before is not None:  # a reconnect: its old connection goes, wherever it lands now
            with contextlib.suppress(MediaError):
                await self._clients[before].leave(room_id, participant_id)
        receiver = role == ParticipantRole.RECEIVER
        edge = await self._placed_edge(room_id, participant_id) if receiver else None
        if edge is not None:
            answer = await self._join_edge(edge, room_id, participant_id, role, offer_sdp, tracks, slots)
            if answer is not None:
                return answer
        try:
            return await self.local.join(room_id, participant_id, role, offer_sdp, tracks, slots)
        except MediaCapacityError:
            if not receiver:
                raise
            edge = await self._placed_edge(room_id, participant_id, full_here=True)
            answer = None if edge is None else await self._join_edge(edge, room_id, participant_id, role,
                                                                     offer_sdp, tracks, slots)
            if answer is None:
                raise
            return answer

    async def _join_edge(self, edge: NodeState, room_id: str, participant_id: str, role: ParticipantRole,
                         offer_sdp: str, tracks: Mapping[str, TrackKind] | None,
                         slots: Mapping[str, SlotKind] | None) -> str | None:
        """Join on the edge (its copy of the room made first); None, logged, when the edge cannot."""
        client = self._client(edge)
        try:
            await self._ensure_copy(room_id, edge)
            answer = await client.join(room_id, participant_id, role, offer_sdp, tracks, slots)
        except MediaError as exc:
            log.warning("edge %s could not take %s in %s (%s); it joins this node", edge.node.id,
                        participant_id, room_id, exc)
            return None
        self._where[(room_id, participant_id)] = edge.node.id
        with contextlib.suppress(MediaError):
            await self.local.leave(room_id, participant_id)  # if it was here before
        return answer

    async def leave(self, room_id: str, participant_id: str) -> None:
        node_id = self._where.pop((room_id, participant_id), None)
        if node_id is None:
            await self.local.leave(room_id, participant_id)
        else:
            await self._clients[node_id].leave(room_id, participant_id)

    async def add_candidate(self, room_id: str, participant_id: str, candidate: Mapping[str, Any]) -> None:
        node_id = self._where.get((room_id, participant_id))
        if node_id is None:
            await self.local.add_candidate(room_id, participant_id, candidate)
        else:
            await self._clients[node_id].add_candidate(room_id, participant_id, candidate)

    async def set_talkback(self, room_id: str, participant_id: str | None, to_all: bool = False) -> None:
        await self.local.set_talkback(room_id, participant_id, to_all)

    async def start_replay(self, room_id: str, camera: str, screen: str | None = None, offset_s: float = 0.0) -> None:
        await self.local.start_replay(room_id, camera, screen, offset_s)

    async def stop_replay(self, room_id: str) -> None:
        await self.local.stop_replay(room_id)

    async def stats(self, room_id: str | None = None) -> dict[str, Any]:
        """This node's stats; for one room, with the participants of its copies on edges merged in (each
        with its `node`) and `edges: [{node, link_id}]`."""
        snapshot = await self.local.stats(room_id)
        if room_id is None or not self._copies.get(room_id):
            return snapshot
        participants = dict(snapshot.get("participants", {}))
        edges = []
        # a snapshot: the edges' stats are awaited, and a copy may be dropped (or taken over) meanwhile
        for node_id, link_id in list(self._copies[room_id].items()):
            edges.append({"node": node_id, "link_id": link_id, "upstream": self._parents.get((room_id, node_id))})
            client = self._clients.get(node_id)
            if client is None:
                continue
            try:
                remote = await client.stats(room_id)
            except MediaError:
                continue
            for pid, p in dict(remote.get("participants", {})).items():
                if self._where.get((room_id, pid)) == node_id:
                    participants[pid] = {**p, "node": node_id}
        return {**snapshot, "participants": participants, "edges": edges}

    def events(self) -> AsyncIterator[MediaEvent]:
        return self._hub.subscribe()

    async def worker_stats(self) -> list[dict[str, Any]]:
        worker_stats = getattr(self.local, "worker_stats", None)
        return list(await worker_stats()) if callable(worker_stats) else []

    def worker_pids(self) -> dict[str, int]:
        worker_pids = getattr(self.local, "worker_pids", None)
        return dict(worker_pids()) if callable(worker_pids) else {}

    async def move(self, room_id: str, participant_id: str, node_id: str, by: str) -> None:
        """A technician moves a receiving classroom to `node_id` (an edge, or this node): its next join, and
        every one after it in this room, goes there while that node is live and has room. The caller has
        the classroom reconnect. MediaError when the node is not live here."""
        try:
            live = {n.node.id for n in await self.registry.nodes()} - self._lost
        except RegistryUnavailable as exc:
            raise MediaError(f"the cluster's registry cannot be reached: {exc}") from None
        if node_id not in live:
            raise MediaError(f"node {node_id} is not live")
        self._moves[(room_id, participant_id)] = (node_id, by)
        log.info("room %s: %s is moved to node %s by %s", room_id, participant_id, node_id, by)

    def lost_edges(self) -> set[str]:
        """The edges whose events stream is down (left out of placement)."""
        return set(self._lost)

    def where(self, room_id: str, participant_id: str) -> str | None:
        """The edge a participant joined (None: this node)."""
        return self._where.get((room_id, participant_id))
