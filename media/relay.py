"""The relay link: one room's tracks between two copies of it, each sent once per link.

A lesson with more classrooms than one worker admits goes on in a *copy* of its room in another
worker (`media.workers` sets this up). The worker that owns the room (the *origin*) and each copy are
joined by one link: a UDP socket at each end, an address and a random key handed over by whoever
connects them (the control process today; a node's control channel later: the link never needs a
pipe between the two ends). On the link:

- every published track one end has and the other wants goes once, however many subscribers the
  other end has for it: the original RTP packet (after RTX unwrapping, header extensions dropped)
  with a track id in front. The other end feeds it into an `InboundTrack` of its own copy, as if a
  local publisher had sent it, so the existing fan-out serves its subscribers, its NACKs are answered
  from its own history, and gaps on the link are NACKed upstream by the same `NackTracker`;
- feedback for a track goes back as RTCP with the track id: NACKs are answered from the sender's
  history, PLI/FIR go into the sender's track's keyframe coalescing (so a copy asks at most once per
  interval however many of its subscribers wait);
- state, every `STATE_INTERVAL` and on every change, chunked into datagrams: the tracks the sender
  offers, the tracks it wants from the other end (those its subscribers' slots or its other links are
  bound to), its participants (a copy's, for talk-back and previews at the origin) and, from the
  origin, who leads and who is called on. Talk-back from a classroom in a copy is just one of its
  tracks that the origin wants once the lead's slot is pointed at it.

Every datagram is encrypted and authenticated (`media.relay_seal`): AES-256-GCM with the link's key,
a nonce made of the direction bit and the sending end's 64-bit counter (carried in the datagram, never
repeated), the frame's header as associated data, so nothing of a lesson crosses in clear and the link
may cross a network. Datagrams from another address than the peer's, too short, of another format,
with a wrong tag or in this end's own direction (reflected) are counted as refused and dropped; one
whose counter was already taken (a duplicate or a replay) is counted as replayed and dropped; one
naming a track the link does not carry is counted and dropped; nothing a datagram holds can raise
out of the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from media.api import EventKind, ParticipantRole, TrackKind
from media.forwarding import CodecInfo, InboundTrack, Pending, Wire
from media.limits import MAX_NACKED_PER_PACKET
from media.nack_tracker import NackTracker
from media.relay_seal import FROM_ORIGIN, LinkSeal, ReplayWindow
from media.rtcp import Fir, Nack, Pli, parse_compound
from media.rtp_header import RtpHeader

if TYPE_CHECKING:
    from media.room import Room

logger = logging.getLogger(__name__)

KIND_RTP, KIND_RTCP, KIND_STATE = 1, 2, 3
_STATE_HEAD = struct.Struct("!IHH")  # generation, chunk index, chunk count
_RTP = struct.Struct("!BBHII")
STATE_CHUNK = 1100  # bytes of state JSON per datagram
MAX_STATE_CHUNKS = 512  # 560 KB of state at most: hundreds of tracks and participants
STATE_INTERVAL = 0.5  # seconds between full state sends when nothing changed
TICK = 0.1  # how often a link compares the room with what it announced
READ_BATCH = 256  # datagrams read per readiness event
RECV_BUFFER = 4 * 1024 * 1024
LINK_SILENT_S = 3.0  # nothing heard from the other end this long (its state comes twice a second): link down


def open_link_socket(host: str) -> socket.socket:
    """A non-blocking UDP socket on `host` and a free port, with room for a keyframe burst."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECV_BUFFER)
        sock.bind((host, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    """The emit of a track fed by a link: its publisher's events come from the end it joined."""


class TrackSender:
    """One local track sent on one link: a batch sink on the track (`InboundTrack.relays`), attached
    only while the other end wants it; answers the other end's NACKs from the track's history."""

    def __init__(self, link: RelayLink, track_id: int, track: InboundTrack) -> None:
        self.link = link
        self.track_id = track_id
        self.track = track
        self.attached = False
        self.packets = 0
        self.octets = 0
        self.nacks_received = 0
        self.retransmitted = 0
        self.unrepairable = 0
        self.keyframe_requests = 0

    def forward(self, batch: list[Pending], now: float) -> None:
        """The track's batch, once, to the other end: original header and payload, sealed."""
        seal = self.link.seal.seal
        track_id = self.track_id
        ssrc = self.track.ssrc or 0
        pack = _RTP.pack
        out = []
        octets = 0
        for seq, ts, mbit, pt, payload, _keyframe in batch:
            out.append(seal(KIND_RTP, track_id, pack(0x80, mbit | pt, seq, ts, ssrc) + payload))
            octets += len(payload)
        self.packets += len(out)
        self.octets += octets
        self.link.wire.send_protected(out)

    def attach(self, now: float) -> None:
        if self.attached or self.track.closed:
            return
        self.attached = True
        self.track.relays.append(self)
        if self.track.video and self.track.fast_start:
            # A source that cannot make a keyframe (a replay): the other end gets what it would have
            # asked for from the history, the packets since the last one, so its own slots can start at
            # once (`DownTrack._fast_start` there); a packet it also gets at the next flush is a duplicate
            # it drops.
            self._send_since_keyframe(now)
        elif self.track.video:
            # The other end's slots wait for a keyframe; asked here, coalesced with everyone's.
            self.track.request_keyframe(now)

    def _send_since_keyframe(self, now: float) -> None:
        track = self.track
        if track.max_seq < 0:
            return
        burst = track.since_keyframe((track.max_seq + 1) & 0xFFFF)
        if burst:
            start = burst[0][0]
            self.forward([(seq, ts, mbit, pt, payload, seq == start) for seq, ts, mbit, pt, payload in burst], now)

    def detach(self) -> None:
        if self.attached:
            self.attached = False
            with contextlib.suppress(ValueError):
                self.track.relays.remove(self)

    def on_feedback(self, packets: list[Any], now: float) -> None:
        track = self.track
        for p in packets:
            if isinstance(p, Nack):
                lost = p.lost[:MAX_NACKED_PER_PACKET]
                self.nacks_received += len(lost)
                for seq in lost:
                    self._resend(seq)
            elif isinstance(p, Pli | Fir):
                self.keyframe_requests += 1
                track.request_keyframe(now)

    def _resend(self, seq: int) -> None:
        entry = self.track.history_entry(seq)
        if entry is None:
            self.unrepairable += 1
            return
        _, ts, mbit, pt, payload = entry
        body = _RTP.pack(0x80, mbit | pt, seq, ts, self.track.ssrc or 0) + payload
        self.link.wire.send_protected([self.link.seal.seal(KIND_RTP, self.track_id, body)])
        self.retransmitted += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "participant_id": self.track.participant_id,
            "track": str(self.track.kind),
            "sending": self.attached,
            "packets_sent": self.packets,
            "bytes_sent": self.octets,
            "nacks_received": self.nacks_received,
            "retransmitted": self.retransmitted,
            "unrepairable": self.unrepairable,
            "keyframe_requests_received": self.keyframe_requests,
        }


class RemoteTrack:
    """A track the other end offers, fed into this end's copy of the room as an `InboundTrack`."""

    def __init__(self, track_id: int, key: tuple[str, TrackKind], track: InboundTrack) -> None:
        self.track_id = track_id
        self.key = key
        self.track = track
        self.live_announced = False

    def wanted(self) -> bool:
        track = self.track
        return bool(track.downtracks or track.relays or track.recorder is not None)


class RelayLink:
    """One end of a link between two copies of a room (the origin's end or a copy's)."""

    def __init__(self, room: Room, link_id: str, key: bytes, origin: bool, sock: socket.socket) -> None:
        self.seal = LinkSeal(key, origin)  # refuses a key of the wrong size
        self.window = ReplayWindow()  # the other end's counters taken so far
        self.room = room
        self.link_id = link_id
        self.origin = origin
        self.direction = FROM_ORIGIN if origin else 0
        self.sock = sock
        self.local = sock.getsockname()[:2]
        self.peer: tuple[str, int] | None = None
        self.wire = Wire()  # the send path: runs of equal-size datagrams in one GSO call
        self.closed = False
        self.senders: dict[int, TrackSender] = {}  # by track id
        self._sender_of: dict[int, TrackSender] = {}  # by id() of the local InboundTrack
        self._ids = 0
        self.remote: dict[int, RemoteTrack] = {}  # the other end's tracks, by its track id
        self.remote_participants: dict[str, ParticipantRole] = {}
        self._wanted_by_peer: set[int] = set()
        # state: what was sent last, when, its generation; chunks of the other end's being gathered
        self._sent_state = b""
        self._sent_at = 0.0
        self._generation = random.getrandbits(31)
        self._incoming: tuple[int, int, dict[int, bytes]] | None = None
        self._peer_generation = -1
        # counters (snapshot)
        self.datagrams_in = 0
        self.rtp_in = 0
        self.refused = 0  # too short, wrong tag, wrong magic or direction: forged or junk
        self.replayed = 0  # authentic, but its counter was taken already: a duplicate or a replay
        self.wrong_address = 0
        self.unknown_track = 0
        self.errors = 0
        self.states_in = 0
        self.states_out = 0
        self.heard_at = 0.0  # when the last authenticated datagram came (the other end's state comes twice a second)
        self.connected_at = 0.0
        self.down = False  # LINK_DOWN said, not yet heard again
        self.downs = 0
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def connect(self, peer: tuple[str, int]) -> None:
        """Start sending to `peer` and accept datagrams from it only."""
        self.peer = (str(peer[0]), int(peer[1]))
        self.connected_at = time.monotonic()
        sock = self.sock
        self.wire.connect(bytes, bytes, sock.sendto, self.peer, sock.sendmsg if self.room.config.udp_gso else None)
        for remote in self.remote.values():
            remote.track.wire.connect(bytes, remote.track.wire.protect_rtcp, sock.sendto, self.peer)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def listen(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.wire.down()
        for sender in self.senders.values():
            sender.detach()
        self.senders.clear()
        self._sender_of.clear()
        now = time.monotonic()
        for remote in list(self.remote.values()):
            self._drop_remote(remote, now)
        self.remote.clear()
        for pid in list(self.remote_participants):
            self._participant_gone(pid)
        self.remote_participants.clear()
        self.sock.close()

    # -- sending: state -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                now = time.monotonic()
                self.sync(now)
                self.check_heard(now)
            except Exception:
                self.errors += 1
                logger.exception("relay link %s: sync failed", self.link_id)
            await asyncio.sleep(TICK)

    def check_heard(self, now: float) -> None:
        """Say LINK_DOWN once when nothing authentic came from the other end for `LINK_SILENT_S` (since it
        was last heard, or since this end connected), LINK_UP when it is heard again."""
        since = self.heard_at or self.connected_at
        if not since:
            return
        silent = now - since
        if not self.down and silent >= LINK_SILENT_S:
            self.down = True
            self.downs += 1
            logger.warning("relay link %s (%s end): nothing heard from the other end for %.1f s", self.link_id,
                           "origin" if self.origin else "copy", silent)
            self.room.emit(EventKind.LINK_DOWN, None, None, {"link_id": self.link_id, "silent_s": round(silent, 1),
                                                             "end": "origin" if self.origin else "copy"})
        elif self.down and silent < LINK_SILENT_S:
            self.down = False
            logger.info("relay link %s: the other end is heard again", self.link_id)
            self.room.emit(EventKind.LINK_UP, None, None, {"link_id": self.link_id,
                                                           "end": "origin" if self.origin else "copy"})

    def sync(self, now: float) -> None:
        """Offer the room's tracks (all but those this link brought), ask for what is wanted here,
        and send the state if it changed or `STATE_INTERVAL` passed."""
        room = self.room
        mine = {id(r.track) for r in self.remote.values()}
        offered: list[list[Any]] = []
        seen: set[int] = set()
        for (pid, kind), track in list(room.sources.items()):
            if id(track) in mine or track.closed:
                continue
            seen.add(id(track))
            sender = self._sender_of.get(id(track))
            if sender is None:
                sender = TrackSender(self, self._next_id(), track)
                self.senders[sender.track_id] = sender
                self._sender_of[id(track)] = sender
            if sender.track_id in self._wanted_by_peer:
                sender.attach(now)
            codecs = [[pt, c.key, c.name, c.clock_rate] for pt, c in track.codecs.items()]
            offered.append([sender.track_id, pid, str(kind), track.media_kind, track.ssrc or 0, track.live, codecs])
        for tid, sender in list(self.senders.items()):
            if id(sender.track) not in seen:
                sender.detach()
                del self.senders[tid]
                self._sender_of.pop(id(sender.track), None)
        state: dict[str, Any] = {
            "tracks": offered,
            "want": sorted(tid for tid, r in self.remote.items() if r.wanted()),
        }
        if self.origin:
            state["room"] = {"lead_id": room.lead_id, "talkback_id": room.talkback_id,
                             "to_all": room.talkback_to_all}
        else:
            # its own participants and those of the copies further down a chain (for talk-back and previews)
            participants = {pid: str(p.role) for pid, p in room.participants.items()}
            for link in room.links:
                if link is not self and link.origin:
                    participants.update({pid: str(role) for pid, role in link.remote_participants.items()})
            state["participants"] = participants
        blob = json.dumps(state, separators=(",", ":")).encode()
        if self.peer is not None and (blob != self._sent_state or now - self._sent_at >= STATE_INTERVAL):
            self._send_state(blob)
            self._sent_state, self._sent_at = blob, now

    def _next_id(self) -> int:
        """A track id not in use on this link (16 bits; a long lesson's reconnects wrap around)."""
        for _ in range(0x10000):
            self._ids = self._ids % 0xFFFF + 1
            if self._ids not in self.senders:
                return self._ids
        raise RuntimeError("every track id of a relay link is in use")

    def _send_state(self, blob: bytes) -> None:
        self._generation = (self._generation + 1) & 0x7FFFFFFF
        chunks = [blob[i : i + STATE_CHUNK] for i in range(0, len(blob), STATE_CHUNK)] or [b""]
        if len(chunks) > MAX_STATE_CHUNKS:
            logger.error("relay link %s: state of %d bytes is too large to send", self.link_id, len(blob))
            return
        out = []
        for i, chunk in enumerate(chunks):
            out.append(self.seal.seal(KIND_STATE, i, _STATE_HEAD.pack(self._generation, i, len(chunks)) + chunk))
        for datagram in out:
            self.wire.send_protected([datagram])
        self.states_out += 1

    # -- receiving --------------------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self.sock
        now = time.monotonic()
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # e.g. ECONNREFUSED reported for an earlier send to a peer that is gone
                self.errors += 1
                return
            self.receive(data, addr, now)

    def receive(self, data: bytes, addr: tuple[Any, ...], now: float) -> None:
        """One datagram from the link's socket: checked, then acted on; never raises."""
        try:
            self._on_datagram(data, addr, now)
        except Exception:
            # Nothing a datagram holds may end the reader (or the worker).
            self.errors += 1
            if self.errors <= 3:
                logger.exception("relay link %s: a datagram broke its handling", self.link_id)

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...], now: float) -> None:
        self.datagrams_in += 1
        peer = self.peer
        if peer is None or addr[0] != peer[0] or addr[1] != peer[1]:
            self.wrong_address += 1
            return
        opened = self.seal.open(data)
        if opened is None:
            self.refused += 1
            return
        kind, track_id, counter, body = opened
        if not self.window.accept(counter):
            self.replayed += 1
            return
        self.heard_at = now
        if kind == KIND_RTP:
            remote = self.remote.get(track_id)
            if remote is None:
                self.unknown_track += 1
                return
            hdr = RtpHeader.parse(body)
            if hdr is None:
                self.refused += 1
                return
            self.rtp_in += 1
            remote.track.on_rtp(hdr, body, now)
        elif kind == KIND_RTCP:
            sender = self.senders.get(track_id)
            if sender is None:
                self.unknown_track += 1
                return
            sender.on_feedback(parse_compound(body), now)
        elif kind == KIND_STATE:
            self._on_state_chunk(body, now)
        else:
            self.refused += 1

    def _on_state_chunk(self, body: bytes, now: float) -> None:
        if len(body) < _STATE_HEAD.size:
            self.refused += 1
            return
        generation, index, count = _STATE_HEAD.unpack_from(body)
        if count == 0 or count > MAX_STATE_CHUNKS or index >= count:
            self.refused += 1
            return
        incoming = self._incoming
        if incoming is None or incoming[0] != generation:
            incoming = self._incoming = (generation, count, {})
        incoming[2][index] = body[_STATE_HEAD.size :]
        if len(incoming[2]) < count:
            return
        self._incoming = None
        blob = b"".join(incoming[2][i] for i in range(count))
        self.states_in += 1
        self.apply_state(json.loads(blob), now)

    # -- the other end's state ----------------------------------------------------------------------

    def apply_state(self, state: dict[str, Any], now: float) -> None:
        room = self.room
        changed = False
        # participants first: a track of one that went on air may take a preview position here
        if "participants" in state and not self.origin:
            self.refused += 1  # only a copy tells its participants, only to the origin
        elif "participants" in state:
            new = {str(p): ParticipantRole(r) for p, r in dict(state["participants"]).items()}
            gone = [p for p in self.remote_participants if p not in new]
            self.remote_participants = new
            for pid in gone:
                self._participant_gone(pid)
        offered: dict[int, list[Any]] = {int(t[0]): t for t in state.get("tracks", [])}
        for tid, remote in list(self.remote.items()):
            if tid not in offered:
                self._drop_remote(remote, now)
                changed = True
        for tid, (_, pid, kind, media_kind, ssrc, live, codecs) in offered.items():
            remote = self.remote.get(tid)
            if remote is None:
                remote = self._add_remote(tid, str(pid), TrackKind(kind), str(media_kind), int(ssrc), codecs)
                changed = True
            elif ssrc and remote.track.ssrc != ssrc:
                remote.track.ssrc = int(ssrc)  # learnt by the sender after it announced the track
            if live and not remote.live_announced:
                remote.live_announced = True
                room.remote_on_air(remote.key[0], remote.key[1])
        wanted = {int(t) for t in state.get("want", [])}
        if wanted != self._wanted_by_peer:
            self._wanted_by_peer = wanted
            for tid, sender in self.senders.items():
                if tid in wanted:
                    sender.attach(now)
                else:
                    sender.detach()
        if "room" in state and not self.origin:
            shown = state["room"]
            changed = room.follow_origin(shown.get("lead_id"), shown.get("talkback_id"),
                                         bool(shown.get("to_all"))) or changed
        if changed:
            room.rebind(now)

    def _add_remote(
        self, tid: int, pid: str, kind: TrackKind, media_kind: str, ssrc: int, codecs: list[list[Any]]
    ) -> RemoteTrack:
        room = self.room
        cfg = room.config
        wire = Wire()
        seal = self.seal.seal

        def seal_rtcp(packet: bytes) -> bytes:
            return seal(KIND_RTCP, tid, packet)

        if self.peer is not None:
            wire.connect(bytes, seal_rtcp, self.sock.sendto, self.peer)
        else:
            wire.protect_rtcp = seal_rtcp
        track = InboundTrack(
            participant_id=pid,
            kind=kind,
            media_kind=media_kind,
            mid=f"relay:{tid}",
            codecs={int(pt): CodecInfo(key=str(k), name=str(n), clock_rate=int(c)) for pt, k, n, c in codecs},
            rtx_apt={},
            ssrc=ssrc or tid + 1,  # (what the sender has not learnt yet; NACKs name the track by id anyway)
            rtx_ssrc=None,
            wire=wire,
            rtcp_ssrc=random.getrandbits(32),
            fir_only=False,  # the sending end asks its publisher the way it negotiated
            history_size=cfg.send_history_packets,
            keyframe_interval=cfg.keyframe_request_interval,
            keyframe_max_interval=cfg.keyframe_request_max_interval,
            keyframe_cpu_budget=cfg.keyframe_cpu_budget,
            fanout=room.fanout,
            subscriber_keyframe_interval=cfg.subscriber_keyframe_interval,
            subscriber_keyframe_max_interval=cfg.subscriber_keyframe_max_interval,
            nack=NackTracker(cfg.nack_max_gap, cfg.nack_max_retries, cfg.nack_retry_interval),
            emit=_quiet,
            fast_start=room.fast_start and media_kind == "video",  # a replay's copy starts joiners at once too
        )
        remote = RemoteTrack(tid, (pid, kind), track)
        self.remote[tid] = remote
        room.sources[remote.key] = track
        return remote

    def _drop_remote(self, remote: RemoteTrack, now: float) -> None:
        self.remote.pop(remote.track_id, None)
        room = self.room
        if room.sources.get(remote.key) is remote.track:
            del room.sources[remote.key]
        remote.track.close()

    def _participant_gone(self, participant_id: str) -> None:
        self.room.remote_left(participant_id)

    def role_of(self, participant_id: str) -> ParticipantRole | None:
        return self.remote_participants.get(participant_id)

    # -- stats ------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "link_id": self.link_id,
            "end": "origin" if self.origin else "copy",
            "local": list(self.local),
            "peer": list(self.peer) if self.peer else None,
            "datagrams_in": self.datagrams_in,
            "rtp_in": self.rtp_in,
            "refused": self.refused,
            "replayed": self.replayed,
            "wrong_address": self.wrong_address,
            "unknown_track": self.unknown_track,
            "errors": self.errors + self.wire.errors,
            "states_in": self.states_in,
            "states_out": self.states_out,
            "heard_ago_s": round(time.monotonic() - self.heard_at, 2) if self.heard_at else None,
            "down": self.down,
            "downs": self.downs,
            "sent": [s.snapshot() for s in self.senders.values()],
            "received": [
                {"track_id": r.track_id, "participant_id": r.key[0], "track": str(r.key[1]), "wanted": r.wanted(),
                 **r.track.snapshot()}
                for r in self.remote.values()
            ],
            "remote_participants": len(self.remote_participants),
        }

