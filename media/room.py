"""A room: the live lesson's participants, their published tracks, and which track each slot shows.

Slots are bound to a *source key*, (participant id, track kind), not to a connection. When the lead
reconnects under the same participant id, the key finds the new connection's track and every slot
resumes on its own SSRC; while the lead is away the slot stays, showing "source off air".

The lead's preview slots (thumbnails) show the receiving classrooms' cameras, first come first served:
a room-wide list of positions, position i on each lead's i-th preview slot. A classroom takes the
lowest free position when its camera's first packet arrives, keeps it across its own reconnects, and
frees it only when it leaves; the classroom waiting longest (more classrooms than slots) takes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from media.api import (
    MAX_PREVIEW_SLOTS,
    EventKind,
    MediaError,
    ParticipantRole,
    RecordingRequest,
    SlotKind,
    TrackKind,
)
from media.config import MediaConfig
from media.forwarding import DownTrack, FanoutQueue, InboundTrack
from media.nack_tracker import NackTracker
from media.peer import MEDIA_READY, MLine, Peer, codec_info, is_rtx
from media.ratelimit import FairShares, RateLimitedLog
from media.recorder import LessonRecorder

if TYPE_CHECKING:
    from media.relay import RelayLink

logger = logging.getLogger(__name__)

Emit = Callable[[EventKind, str, str | None, TrackKind | None, Mapping[str, Any] | None], None]

_LEAD_SLOTS = {
    "video": [SlotKind.TALKBACK_CAMERA] + [SlotKind.PREVIEW] * MAX_PREVIEW_SLOTS,
    "audio": [SlotKind.TALKBACK_AUDIO],
}
_RECEIVER_SLOTS = {
    "video": [SlotKind.CAMERA, SlotKind.SCREEN, SlotKind.TALKBACK_CAMERA],
    "audio": [SlotKind.AUDIO, SlotKind.TALKBACK_AUDIO],
}
_PUBLISH_ORDER = {"video": [TrackKind.CAMERA, TrackKind.SCREEN], "audio": [TrackKind.AUDIO]}
_SLOT_SOURCE = {
    SlotKind.CAMERA: TrackKind.CAMERA,
    SlotKind.AUDIO: TrackKind.AUDIO,
    SlotKind.SCREEN: TrackKind.SCREEN,
    SlotKind.TALKBACK_CAMERA: TrackKind.CAMERA,
    SlotKind.TALKBACK_AUDIO: TrackKind.AUDIO,
    SlotKind.PREVIEW: TrackKind.CAMERA,
}
_TICK = 0.1


class Participant:
    def __init__(self, participant_id: str, role: ParticipantRole, peer: Peer) -> None:
        self.id = participant_id
        self.role = role
        self.peer = peer
        self.inbound: dict[TrackKind, InboundTrack] = {}
        self.slots: list[DownTrack] = []
        self.announced_up = False
        # Misbehaviour count at the start of the current window (Room._reap).
        self.faults_at = 0
        self.faults_since = time.monotonic()

    def faults(self) -> int:
        """What this participant's own packets made go wrong: handler exceptions, malformed or
        oversized packets, feedback over its rate limits. (Send errors toward it are not its fault.)"""
        peer = self.peer
        return (
            peer.errors
            + peer.bad_rtp
            + peer.rate_limited
            + sum(t.oversized for t in self.inbound.values())
        )


class Room:
    def __init__(
        self,
        room_id: str,
        config: MediaConfig,
        emit: Emit,
        recording: RecordingRequest | None = None,
        shares: FairShares | None = None,
        fast_start: bool = False,
    ) -> None:
        self.id = room_id
        # the lead is a recording (a replay): new slots start at its last keyframe (DownTrack._fast_start)
        self.fast_start = fast_start
        # the lead's recording (media/recorder.py): a sink on each of its published tracks
        self.recorder = (
            LessonRecorder(Path(recording.folder), room_id, recording.keyframe_every_s) if recording else None
        )
        self.config = config
        self._emit = emit
        self.participants: dict[str, Participant] = {}
        self.sources: dict[tuple[str, TrackKind], InboundTrack] = {}
        self.lead_id: str | None = None
        self.talkback_id: str | None = None
        self.talkback_to_all = False
        # preview positions (participant id or None) and the classrooms eligible for one, in the order
        # their cameras first went on air
        self.preview_ids: list[str | None] = []
        self.preview_queue: dict[str, None] = {}
        self.opened_at = time.time()
        self._closing = False
        # Relay links to the other copies of this room (media/relay.py); a copy follows the origin's
        # lead and talk-back, and its classrooms' tracks reach the origin over its link.
        self.links: list[RelayLink] = []
        self.is_copy = False
        self.refused_joins = 0  # joins the worker refused for capacity
        # One line per cause per minute for what hostile or broken peers make go wrong.
        self.ratelog = RateLimitedLog(logger)
        # This room's share of the worker's retransmissions (equal among the rooms that retransmit,
        # at most room_retransmissions_per_second); a room on its own has the worker's whole rate.
        self.retransmit_shares = shares or FairShares(config.worker_retransmissions_per_second)
        self.retransmit_budget = self.retransmit_shares.share(config.room_retransmissions_per_second, time.monotonic())
        loop = asyncio.get_running_loop()
        self.fanout = FanoutQueue(loop)
        self._task = loop.create_task(self._housekeeping())

    def emit(
        self,
        kind: EventKind,
        participant_id: str | None = None,
        track: TrackKind | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self._emit(kind, self.id, participant_id, track, detail)
        if kind == EventKind.PUBLISHER_UP and track == TrackKind.CAMERA and participant_id is not None:
            self._camera_on_air(participant_id)

    # -- membership -------------------------------------------------------------------------------

    async def join(
        self,
        participant_id: str,
        role: ParticipantRole,
        offer_sdp: str,
        tracks: Mapping[str, TrackKind] | None,
        slots: Mapping[str, SlotKind] | None,
    ) -> str:
        role = ParticipantRole(role)
        peer = Peer(self.config, self._on_peer_state, self.ratelog)
        try:
            mlines = await peer.apply_offer(offer_sdp)
            publish, slot_of = self._plan(role, mlines, tracks, slots)
            directions = {}
            for line in mlines:
                sfu_recv = line.mid in publish
                sfu_send = line.mid in slot_of
                directions[line.mid] = (
                    "sendrecv"
                    if sfu_recv and sfu_send
                    else "recvonly"
                    if sfu_recv
                    else "sendonly"
                    if sfu_send
                    else "inactive"
                )
            answer = await peer.answer(directions)
        except BaseException:
            await peer.close()
            raise
        if self._closing:
            await peer.close()
            raise MediaError(f"room {self.id} is closing")

        old = self.participants.get(participant_id)
        if old is not None:
            # A reconnect: the new connection replaces the old one; its tracks take over the same keys.
            await self._remove(old, reason="replaced", announce=False)
        participant = Participant(participant_id, role, peer)
        now = time.monotonic()
        for line in mlines:
            if line.mid in publish:
                participant.inbound[publish[line.mid]] = self._make_inbound(participant, line, publish[line.mid])
            if line.mid in slot_of:
                participant.slots.append(self._make_downtrack(participant, line, slot_of[line.mid]))
        peer.register(list(participant.inbound.values()), participant.slots)
        self.participants[participant_id] = participant
        for kind, track in participant.inbound.items():
            self.sources[(participant_id, kind)] = track
        if role == ParticipantRole.LEAD:
            self.lead_id = participant_id
            self._record(participant)
        changed = self._assign_previews()
        self._rebind(now)
        if changed or any(dt.slot == SlotKind.PREVIEW for dt in participant.slots):
            self._announce_previews()
        return answer

    def _record(self, participant: Participant) -> None:
        """Give each track the lead publishes a recorder sink (a reconnect continues the same dump)."""
        recorder = self.recorder
        if recorder is None:
            return
        new = participant.id not in recorder.writers
        slots = []
        for kind, track in participant.inbound.items():
            codec = next(iter(track.codecs.values()), None)
            if codec is None:
                continue
            track.recorder = recorder.sink(participant.id, str(kind), track.media_kind, codec.name, codec.clock_rate,
                                           track.ssrc or 0)
            if track.recorder is not None:
                slots.append(str(kind))
        writer = recorder.writers.get(participant.id)
        if new and writer is not None:
            self.emit(EventKind.RECORDING_STARTED, participant.id, None, {"dump": str(writer.path), "slots": slots})

    async def finish_recording(self) -> None:
        """Finalise the room's recording after it closed, and tell what became of each dump."""
        if self.recorder is None:
            return
        for done in await self.recorder.close():
            if done.info is not None:
                self.emit(EventKind.RECORDING_FINISHED, done.participant_id, None,
                          {**done.info.to_json(), "dump": str(done.dump), "write_error": done.error})
            else:
                self.emit(EventKind.RECORDING_FAILED, done.participant_id, None,
                          {"dump": str(done.dump), "error": done.error})

    def _plan(
        self,
        role: ParticipantRole,
        mlines: list[MLine],
        tracks: Mapping[str, TrackKind] | None,
        slots: Mapping[str, SlotKind] | None,
    ) -> tuple[dict[str, TrackKind], dict[str, SlotKind]]:
        publish: dict[str, TrackKind] = {}
        slot_of: dict[str, SlotKind] = {}
        sending = [m for m in mlines if m.client_sends]
        if sending and role == ParticipantRole.OBSERVER:
            raise MediaError("an observer may not publish")
        if tracks is not None:
            for m in sending:
                if m.mid in tracks:
                    publish[m.mid] = TrackKind(tracks[m.mid])
        else:
            order = {k: list(v) for k, v in _PUBLISH_ORDER.items()}
            for m in sending:
                if order[m.media_kind]:
                    publish[m.mid] = order[m.media_kind].pop(0)
        if len(set(publish.values())) != len(publish):
            raise MediaError("a participant publishes each track kind at most once")
        for mid, kind in publish.items():
            media_kind = next(m.media_kind for m in mlines if m.mid == mid)
            if (kind == TrackKind.AUDIO) != (media_kind == "audio"):
                raise MediaError(f"m-line {mid} is {media_kind}, cannot carry {kind}")
        receiving = [m for m in mlines if m.client_receives]
        if slots is not None:
            for m in receiving:
                if m.mid in slots:
                    slot_of[m.mid] = SlotKind(slots[m.mid])
        else:
            defaults = _LEAD_SLOTS if role == ParticipantRole.LEAD else _RECEIVER_SLOTS
            order = {k: list(v) for k, v in defaults.items()}
            for m in receiving:
                if order[m.media_kind]:
                    slot_of[m.mid] = order[m.media_kind].pop(0)
        previews = sum(1 for slot in slot_of.values() if slot == SlotKind.PREVIEW)
        if previews and role != ParticipantRole.LEAD:
            raise MediaError("only the lead has preview slots")
        if previews > MAX_PREVIEW_SLOTS:
            raise MediaError(f"at most {MAX_PREVIEW_SLOTS} preview slots")
        for mid, slot in slot_of.items():
            media_kind = next(m.media_kind for m in mlines if m.mid == mid)
            if (_SLOT_SOURCE[slot] == TrackKind.AUDIO) != (media_kind == "audio"):
                raise MediaError(f"m-line {mid} is {media_kind}, cannot show {slot}")
        return publish, slot_of

    def _make_inbound(self, participant: Participant, line: MLine, kind: TrackKind) -> InboundTrack:
        cfg = self.config
        codecs = {c.payloadType: codec_info(c) for c in line.codecs if not is_rtx(c)}
        rtx_apt = {
            c.payloadType: int(c.parameters["apt"])
            for c in line.codecs
            if is_rtx(c) and str(c.parameters.get("apt", "")).isdigit()
        }
        feedback = {(f.type, f.parameter) for c in line.codecs for f in c.rtcpFeedback}
        fir_only = ("ccm", "fir") in feedback and ("nack", "pli") not in feedback
        return InboundTrack(
            participant_id=participant.id,
            kind=kind,
            media_kind=line.media_kind,
            mid=line.mid,
            codecs=codecs,
            rtx_apt=rtx_apt,
            ssrc=line.ssrc,
            rtx_ssrc=line.rtx_ssrc,
            wire=participant.peer.wire_for(line),
            rtcp_ssrc=line.transceiver.sender._ssrc,
            fir_only=fir_only,
            history_size=cfg.send_history_packets,
            keyframe_interval=cfg.keyframe_request_interval,
            keyframe_max_interval=cfg.keyframe_request_max_interval,
            keyframe_cpu_budget=cfg.keyframe_cpu_budget,
            fanout=self.fanout,
            subscriber_keyframe_interval=cfg.subscriber_keyframe_interval,
            subscriber_keyframe_max_interval=cfg.subscriber_keyframe_max_interval,
            nack=NackTracker(cfg.nack_max_gap, cfg.nack_max_retries, cfg.nack_retry_interval),
            emit=self.emit,
            fast_start=self.fast_start and line.media_kind == "video",
        )

    def _make_downtrack(self, participant: Participant, line: MLine, slot: SlotKind) -> DownTrack:
        pt_by_key: dict[str, int] = {}
        clock_rate = 90000 if line.media_kind == "video" else 48000
        for c in line.codecs:
            if not is_rtx(c):
                info = codec_info(c)
                pt_by_key.setdefault(info.key, c.payloadType)
                clock_rate = info.clock_rate if len(pt_by_key) == 1 else clock_rate
        rtx_pt_by_pt: dict[int, int] = {}
        if self.config.use_rtx:
            for c in line.codecs:
                apt = str(c.parameters.get("apt", ""))
                if is_rtx(c) and apt.isdigit():
                    rtx_pt_by_pt[int(apt)] = c.payloadType
        sender = line.transceiver.sender
        return DownTrack(
            participant_id=participant.id,
            slot=slot,
            mid=line.mid,
            media_kind=line.media_kind,
            ssrc=sender._ssrc,
            rtx_ssrc=sender._rtx_ssrc,
            pt_by_key=pt_by_key,
            rtx_pt_by_pt=rtx_pt_by_pt,
            clock_rate=clock_rate,
            wire=participant.peer.wire_for(line),
            emit=self.emit,
            retransmit_share=self.config.retransmit_share,
            retransmit_floor_bps=self.config.retransmit_floor_bps,
            retransmit_burst=self.config.retransmit_burst,
            room_budget=self.retransmit_budget,
            urgent_keyframes=participant.role == ParticipantRole.LEAD,
        )

    async def add_candidate(
        self, participant_id: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        participant = self.participants.get(participant_id)
        if participant is None:
            raise MediaError(f"{participant_id} is not in room {self.id}")
        await participant.peer.add_candidate(candidate, sdp_mid, sdp_mline_index)

    async def leave(self, participant_id: str, reason: str = "left") -> None:
        participant = self.participants.get(participant_id)
        if participant is None:
            raise MediaError(f"{participant_id} is not in room {self.id}")
        await self._remove(participant, reason=reason, announce=True)

    async def _remove(self, participant: Participant, reason: str, announce: bool) -> None:
        if self.participants.get(participant.id) is participant:
            del self.participants[participant.id]
        for kind, track in participant.inbound.items():
            if self.sources.get((participant.id, kind)) is track:
                del self.sources[(participant.id, kind)]
            was_live = track.live
            track.close()
            if was_live:
                self.emit(EventKind.PUBLISHER_DOWN, participant.id, kind, {"reason": reason, "mid": track.mid})
        for dt in participant.slots:
            dt.close()
        if announce:
            self.emit(EventKind.SUBSCRIBER_DOWN, participant.id, None, {"reason": reason})
        if announce and self.talkback_id == participant.id and not self.is_copy:
            self.talkback_id = None
            self.talkback_to_all = False
            self.emit(EventKind.TALKBACK, None, None, {"participant_id": None, "to_all": False, "reason": reason})
        # A reconnect (not announced) keeps the classroom's preview position for its new connection.
        previews_changed = False
        if announce and participant.id in self.preview_queue:
            del self.preview_queue[participant.id]
            previews_changed = self._assign_previews()
        self._rebind(time.monotonic())
        if previews_changed:
            self._announce_previews()
        await participant.peer.close()

    def _on_peer_state(self, peer: Peer, state: str) -> None:
        participant = next((p for p in self.participants.values() if p.peer is peer), None)
        if participant is None:
            return
        if state == MEDIA_READY:
            # Held slots ask now rather than at the next housekeeping tick.
            now = time.monotonic()
            for dt in participant.slots:
                dt.ask_keyframe_if_due(now, self.config.keyframe_retry_interval)
        elif state == "connected" and not participant.announced_up:
            participant.announced_up = True
            self.emit(EventKind.SUBSCRIBER_UP, participant.id, None, {"role": str(participant.role)})
        elif state in ("failed", "closed"):
            asyncio.get_running_loop().create_task(self._drop(participant, "disconnected"))

    async def _drop(self, participant: Participant, reason: str) -> None:
        if self.participants.get(participant.id) is participant:
            await self._remove(participant, reason=reason, announce=True)

    # -- talk-back and binding --------------------------------------------------------------------

    def set_talkback(self, participant_id: str | None, to_all: bool) -> None:
        if participant_id is not None:
            role = self.role_of(participant_id)
            if role is None:
                raise MediaError(f"{participant_id} is not in room {self.id}")
            if role != ParticipantRole.RECEIVER:
                raise MediaError("talk-back calls on a receiving classroom")
        self.talkback_id = participant_id
        self.talkback_to_all = bool(to_all) and participant_id is not None
        self._rebind(time.monotonic())
        self.emit(
            EventKind.TALKBACK, participant_id, None, {"participant_id": participant_id, "to_all": self.talkback_to_all}
        )

    # -- copies of the room in other workers (media/relay.py) ---------------------------------------

    def role_of(self, participant_id: str) -> ParticipantRole | None:
        """The role of a participant here or in a linked copy of the room (None: in neither)."""
        participant = self.participants.get(participant_id)
        if participant is not None:
            return participant.role
        for link in self.links:
            role = link.role_of(participant_id)
            if role is not None:
                return role
        return None

    def rebind(self, now: float) -> None:
        """Point every slot at its source again: a link brought or took tracks, or the origin's state."""
        self._rebind(now)

    def follow_origin(self, lead_id: str | None, talkback_id: str | None, to_all: bool) -> bool:
        """A copy takes the origin's lead and talk-back (announced there, not here); True if changed."""
        shown = (lead_id, talkback_id, to_all and talkback_id is not None)
        if shown == (self.lead_id, self.talkback_id, self.talkback_to_all):
            return False
        self.lead_id, self.talkback_id, self.talkback_to_all = shown
        return True

    def remote_on_air(self, participant_id: str, kind: TrackKind) -> None:
        """A track of a participant in a linked copy went on air there (a classroom's camera may take
        a preview position here, as a local one would)."""
        if kind == TrackKind.CAMERA:
            self._camera_on_air(participant_id)

    def remote_left(self, participant_id: str) -> None:
        """A participant of a linked copy left it: end its talk-back, free its preview position."""
        if self.is_copy or self._closing or participant_id in self.participants:
            return
        if self.talkback_id == participant_id:
            self.talkback_id = None
            self.talkback_to_all = False
            self.emit(EventKind.TALKBACK, None, None, {"participant_id": None, "to_all": False, "reason": "left"})
        changed = False
        if participant_id in self.preview_queue:
            del self.preview_queue[participant_id]
            changed = self._assign_previews()
        self._rebind(time.monotonic())
        if changed:
            self._announce_previews()

    def _binding(self, participant: Participant, slot: SlotKind) -> tuple[str, TrackKind] | None:
        kind = _SLOT_SOURCE[slot]
        if slot in (SlotKind.TALKBACK_CAMERA, SlotKind.TALKBACK_AUDIO):
            tb = self.talkback_id
            if tb is None or tb == participant.id:
                return None
            if participant.role == ParticipantRole.LEAD or self.talkback_to_all:
                return (tb, kind)
            return None
        if self.lead_id is None or self.lead_id == participant.id:
            return None
        return (self.lead_id, kind)

    def _rebind(self, now: float) -> None:
        for participant in self.participants.values():
            position = 0
            for dt in participant.slots:
                if dt.slot == SlotKind.PREVIEW:
                    key = self._preview_binding(participant, position)
                    position += 1
                else:
                    key = self._binding(participant, dt.slot)
                dt.bind(key, self.sources.get(key) if key is not None else None, now)

    # -- the lead's preview slots -----------------------------------------------------------------

    def _preview_binding(self, participant: Participant, position: int) -> tuple[str, TrackKind] | None:
        if participant.role != ParticipantRole.LEAD or position >= len(self.preview_ids):
            return None
        pid = self.preview_ids[position]
        return None if pid is None or pid == participant.id else (pid, TrackKind.CAMERA)

    def _camera_on_air(self, participant_id: str) -> None:
        """A classroom's camera sent its first packet: it may take a preview position."""
        if self.role_of(participant_id) != ParticipantRole.RECEIVER or participant_id in self.preview_queue:
            return
        self.preview_queue[participant_id] = None
        if self._assign_previews():
            self._rebind(time.monotonic())
            self._announce_previews()

    def _assign_previews(self) -> bool:
        """Fit the positions to the lead's preview slots and fill free ones; True when anything moved."""
        lead = self.participants.get(self.lead_id) if self.lead_id else None
        if lead is not None:
            capacity = sum(1 for dt in lead.slots if dt.slot == SlotKind.PREVIEW)
        else:
            capacity = len(self.preview_ids)  # the lead is away: keep the picture for its return
        ids = [pid if pid in self.preview_queue else None for pid in self.preview_ids[:capacity]]
        ids += [None] * (capacity - len(ids))
        waiting = [pid for pid in self.preview_queue if pid not in ids]
        for i, pid in enumerate(ids):
            if pid is None and waiting:
                ids[i] = waiting.pop(0)
        changed = ids != self.preview_ids
        self.preview_ids = ids
        return changed

    def _announce_previews(self) -> None:
        """Tell each lead which classroom each of its preview slots (by mid) shows now."""
        for participant in self.participants.values():
            slots = [dt for dt in participant.slots if dt.slot == SlotKind.PREVIEW]
            if not slots:
                continue
            shown = [
                {"mid": dt.mid, "participant_id": key[0] if (key := self._preview_binding(participant, i)) else None}
                for i, dt in enumerate(slots)
            ]
            self.emit(EventKind.PREVIEW, participant.id, None, {"slots": shown})

    # -- periodic work ----------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        cfg = self.config
        next_report = time.monotonic() + cfg.report_interval
        while True:
            await asyncio.sleep(_TICK)
            try:
                now = time.monotonic()
                for track in list(self.sources.values()):
                    try:
                        if track.nack.missing:
                            lost = track.nack.due(now)
                            if lost:
                                track.send_nack(lost)
                        if track.want_keyframe and now >= track.next_keyframe_request and track.live:
                            track.request_keyframe(now)
                        if track.subscriber_keyframe_pending and track.live:
                            track.subscriber_keyframe_due(now)
                        if track.live and now - track.last_packet_at > (
                            cfg.screen_idle_timeout if track.kind == TrackKind.SCREEN else cfg.track_idle_timeout
                        ):
                            # silent: off air until its next packet (a dropped link, a stopped share)
                            track.live = False
                            # (a track fed by a relay link reports nothing: its publisher's end does)
                            track.emit(EventKind.PUBLISHER_DOWN, track.participant_id, track.kind,
                                       {"reason": "idle", "mid": track.mid})
                    except Exception:
                        # One participant's broken track costs its own housekeeping, not the room's.
                        self._failed(track.participant_id, "housekeeping of a track", now)
                if self.recorder is not None:
                    self._recording_tick(now)
                for participant in list(self.participants.values()):
                    for dt in participant.slots:
                        try:
                            dt.ask_keyframe_if_due(now, cfg.keyframe_retry_interval)
                        except Exception:
                            self._failed(participant.id, "housekeeping of a slot", now)
                if now >= next_report:
                    next_report = now + cfg.report_interval
                    for participant in list(self.participants.values()):
                        try:
                            participant.peer.review_rtcp()
                            participant.peer.send_reports(now, cfg.publisher_max_bitrate)
                        except Exception:
                            self._failed(participant.id, "sending reports", now)
                    await self._reap(now)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("room %s housekeeping failed", self.id)

    def _recording_tick(self, now: float) -> None:
        """While recording: a keyframe from the lead every few seconds (so the file can be played and
        replayed from anywhere), and a dump that stopped (a full disk) reported once."""
        recorder = self.recorder
        assert recorder is not None
        if self.lead_id is not None and recorder.keyframe_due(time.time()):
            for kind in (TrackKind.CAMERA, TrackKind.SCREEN):
                track = self.sources.get((self.lead_id, kind))
                if track is not None and track.live:
                    track.request_keyframe(now)
        for participant_id, writer in recorder.new_errors():
            self.emit(EventKind.RECORDING_FAILED, participant_id, None,
                      {"dump": str(writer.path), "error": writer.error, "live": True})

    def _failed(self, participant_id: str, what: str, now: float) -> None:
        """Count an exception of one participant's part of the tick, and log it once per minute."""
        participant = self.participants.get(participant_id)
        if participant is not None:
            participant.peer.errors += 1
        if self.ratelog(f"tick:{what}", now, "room %s: %s of %s failed", self.id, what, participant_id):
            logger.debug("the failure", exc_info=True)

    async def _reap(self, now: float) -> None:
        """Free participants that vanished: never connected, or silent (no RTCP) for too long."""
        cfg = self.config
        for participant in list(self.participants.values()):
            peer = participant.peer
            if cfg.misbehaving_errors:
                faults = participant.faults()
                if faults - participant.faults_at > cfg.misbehaving_errors:
                    # Rare (each takes thousands of faults) and what the technician must see: always logged.
                    logger.warning(
                        "room %s: dropping %s as misbehaving: %d faults in %.0f s",
                        self.id, participant.id, faults - participant.faults_at, now - participant.faults_since,
                    )
                    await self._drop(participant, "misbehaving")
                    continue
                if now - participant.faults_since >= cfg.misbehaving_window:
                    participant.faults_at, participant.faults_since = faults, now
            if not peer.connected and now - peer.created_at > cfg.connect_timeout:
                await self._drop(participant, "connect_timeout")
            elif peer.connected and now - peer.last_rtcp > cfg.peer_timeout:
                await self._drop(participant, "timeout")

    async def close(self, reason: str = "room_closed") -> None:
        """Close the room; each participant is told `reason` (a copy whose origin died: room_lost)."""
        self._closing = True
        self._task.cancel()
        for link in self.links:
            link.close()
        self.links.clear()
        self.retransmit_shares.remove(self.retransmit_budget)
        for participant in list(self.participants.values()):
            await self._remove(participant, reason=reason, announce=True)

    # -- stats ------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        lead = self.participants.get(self.lead_id) if self.lead_id else None
        now = time.monotonic()
        participants = {}
        for p in self.participants.values():
            peer = p.peer
            participants[p.id] = {
                "role": str(p.role),
                "connection": peer.state,
                "published": {str(k): t.snapshot() for k, t in p.inbound.items()},
                "slots": {dt.mid: dt.snapshot() for dt in p.slots},
                "rtcp_packets": peer.rtcp_packets,
                "transport_feedback": peer.transport_feedback,
                "bad_rtp": peer.bad_rtp,
                "unknown_rtp": peer.unknown_rtp,
                "errors": peer.errors + sum(w.errors for w in peer.wires.values()),
                # seconds since anything came from this client (None: nothing yet)
                "heard_ago_s": round(now - peer.last_heard, 2) if peer.last_heard else None,
                "rate_limited": peer.rate_limited,
                # dropped before decryption (media/ice.py): RTCP over the participant's datagram rate,
                # SRTP/SRTCP from an address other than its selected ICE pair
                "rtcp_rate_limited": peer.gate.rate_limited,
                "rtcp_rate_per_s": peer.gate.bucket.rate,  # below the configured rate while penalised
                "rtcp_penalties": peer.rtcp_penalties,
                "wrong_address_datagrams": peer.gate.wrong_address,
                "nacks_over_budget": peer.nacks_over_budget,
                "malformed_stun": peer.stun.malformed,
                "bad_size_datagrams": peer.stun.bad_size,
            }
        return {
            "room_id": self.id,
            "lead_id": self.lead_id,
            "lead_on_air": bool(lead is not None and any(t.live for t in lead.inbound.values())),
            "talkback": {"participant_id": self.talkback_id, "to_all": self.talkback_to_all},
            "preview": list(self.preview_ids),
            "refused_joins": self.refused_joins,
            # this room's part of the worker's retransmission rate now (FairShares)
            "retransmit_share_per_s": round(self.retransmit_budget.rate(now), 1),
            "participants": participants,
            "copy": self.is_copy,
            "links": [link.snapshot() for link in self.links],
        }
