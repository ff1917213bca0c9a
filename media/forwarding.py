"""The packet path: one inbound track fans out to the down tracks (subscriber slots) bound to it.

Cost model (PERFORMANCE.md): an inbound packet is parsed once and its payload kept as one `bytes`;
per subscriber we only build a 12-byte header, concatenate, SRTP-protect and `sendto` on the ICE
socket directly (no aiortc sender, no packet objects, no tasks or futures, no dict per packet). The
send history is kept once per inbound track, not per subscriber: every subscriber's outgoing packet is
the source packet under a fixed (seq, ts) offset, so a NACK maps back through the offset and the
packet is rebuilt. That is the same as a per-stream history at a fraction of the memory.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pylibsrtp

from media.api import EventKind, SlotKind, TrackKind
from media.keyframe import is_keyframe
from media.limits import MAX_NACKED_PER_PACKET, MAX_PAYLOAD
from media.nack_tracker import NackTracker
from media.ratelimit import FairShare, TokenBucket
from media.receive_stats import ReceiveStats
from media.rewriter import SeqTsRewriter
from media.rtcp import ReportBlock, build_fir, build_nacks, build_pli, build_remb, build_rr, build_sr
from media.rtp_header import RtpHeader
from media.seq_tracker import DROP, LATE, RESTART, SeqTracker

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHII")
_pack_header = _HEADER.pack
_U16 = struct.Struct("!H")
_U16_NATIVE = struct.Struct("=H")

Emit = Callable[..., None]
# A packet behind the newest whose timestamp is further than this from the newest one's is not a late
# packet of the same stream (media/seq_tracker.py).
_LATE_SECONDS = 10.0
# One received packet waiting to be fanned out: (source seq, ts, marker bit, payload type, payload,
# starts a keyframe).
Pending = tuple[int, int, int, int, bytes, bool]


class BatchSink(Protocol):
    """Takes a track's flushed batch besides its down tracks: a relay link's sender (media/relay.py)."""

    def forward(self, batch: list[Pending], now: float) -> None: ...


# UDP generic segmentation offload (Linux 4.18+, linux/udp.h): one sendmsg hands the kernel a run of
# datagrams for one destination, all of one size but the last, which may be shorter. The kernel then
# walks its stack once per run instead of once per datagram.
UDP_SEGMENT = 103
_SOL_UDP = getattr(socket, "SOL_UDP", 17)
_GSO_MAX_SEGMENTS = 64
_GSO_MAX_BYTES = 65000
# sendmsg errors that mean "this socket or route cannot segment": fall back to one sendto per packet.
_GSO_UNSUPPORTED = {errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP}


@dataclass(frozen=True, slots=True)
class CodecInfo:
    key: str  # what must match between a publisher's and a subscriber's codec, e.g. "vp8", "h264/1"
    name: str  # lowercase mime subtype, for keyframe detection
    clock_rate: int


class Wire:
    """A peer's send path once DTLS is up: SRTP protect and the nominated ICE socket.

    With `sendmsg` (the raw socket's, on Linux) a batch of packets for this peer goes down in as few
    system calls as UDP segmentation offload allows; `gso` turns off by itself on the first socket or
    route that refuses it.
    """

    __slots__ = ("addr", "errors", "gso", "protect", "protect_rtcp", "sendmsg", "sendto", "up")

    def __init__(self) -> None:
        self.up = False
        self.errors = 0
        self.gso = False
        self.protect: Callable[[bytes], bytes] = bytes
        self.protect_rtcp: Callable[[bytes], bytes] = bytes
        self.sendto: Callable[[bytes, tuple[str, int]], object] = lambda data, addr: None
        self.sendmsg: Callable[..., int] | None = None
        self.addr: tuple[str, int] = ("127.0.0.1", 9)

    def connect(
        self,
        protect: Callable[[bytes], bytes],
        protect_rtcp: Callable[[bytes], bytes],
        sendto: Callable[[bytes, tuple[str, int]], object],
        addr: tuple[str, int],
        sendmsg: Callable[..., int] | None = None,
    ) -> None:
        self.protect, self.protect_rtcp, self.sendto, self.addr = protect, protect_rtcp, sendto, addr
        self.sendmsg = sendmsg if sys.platform == "linux" else None
        self.gso = self.sendmsg is not None
        self.up = True

    def down(self) -> None:
        self.up = False
        self.gso = False
        self.protect = bytes
        self.sendto = lambda data, addr: None
        self.sendmsg = None

    def send_rtp(self, packet: bytes) -> None:
        if self.up:
            try:
                self.sendto(self.protect(packet), self.addr)
            except (pylibsrtp.Error, ValueError, TypeError, OSError):
                # ValueError: pylibsrtp refuses a packet over its size limit (media/limits.py).
                self.errors += 1

    def send_rtcp(self, packet: bytes) -> None:
        if self.up:
            try:
                self.sendto(self.protect_rtcp(packet), self.addr)
            except (pylibsrtp.Error, ValueError, TypeError, OSError):
                self.errors += 1

    def send_protected(self, packets: list[bytes]) -> None:
        """Send SRTP packets in order: runs of equal size in one GSO call each, the rest one by one."""
        if not self.up:
            return
        addr = self.addr
        n = len(packets)
        if n == 1 or not self.gso:
            sendto = self.sendto
            for packet in packets:
                try:
                    sendto(packet, addr)
                except OSError:
                    self.errors += 1
            return
        i = 0
        while i < n:
            size = len(packets[i])
            j = i + 1
            total = size
            while j < n and j - i < _GSO_MAX_SEGMENTS:
                length = len(packets[j])
                if length > size or total + length > _GSO_MAX_BYTES:
                    break
                j += 1
                total += length
                if length < size:
                    break  # a shorter datagram can only end a run
            try:
                if j - i == 1:
                    self.sendto(packets[i], addr)
                else:
                    self.sendmsg(  # type: ignore[misc]
                        packets[i:j], [(_SOL_UDP, UDP_SEGMENT, _U16_NATIVE.pack(size))], 0, addr
                    )
            except OSError as exc:
                if j - i > 1 and exc.errno in _GSO_UNSUPPORTED and self.gso:
                    logger.info("UDP segmentation offload refused (%s); sending packets one by one", exc)
                    self.gso = False
                    self.send_protected(packets[i:])
                    return
                self.errors += j - i
            i = j


class FanoutQueue:
    """Fans out, after each pass of the event loop, what the inbound tracks received in that pass.

    aiortc's receive loop hands us every datagram the socket had in one go; sending each packet to
    every subscriber as it comes costs one system call per packet per subscriber. Deferring the
    fan-out to the end of the pass lets a subscriber's share of a whole frame go down in one call
    (`Wire.send_protected`), and on an idle server the pass is a single packet, so nothing waits.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[InboundTrack] = []

    def add(self, track: InboundTrack) -> None:
        if not self.dirty:
            self.loop.call_soon(self.flush)
        self.dirty.append(track)

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        now = time.monotonic()
        for track in dirty:
            try:
                track.flush(now)
            except Exception:
                # A bug on one track must not stop the others or the loop.
                track.pending.clear()
                logger.exception("fan-out of %s/%s failed", track.participant_id, track.kind)


def ntp_time(now_wall: float) -> int:
    """64-bit NTP timestamp of a Unix time."""
    return int((now_wall + 2208988800) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


class InboundTrack:
    """One published track of one publisher connection: parse, repair, fan out."""

    def __init__(
        self,
        *,
        participant_id: str,
        kind: TrackKind,
        media_kind: str,
        mid: str,
        codecs: dict[int, CodecInfo],
        rtx_apt: dict[int, int],
        ssrc: int | None,
        rtx_ssrc: int | None,
        wire: Wire,
        rtcp_ssrc: int,
        fir_only: bool,
        history_size: int,
        keyframe_interval: float,
        nack: NackTracker,
        emit: Emit,
        keyframe_max_interval: float | None = None,
        keyframe_cpu_budget: float = 0.25,
        fanout: FanoutQueue | None = None,
        subscriber_keyframe_interval: float = 0.5,
        subscriber_keyframe_max_interval: float = 4.0,
        fast_start: bool = False,
    ) -> None:
        self.participant_id = participant_id
        # A source that cannot make a keyframe when asked (a replay): a new slot starts at its last
        # keyframe instead (`DownTrack._fast_start`); `gop_seq` is where that keyframe began (-1: none
        # since the stream (re)started).
        self.fast_start = fast_start
        self.gop_seq = -1
        self.kind = kind
        self.media_kind = media_kind
        self.video = media_kind == "video"
        self.mid = mid
        self.codecs = codecs
        self.rtx_apt = rtx_apt
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.wire = wire
        self.rtcp_ssrc = rtcp_ssrc
        self.fir_only = fir_only
        self.fir_seq = 0
        self.mask = history_size - 1
        # (source seq, ts, marker bit, payload type, payload) by seq & mask
        self.history: list[tuple[int, int, int, int, bytes] | None] = [None] * history_size
        # what the lesson's recording takes of each accepted packet (seq, ts, marker bit, pt, payload), or None
        self.recorder: Callable[[int, int, int, int, bytes], None] | None = None
        self.keyframe_interval = keyframe_interval
        self.keyframe_max_interval = keyframe_interval if keyframe_max_interval is None else keyframe_max_interval
        self.keyframe_cpu_budget = keyframe_cpu_budget
        # Seconds the fan-out of one packet to all subscribers takes (moving average, measured), and
        # packets in the last keyframe: what a requested keyframe costs this process.
        self.fanout_cost = 0.0
        self.keyframe_packets = 0
        self.keyframe_run = -1
        self.fanout = fanout
        self.pending: list[Pending] = []
        self.nack = nack
        self.max_gap = nack.max_gap
        self.max_seq = -1
        # Decides which stream a sequence number belongs to and follows a restarted one; a run of
        # four in-order packets off the line makes a restart.
        self.seq_tracker = SeqTracker(nack.max_gap, self.mask)
        self._ts = 0
        self.top_ts = 0
        clock_rate = next(iter(codecs.values())).clock_rate if codecs else 90000
        self.late_ticks = int(_LATE_SECONDS * clock_rate)
        self.restarts = 0
        self.emit = emit
        self.downtracks: list[DownTrack] = []
        # Relay links this track is sent on (media/relay.py): each gets every flushed batch once.
        self.relays: list[BatchSink] = []
        clock_rate = next(iter(codecs.values())).clock_rate if codecs else 90000
        self.stats = ReceiveStats(clock_rate)
        self.want_keyframe = False
        self.next_keyframe_request = 0.0
        # Keyframes asked for by subscribers whose slots already play (DownTrack.on_keyframe_request):
        # served at most once per `subscriber_keyframe_now` seconds, which doubles while they keep
        # asking, up to `subscriber_keyframe_max_interval`; one asked for in between is pending.
        self.subscriber_keyframe_interval = subscriber_keyframe_interval
        self.subscriber_keyframe_max_interval = max(subscriber_keyframe_interval, subscriber_keyframe_max_interval)
        self.subscriber_keyframe_now = subscriber_keyframe_interval
        self.next_subscriber_keyframe = 0.0
        self.subscriber_keyframe_pending = False
        self.subscriber_keyframes_coalesced = 0
        self.live = False
        self.closed = False
        self.packets = 0
        self.octets = 0
        self.retransmitted_in = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.nacks_sent = 0
        self.dropped = 0
        self.oversized = 0
        self.last_packet_at = 0.0

    # -- packet path ------------------------------------------------------------------------------

    def on_rtp(self, hdr: RtpHeader, data: bytes, now: float) -> None:
        payload = data[hdr.payload_start : hdr.payload_end]
        pt = hdr.payload_type
        seq = hdr.seq
        retransmission = False
        if pt in self.rtx_apt:
            if len(payload) < 2:
                self.dropped += 1
                return
            seq = (payload[0] << 8) | payload[1]
            payload = payload[2:]
            if self.max_seq < 0 or (self.max_seq - seq) & 0xFFFF > self.mask:
                # Only a packet we could have missed recently is a believable retransmission.
                self.dropped += 1
                return
            pt = self.rtx_apt[pt]
            retransmission = True
            self.retransmitted_in += 1
        codec = self.codecs.get(pt)
        if codec is None or not payload:
            # Unknown payload type, or padding-only probe packets: nothing a decoder can use.
            self.dropped += 1
            return
        if len(payload) > MAX_PAYLOAD:
            # Too big to forward and retransmit within SRTP's limit (media/limits.py): refused here,
            # once, so every packet in the history can always be sent again.
            self.oversized += 1
            self.dropped += 1
            return
        ts = hdr.timestamp
        if not retransmission:
            self._ts = ts
            verdict = self.seq_tracker.update(seq, self._known)
            if verdict == DROP:
                # Off the current line and not (yet) a run: a stray or forged number, or the first
                # packets of a restarted stream (media/seq_tracker.py).
                self.dropped += 1
                return
            if verdict == RESTART:
                self._restart(seq, now)
            if verdict != LATE:
                self.top_ts = ts
            self.max_seq = self.seq_tracker.max_seq
            self.stats.on_packet(seq, ts, now)
        lost = self.nack.on_packet(seq, now)
        if lost:
            self.send_nack(lost)
        entry = self.history[seq & self.mask]
        if entry is not None and entry[0] == seq:
            return  # a duplicate (RTX answer to a NACK someone else already filled)
        mbit = 0x80 if hdr.marker else 0
        self.history[seq & self.mask] = (seq, ts, mbit, pt, payload)
        recorder = self.recorder
        if recorder is not None:
            recorder(seq, ts, mbit, pt, payload)  # a struct pack and a queue append (media/recorder.py)
        self.packets += 1
        self.octets += len(payload)
        self.last_packet_at = now
        keyframe = False
        if self.video and not retransmission:
            if is_keyframe(codec.name, payload):
                keyframe = True
                self.keyframes += 1
                self.gop_seq = seq
                self.want_keyframe = False
                # whoever asked for it, it repairs every playing subscriber's picture too
                self.subscriber_keyframe_pending = False
                self.keyframe_run = 0
            if self.keyframe_run >= 0:
                self.keyframe_run += 1
                if mbit or self.keyframe_run > self.mask:
                    self.keyframe_packets = self.keyframe_run
                    self.keyframe_run = -1
        if not self.live:
            self.live = True
            self.emit(EventKind.PUBLISHER_UP, self.participant_id, self.kind, {"mid": self.mid})
        if self.want_keyframe and now >= self.next_keyframe_request:
            self.request_keyframe(now)
        pending = self.pending
        pending.append((seq, ts, mbit, pt, payload, keyframe))
        if len(pending) == 1:
            if self.fanout is None:
                self.flush(now)
            else:
                self.fanout.add(self)

    def _known(self, seq: int) -> bool:
        """Whether a packet behind the newest belongs to the current stream: a late one (its number is
        not in the history) or a duplicate (the same number and timestamp), with a timestamp within
        `_LATE_SECONDS` of the newest packet's. The same number with another timestamp, or a timestamp
        far away, is a different stream: a restarted encoder counting from lower down."""
        ts = self._ts
        if (ts - self.top_ts + self.late_ticks) & 0xFFFFFFFF > 2 * self.late_ticks:
            return False
        entry = self.history[seq & self.mask]
        return entry is None or entry[0] != seq or entry[1] == ts

    def _restart(self, seq: int, now: float) -> None:
        """The publisher's stream restarted or jumped to `seq`: every slot starts a new mapping so its
        outgoing numbering stays continuous, and nothing of the old numbering is kept."""
        self.flush(now)  # what came before the jump still goes out under the old mapping
        for dt in self.downtracks:
            dt.restart(now)
        self.want_keyframe = self.video
        self.restarts += 1
        self.gop_seq = -1
        self.history = [None] * (self.mask + 1)
        self.nack.reset(seq)
        # The NACK tracker now starts at `seq`; its next packet must not look like a gap from there.
        self.nack.max_seq = (seq - 1) & 0xFFFF

    def flush(self, now: float) -> None:
        """Send what arrived since the last flush to every down track, and time it."""
        batch = self.pending
        if not batch:
            return
        self.pending = []
        for relay in self.relays:
            relay.forward(batch, now)
        downtracks = self.downtracks
        if not downtracks:
            return
        started = time.perf_counter()
        for dt in downtracks:
            dt.forward(batch, now)
        cost = (time.perf_counter() - started) / len(batch)
        self.fanout_cost = cost if self.fanout_cost == 0.0 else self.fanout_cost + 0.1 * (cost - self.fanout_cost)

    # -- upstream RTCP ----------------------------------------------------------------------------

    def send_nack(self, lost: list[int]) -> None:
        if self.ssrc is not None:
            self.nacks_sent += len(lost)
            # Split so that no NACK packet exceeds what SRTP protects, however long the list.
            for packet in build_nacks(self.rtcp_ssrc, self.ssrc, lost):
                self.wire.send_rtcp(packet)

    def request_keyframe(self, now: float) -> None:
        """Ask the publisher for a keyframe, at most once per interval whoever asks (coalescing).

        One keyframe releases every slot waiting for it, and it costs a burst of packets to every
        subscriber of the track, so the interval grows when that burst would take more than the
        budgeted share of this process's time (`keyframe_interval_now`).
        """
        self.want_keyframe = True
        if now < self.next_keyframe_request or self.ssrc is None or not self.wire.up:
            return
        self.next_keyframe_request = now + self.keyframe_interval_now()
        self.keyframe_requests += 1
        try:
            if self.fir_only:
                self.fir_seq = (self.fir_seq + 1) & 0xFF
                packet = build_fir(self.rtcp_ssrc, self.ssrc, self.fir_seq)
            else:
                packet = build_pli(self.rtcp_ssrc, self.ssrc)
        except struct.error:
            # An SSRC out of range (media/sdp_check.py refuses such offers): never half a switch.
            self.wire.errors += 1
            return
        self.wire.send_rtcp(packet)

    def subscriber_keyframe_request(self, now: float) -> None:
        """A playing subscriber lost its picture: ask now if the backoff allows, else keep it pending
        (`subscriber_keyframe_due`, from the room's tick). Each request served within one interval
        of the window opening doubles the interval (up to the maximum); a window that stayed unused
        for a whole interval brings it back to the base."""
        if now < self.next_subscriber_keyframe:
            if not self.subscriber_keyframe_pending:
                self.subscriber_keyframe_pending = True
            self.subscriber_keyframes_coalesced += 1
            return
        if now - self.next_subscriber_keyframe >= self.subscriber_keyframe_now:
            self.subscriber_keyframe_now = self.subscriber_keyframe_interval
        else:
            self.subscriber_keyframe_now = min(self.subscriber_keyframe_max_interval, 2 * self.subscriber_keyframe_now)
        self._serve_subscriber_keyframe(now)

    def subscriber_keyframe_due(self, now: float) -> None:
        """The room's tick: a pending request whose window opened is served now."""
        if self.subscriber_keyframe_pending and now >= self.next_subscriber_keyframe:
            self.subscriber_keyframe_now = min(self.subscriber_keyframe_max_interval, 2 * self.subscriber_keyframe_now)
            self._serve_subscriber_keyframe(now)

    def _serve_subscriber_keyframe(self, now: float) -> None:
        self.subscriber_keyframe_pending = False
        self.next_subscriber_keyframe = now + self.subscriber_keyframe_now
        self.request_keyframe(now)

    def keyframe_interval_now(self) -> float:
        """The base interval, or as long as keeps requested keyframes within the CPU budget.

        A keyframe costs its packets times the measured fan-out time of one packet; requesting one
        every `cost / budget` seconds spends at most `budget` of a core on them.
        """
        interval = 0.0
        if self.keyframe_cpu_budget > 0:
            interval = self.fanout_cost * self.keyframe_packets / self.keyframe_cpu_budget
        return min(self.keyframe_max_interval, max(self.keyframe_interval, interval))

    def on_sender_report(self, ntp: int, now: float) -> None:
        self.stats.on_sr(ntp, now)

    def receiver_report(self, now: float, remb_bitrate: int) -> bytes:
        if self.ssrc is None or self.stats.base_seq is None:
            return b""
        rr = build_rr(self.rtcp_ssrc, [self.stats.report(self.ssrc, now)])
        if self.video and remb_bitrate > 0:
            rr += build_remb(self.rtcp_ssrc, remb_bitrate, [self.ssrc])
        return rr

    def since_keyframe(self, before_seq: int) -> list[tuple[int, int, int, int, bytes]] | None:
        """The packets from the last keyframe up to (not including) `before_seq`, from the history, in
        order; one not (yet) received is left out (a subscriber NACKs it). None when there is no
        keyframe to start from: none since the stream (re)started, or the history no longer holds it."""
        start = self.gop_seq
        if start < 0:
            return None
        count = (before_seq - start) & 0xFFFF
        if count == 0 or count > self.mask:
            return None
        history = self.history
        mask = self.mask
        out = []
        for i in range(count):
            entry = history[(start + i) & mask]
            if entry is not None and entry[0] == (start + i) & 0xFFFF:
                out.append(entry)
        if not out or out[0][0] != start:
            return None  # the keyframe's first packet was overwritten
        return out

    def history_entry(self, seq: int) -> tuple[int, int, int, int, bytes] | None:
        entry = self.history[seq & self.mask]
        if entry is not None and entry[0] == seq:
            return entry
        return None

    def close(self) -> None:
        self.closed = True
        self.history = [None] * (self.mask + 1)
        self.pending = []
        for dt in list(self.downtracks):
            dt.bind(dt.key, None, 0.0)
        self.downtracks.clear()

    def snapshot(self) -> dict[str, object]:
        s = self.stats
        return {
            "mid": self.mid,
            "ssrc": self.ssrc,
            "on_air": self.live and not self.closed,
            "packets": self.packets,
            "bytes": self.octets,
            "packets_lost": max(0, s.lost),
            "jitter_ms": round(s.jitter * 1000.0 / s.clock_rate, 3),
            "nacks_sent": self.nacks_sent,
            "retransmissions_received": self.retransmitted_in,
            "keyframes": self.keyframes,
            "keyframe_requests": self.keyframe_requests,
            # playing subscribers' PLI/FIR folded into one served later (the backoff), and its interval now
            "subscriber_keyframes_coalesced": self.subscriber_keyframes_coalesced,
            "subscriber_keyframe_interval_s": self.subscriber_keyframe_now,
            "dropped": self.dropped,
            "oversized": self.oversized,
            "restarts": self.restarts,
            "subscribers": len(self.downtracks),
            "fanout_us_per_packet": round(self.fanout_cost * 1e6, 1),
            "keyframe_packets": self.keyframe_packets,
        }


class DownTrack:
    """One slot of one subscriber: an outgoing SSRC whose source can be re-pointed at any time."""

    def __init__(
        self,
        *,
        participant_id: str,
        slot: SlotKind,
        mid: str,
        media_kind: str,
        ssrc: int,
        rtx_ssrc: int,
        pt_by_key: dict[str, int],
        rtx_pt_by_pt: dict[int, int],
        clock_rate: int,
        wire: Wire,
        emit: Emit,
        retransmit_share: float = 0.5,
        retransmit_floor_bps: int = 64_000,
        retransmit_burst: int = 64 * 1024,
        room_budget: TokenBucket | FairShare | None = None,
        urgent_keyframes: bool = False,
    ) -> None:
        self.participant_id = participant_id
        # The lead's slots: its own keyframe requests skip the playing subscribers' backoff.
        self.urgent_keyframes = urgent_keyframes
        self.slot = slot
        self.mid = mid
        self.media_kind = media_kind
        self.video = media_kind == "video"
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.pt_by_key = pt_by_key
        self.rtx_pt_by_pt = rtx_pt_by_pt
        self.wire = wire
        self.emit = emit
        # Random origin in the lower half of the sequence space, as aiortc does, so the first
        # wrap-around happens late and SRTP's rollover estimate starts unambiguous.
        self.rw = SeqTsRewriter(clock_rate, random.randrange(0x8000), random.getrandbits(32))
        self.rtx_seq = random.randrange(0x8000)
        self.key: tuple[str, TrackKind] | None = None
        self.source: InboundTrack | None = None
        self.hold = self.video
        self.held_since = 0.0
        self.asked_since_up = False  # a keyframe was requested since this subscriber's wire came up
        self.in_pt = -1
        self.out_pt = -1
        self.prev: tuple[InboundTrack, int, int, int, int] | None = None
        self.first_keyframe_sent = False
        # source timestamp -> the one its frame went out with, for the frames a fast start sent at once
        self.burst_ts: dict[int, int] | None = None
        self.fast_starts = 0
        self.switches = 0
        self.packets = 0
        self.octets = 0
        self.nacks_received = 0
        self.retransmitted = 0
        self.unrepairable = 0
        self.keyframe_requests_received = 0
        self.codec_mismatch = False
        # Retransmission budget (as libwebrtc's pacer gives retransmissions a share of the send rate):
        # every byte forwarded earns `retransmit_share` bytes of retransmission, plus a floor rate, at
        # most `retransmit_burst` saved up. Earned when a NACK arrives, so the packet path pays nothing.
        self.retransmit_share = retransmit_share
        self.retransmit_floor = retransmit_floor_bps / 8.0
        self.retransmit_burst = float(retransmit_burst)
        self.retransmit_credit = float(retransmit_burst)
        self.credited_octets = 0
        self.credited_at = 0.0
        self.room_budget = room_budget
        self.over_budget = 0
        # whole NACK packets refused unread because the budget was spent (Peer._admit_nack)
        self.nack_packets_over_budget = 0
        self.retransmitted_octets = 0
        # From the subscriber's receiver reports.
        self.fraction_lost = 0.0
        self.packets_lost = 0
        self.jitter = 0
        self.rtt: float | None = None
        self.remb: int | None = None
        self.last_sr_ntp_mid = 0

    # -- packet path ------------------------------------------------------------------------------

    def forward(self, batch: list[Pending], now: float) -> None:
        """Rewrite, protect and send the packets of `batch` this slot may send, in one go."""
        rw = self.rw
        wire = self.wire
        protect = wire.protect
        ssrc = self.ssrc
        out: list[bytes] = []
        octets = 0
        for seq, ts, mbit, pt, payload, keyframe in batch:
            if not rw.started:
                # Begin only once the subscriber's DTLS is up: a keyframe sent into a wire that is
                # still down is lost, and the slot would then wait for the publisher's next
                # unrequested one.
                if not wire.up:
                    continue
                if self.hold and not keyframe:
                    source = self.source
                    if source is None or not source.fast_start:
                        continue
                    octets += self._fast_start(source, seq, ts, now, out)
                    if not rw.started:
                        continue
                else:
                    self._begin(seq, ts, now)
            if self.burst_ts is not None:
                # a packet of the frames sent at once (a late one, or a retransmission from upstream)
                # keeps the timestamp its frame went out with; the next keyframe ends the burst's frames
                if keyframe:
                    self.burst_ts = None
                else:
                    ts = self.burst_ts.get(ts, ts)
            if pt != self.in_pt:
                self._map_pt(pt)
            if self.out_pt < 0:
                continue
            out_seq = rw.map(seq, ts, now)
            if out_seq < 0:
                continue
            try:
                header = _pack_header(0x80, mbit | self.out_pt, out_seq, (ts + rw.ts_offset) & 0xFFFFFFFF, ssrc)
                out.append(protect(header + payload))
            except (pylibsrtp.Error, ValueError):
                # One packet SRTP refuses costs that packet only, not the rest of the batch.
                wire.errors += 1
                continue
            octets += len(payload)
        if out:
            self.packets += len(out)
            self.octets += octets
            wire.send_protected(out)

    def _begin(self, seq: int, ts: int, now: float, fast_start: bool = False) -> None:
        self.rw.begin(seq, ts, now)
        self.hold = False
        if not self.first_keyframe_sent and self.video:
            self.first_keyframe_sent = True
            self.emit(
                EventKind.FIRST_KEYFRAME,
                self.participant_id,
                self.source.kind if self.source else None,
                {"mid": self.mid, "slot": str(self.slot), "wait_ms": round((now - self.held_since) * 1000),
                 "fast_start": fast_start},
            )

    def _fast_start(self, source: InboundTrack, seq: int, ts: int, now: float, out: list[bytes]) -> int:
        """Start this held slot at the source's last keyframe: the packets from it up to `seq` (the
        packet being forwarded, of timestamp `ts`) go out at once, into `out`; returns their payload
        bytes (0, and the slot stays held, when the history cannot start it).

        Their frames are a few seconds old. Sent with their own timestamps, a receiver would show them
        at their recorded pace and stay that far behind for good; so each goes out one tick after the
        one before, ending just before the current frame, and the receiver decodes them at once and
        shows the current picture. The current frame and all after it keep their true spacing.
        """
        burst = source.since_keyframe(seq)
        if burst is None:
            return 0
        frames = sorted({e[1] for e in burst if e[1] != ts}, key=lambda t: (t - ts) & 0xFFFFFFFF)
        count = len(frames)
        # in-stream timestamps the rewriter maps as usual: frame i of the burst as ts - count + i
        stamps = {t: (ts - count + i) & 0xFFFFFFFF for i, t in enumerate(frames)}
        self._begin(burst[0][0], (ts - count) & 0xFFFFFFFF, now, fast_start=True)
        self.burst_ts = stamps
        self.fast_starts += 1
        rw = self.rw
        protect = self.wire.protect
        octets = 0
        for b_seq, b_ts, mbit, pt, payload in burst:
            if pt != self.in_pt:
                self._map_pt(pt)
            if self.out_pt < 0:
                continue
            b_ts = stamps.get(b_ts, b_ts)
            out_seq = rw.map(b_seq, b_ts, now)
            if out_seq < 0:
                continue
            try:
                header = _pack_header(0x80, mbit | self.out_pt, out_seq, (b_ts + rw.ts_offset) & 0xFFFFFFFF, self.ssrc)
                out.append(protect(header + payload))
            except (pylibsrtp.Error, ValueError):
                self.wire.errors += 1
                continue
            octets += len(payload)
        return octets

    def _map_pt(self, pt: int) -> None:
        self.in_pt = pt
        self.out_pt = -1
        source = self.source
        codec = source.codecs.get(pt) if source is not None else None
        if codec is not None:
            self.out_pt = self.pt_by_key.get(codec.key, -1)
        self.codec_mismatch = self.out_pt < 0

    # -- binding ----------------------------------------------------------------------------------

    def bind(self, key: tuple[str, TrackKind] | None, source: InboundTrack | None, now: float) -> None:
        """Point this slot at `source` (None: nothing to send now). Keeps SSRC and numbering."""
        self.key = key
        if source is self.source:
            return
        old = self.source
        if old is not None and self in old.downtracks:
            old.downtracks.remove(self)
        rw = self.rw
        if rw.started and old is not None:
            self.prev = (old, rw.seq_offset, rw.ts_offset, rw.start_out_seq, rw.last_seq)
        rw.stop()
        self.burst_ts = None
        self.source = source
        self.in_pt = -1
        self.out_pt = -1
        self.hold = self.video
        self.held_since = now
        if source is not None:
            self.switches += 1
            source.downtracks.append(self)
            if self.video and self.wire.up:
                # A slot whose subscriber is still connecting asks once its wire is up (the room's
                # housekeeping does): a keyframe sent before that would be lost on it and only cost
                # a burst to every other subscriber.
                source.request_keyframe(now)

    def restart(self, now: float) -> None:
        """The source renumbered its stream: start a new mapping (after a keyframe, for video)."""
        rw = self.rw
        if rw.started and self.source is not None:
            self.prev = (self.source, rw.seq_offset, rw.ts_offset, rw.start_out_seq, rw.last_seq)
        rw.stop()
        self.burst_ts = None
        self.hold = self.video
        self.held_since = now

    # -- subscriber RTCP --------------------------------------------------------------------------

    def _earn(self, now: float) -> float:
        credit = self.retransmit_credit + (self.octets - self.credited_octets) * self.retransmit_share
        if self.credited_at:
            credit += max(0.0, now - self.credited_at) * self.retransmit_floor
        self.credited_octets = self.octets
        self.credited_at = now
        self.retransmit_credit = min(self.retransmit_burst, credit)
        return self.retransmit_credit

    def may_retransmit(self, now: float) -> bool:
        """Whether the slot's and the room's budgets have anything left: when not, a NACK packet is
        refused before its items are even unpacked (O(1) per packet under a flood)."""
        if self._earn(now) <= 0:
            return False
        room = self.room_budget
        return room is None or room.refill(now) >= 1

    def on_nack(self, lost: list[int], now: float | None = None) -> None:
        """Answer a subscriber's NACK from the source's history, on RTX where negotiated, within the
        slot's retransmission budget and the room's (numbers beyond them are counted, not sent)."""
        self.nacks_received += len(lost)
        if now is None:
            now = time.monotonic()
        credit = self._earn(now)
        room = self.room_budget
        if room is not None:
            room.refill(now)
        for i, out_seq in enumerate(lost):
            if credit <= 0 or (room is not None and room.tokens < 1):
                self.over_budget += len(lost) - i
                break
            sent = self._resend(out_seq)
            if sent:
                credit -= sent
                if room is not None:
                    room.tokens -= 1
        self.retransmit_credit = credit

    def on_nack_items(self, items: tuple[int, ...], now: float) -> None:
        """`on_nack` for a NACK packet's raw (PID, BLP) items, flat: numbers are unpacked only while
        the budget lasts, the rest counted from their bits (at most `MAX_NACKED_PER_PACKET`), so a
        packet that finds the budget spent after one retransmission costs that retransmission and
        a bit count, not the unpacking of hundreds of numbers."""
        blps = items[1::2]
        total = min(MAX_NACKED_PER_PACKET, len(blps) + sum(map(int.bit_count, blps)))
        self.nacks_received += total
        credit = self._earn(now)
        room = self.room_budget
        if room is not None:
            room.refill(now)
        handled = 0
        for k in range(0, len(items) - 1, 2):
            pid, blp = items[k], items[k + 1]
            offset = 0
            while handled < total:
                if credit <= 0 or (room is not None and room.tokens < 1):
                    self.over_budget += total - handled
                    self.retransmit_credit = credit
                    return
                handled += 1
                sent = self._resend((pid + offset) & 0xFFFF)
                if sent:
                    credit -= sent
                    if room is not None:
                        room.tokens -= 1
                if not blp:
                    break
                low = blp & -blp
                offset = low.bit_length()
                blp ^= low
        self.retransmit_credit = credit

    def _resend(self, out_seq: int) -> int:
        """Retransmit one outgoing number from the history; the bytes sent (0: not repairable)."""
        found = self._lookup(out_seq)
        if found is None:
            self.unrepairable += 1
            return 0
        entry, ts_offset = found
        _, ts, mbit, pt, payload = entry
        if self.burst_ts is not None and ts_offset == self.rw.ts_offset:
            ts = self.burst_ts.get(ts, ts)
        codec = self.source.codecs.get(pt) if self.source else None
        out_pt = self.out_pt if pt == self.in_pt else (self.pt_by_key.get(codec.key, -1) if codec else -1)
        if out_pt < 0:
            self.unrepairable += 1
            return 0
        out_ts = (ts + ts_offset) & 0xFFFFFFFF
        rtx_pt = self.rtx_pt_by_pt.get(out_pt)
        if rtx_pt is not None:
            self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
            packet = _pack_header(0x80, mbit | rtx_pt, self.rtx_seq, out_ts, self.rtx_ssrc)
            packet += _U16.pack(out_seq) + payload
        else:
            packet = _pack_header(0x80, mbit | out_pt, out_seq, out_ts, self.ssrc) + payload
        self.wire.send_rtp(packet)
        self.retransmitted += 1
        self.retransmitted_octets += len(packet)
        return len(packet)

    def _lookup(self, out_seq: int) -> tuple[tuple[int, int, int, int, bytes], int] | None:
        rw = self.rw
        in_seq = rw.to_source_seq(out_seq)
        if in_seq >= 0 and self.source is not None:
            entry = self.source.history_entry(in_seq)
            return (entry, rw.ts_offset) if entry else None
        if self.prev is not None:
            source, seq_offset, ts_offset, start, last = self.prev
            if (out_seq - start) & 0xFFFF < 0x8000 and (last - out_seq) & 0xFFFF < 0x8000:
                entry = source.history_entry((out_seq - seq_offset) & 0xFFFF)
                return (entry, ts_offset) if entry else None
        return None

    def ask_keyframe_if_due(self, now: float, retry_interval: float) -> None:
        """A held slot asks its source for a keyframe as soon as its subscriber's wire is up (one
        asked for at bind time may have arrived before), and again after `retry_interval` in case
        the request or the keyframe was lost. Requests are coalesced per source."""
        if not self.hold or self.source is None:
            return
        just_up = self.wire.up and not self.asked_since_up
        if just_up or now - self.held_since > retry_interval:
            self.asked_since_up = self.wire.up
            self.held_since = now
            self.source.request_keyframe(now)

    def on_keyframe_request(self, now: float) -> None:
        """A subscriber's own PLI/FIR. A slot still held for a keyframe, and the lead's slots, ask as
        usual; a slot that is already playing goes through the source's backoff
        (`InboundTrack.subscriber_keyframe_request`), whoever asks: each keyframe is a burst to every
        subscriber and costs the publisher's picture quality, so a few hostile subscribers must not
        make the lead's encoder send them several times a second."""
        self.keyframe_requests_received += 1
        source = self.source
        if source is None:
            return
        if self.hold or self.urgent_keyframes:
            source.request_keyframe(now)
        else:
            source.subscriber_keyframe_request(now)

    def on_report(self, block: ReportBlock, ntp_mid_now: int) -> None:
        self.fraction_lost = block.fraction_lost / 256.0
        self.packets_lost = block.packets_lost
        self.jitter = block.jitter
        if block.lsr and block.lsr == self.last_sr_ntp_mid:
            self.rtt = ((ntp_mid_now - block.lsr - block.dlsr) & 0xFFFFFFFF) / 65536.0

    def sender_report(self, now: float, ntp: int) -> bytes:
        rw = self.rw
        if not rw.sent_any:
            return b""
        self.last_sr_ntp_mid = (ntp >> 16) & 0xFFFFFFFF
        return build_sr(self.ssrc, ntp, rw.rtp_time_at(now), self.packets, self.octets)

    def close(self) -> None:
        self.bind(None, None, 0.0)
        self.prev = None

    def snapshot(self) -> dict[str, object]:
        source = self.source
        return {
            "slot": str(self.slot),
            "kind": self.media_kind,
            "ssrc": self.ssrc,
            "source": None if self.key is None else {"participant_id": self.key[0], "track": str(self.key[1])},
            "source_on_air": bool(source is not None and source.live and not source.closed),
            "waiting_for_keyframe": bool(source is not None and self.hold),
            "codec_mismatch": self.codec_mismatch,
            "packets_sent": self.packets,
            "bytes_sent": self.octets,
            "switches": self.switches,
            "nacks_received": self.nacks_received,
            "retransmitted": self.retransmitted,
            "unrepairable": self.unrepairable,
            "over_budget": self.over_budget,
            "nack_packets_over_budget": self.nack_packets_over_budget,
            "keyframe_requests_received": self.keyframe_requests_received,
            "fast_starts": self.fast_starts,
            "fraction_lost": round(self.fraction_lost, 4),
            "packets_lost": self.packets_lost,
            "jitter_ms": round(self.jitter * 1000.0 / self.rw.clock_rate, 3),
            "rtt_ms": None if self.rtt is None else round(self.rtt * 1000.0, 2),
            "remb_bps": self.remb,
        }
