"""One participant's aiortc peer connection, with aiortc's media machinery taken out of the way.

aiortc negotiates SDP, runs ICE and the DTLS handshake and keeps the SRTP keys; everything after that
is ours. We replace, on this connection's DTLS transport instance only, the two methods that receive
decrypted RTP and RTCP, so packets reach the forwarding code before aiortc's RTP parser, jitter
buffer and decoder; and we keep aiortc's senders and receivers from starting their tasks (they would
encode, decode, and send their own RTCP). Sending goes through `Wire`: SRTP protect and `sendto` on
the nominated ICE socket, without aiortc's coroutine per packet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
from aioice.ice import CandidatePair
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint, RTCDtlsTransport, SRTPProtectionProfile
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from OpenSSL import SSL

from media.api import MediaError
from media.config import MediaConfig
from media.forwarding import CodecInfo, DownTrack, InboundTrack, Wire, ntp_time
from media.ice import DatagramGate, StunGuard, control_host_candidates
from media.limits import MAX_NACKED_PER_PACKET
from media.ratelimit import RateLimitedLog, TokenBucket
from media.rtcp import Bye, Fir, Nack, Pli, ReceiverReport, Remb, SenderReport, TransportFeedback, parse_compound
from media.rtp_header import RtpHeader
from media.sdp_check import check_offer

logger = logging.getLogger(__name__)

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
# aiortc's DTLS receive loop hands us every queued packet without returning to the event loop while
# our handler does not await. A keyframe to hundreds of subscribers is tens of packets times hundreds
# of sends; after about this many sends we let the loop run (timers, other sockets, ICE consent).
_SENDS_PER_YIELD = 2000


@dataclass(slots=True)
class MLine:
    """An audio/video m-line of the client's offer, as the room needs to see it."""

    mid: str
    media_kind: str  # "audio" | "video"
    client_sends: bool
    client_receives: bool
    transceiver: RTCRtpTransceiver
    codecs: list[RTCRtpCodecParameters] = field(default_factory=list)
    ssrc: int | None = None
    rtx_ssrc: int | None = None


def codec_info(codec: RTCRtpCodecParameters) -> CodecInfo:
    name = codec.mimeType.split("/")[-1].lower()
    key = name
    if name == "h264":
        # Packetization mode must match exactly; the profile (first byte of profile-level-id) must
        # match for a decoder to take the stream; the level does not matter for forwarding.
        params = codec.parameters
        profile = str(params.get("profile-level-id", "42e01f"))[:2].lower()
        key = f"h264/{params.get('packetization-mode', 0)}/{profile}"
    return CodecInfo(key=key, name=name, clock_rate=codec.clockRate)


def is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def _describe(exc: BaseException) -> str:
    """What aiortc's exception says, or at least its kind when it says nothing useful."""
    text = str(exc).strip()
    if not text or (isinstance(exc, StopIteration | RuntimeError) and "StopIteration" in text):
        return f"{type(exc).__name__} while reading it (an attribute names something the offer lacks)"
    if text.endswith("is not in list"):
        return f"{text} (an m-line lacks a value aiortc needs, e.g. its direction)"
    return text


async def _not_started(parameters: Any) -> None:
    """Stands in for aiortc's sender.send / receiver.receive: the SFU moves the packets itself."""


# -- one DTLS certificate per process ---------------------------------------------------------------

# aiortc's own certificates are valid for 30 days; a long-running worker makes a new one well before.
_CERTIFICATE_LIFETIME = 7 * 86400.0


class SharedCertificate(RTCCertificate):
    """The worker's DTLS certificate, shared by all its peer connections.

    aiortc makes a new EC key and certificate for every RTCPeerConnection and a new OpenSSL context
    for every DTLS handshake: about 30 KiB and the key generation's CPU per participant, for nothing
    (the answer carries the fingerprint, which is all a browser checks). Here each SRTP profile list
    has one cached context, with the server-side session cache off (sessions are never resumed in
    WebRTC; a shared cache would only grow) and OpenSSL's idle read/write buffers released.
    """

    def __init__(self, key: Any, cert: Any) -> None:
        super().__init__(key, cert)
        self.created = time.monotonic()
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}
        self._fingerprints: list[RTCDtlsFingerprint] | None = None

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        if self._fingerprints is None:
            self._fingerprints = super().getFingerprints()
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        key = tuple(p.openssl_profile for p in srtp_profiles)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = super()._create_ssl_context(srtp_profiles)
            ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
            self._contexts[key] = ctx
        return ctx


_shared_certificate: SharedCertificate | None = None


def shared_certificate() -> SharedCertificate:
    global _shared_certificate
    cert = _shared_certificate
    if cert is None or time.monotonic() - cert.created > _CERTIFICATE_LIFETIME:
        cert = _shared_certificate = SharedCertificate.generateCertificate()
    return cert


class _SharedCertificateSource:
    """Stands in for RTCCertificate while aiortc's RTCPeerConnection constructor picks its certificate."""

    @staticmethod
    def generateCertificate() -> SharedCertificate:
        return shared_certificate()


def new_peer_connection(configuration: RTCConfiguration) -> RTCPeerConnection:
    """An RTCPeerConnection that uses the process's shared certificate instead of making its own."""
    module = aiortc.rtcpeerconnection
    original = module.RTCCertificate
    module.RTCCertificate = _SharedCertificateSource  # type: ignore[assignment,misc]
    try:
        # Synchronous: no other code runs while the name is swapped.
        pc = RTCPeerConnection(configuration)
    finally:
        module.RTCCertificate = original  # type: ignore[misc]
    _make_transceivers_without_estimator(pc)
    return pc


def _no_estimator() -> None:
    return None


def _make_transceivers_without_estimator(pc: RTCPeerConnection) -> None:
    """Make this connection's transceivers without aiortc's bitrate estimator (1,000 bucket objects per
    video receiver, 0.1 ms or more each to build: three per classroom, in every join of a burst), which the
    SFU never uses (it estimates and sends REMB itself; `_drop_unused_parts` drops the rest later)."""
    make = pc._RTCPeerConnection__createTransceiver  # type: ignore[attr-defined]
    module = aiortc.rtcrtpreceiver

    def create(*args: Any, **kwargs: Any) -> RTCRtpTransceiver:
        original = module.RemoteBitrateEstimator
        module.RemoteBitrateEstimator = _no_estimator  # type: ignore[assignment,misc]
        try:  # synchronous, as above
            return make(*args, **kwargs)
        finally:
            module.RemoteBitrateEstimator = original  # type: ignore[misc]

    pc._RTCPeerConnection__createTransceiver = create  # type: ignore[attr-defined]


# aiortc's per-transceiver machinery the SFU never starts (send/receive are replaced): a jitter buffer,
# a NACK generator, a bitrate estimator with 1,000 bucket objects (~95 KiB per video receiver), decoder
# queue and events. They are used only once a receiver or sender is started, so they are dropped.
_UNUSED_RECEIVER_PARTS = (
    "_RTCRtpReceiver__jitter_buffer",
    "_RTCRtpReceiver__nack_generator",
    "_RTCRtpReceiver__remote_bitrate_estimator",
    "_RTCRtpReceiver__decoder_queue",
    "_RTCRtpReceiver__decoder_error",
    "_RTCRtpReceiver__timestamp_mapper",
    "_RTCRtpReceiver__rtcp_started",
    "_RTCRtpReceiver__rtcp_exited",
)
_UNUSED_SENDER_PARTS = (
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited",
)


def _drop_unused_parts(transceiver: RTCRtpTransceiver) -> None:
    receiver, sender = transceiver.receiver, transceiver.sender
    if getattr(receiver, "_RTCRtpReceiver__started", True) is False:
        for name in _UNUSED_RECEIVER_PARTS:
            if hasattr(receiver, name):
                setattr(receiver, name, None)
    if getattr(sender, "_RTCRtpSender__started", True) is False:
        for name in _UNUSED_SENDER_PARTS:
            if hasattr(sender, name):
                setattr(sender, name, None)


# A `Peer.on_state` value besides aiortc's connection states: a transport's SRTP send path is up.
MEDIA_READY = "media-ready"


class Peer:
    def __init__(
        self,
        config: MediaConfig,
        on_state: Callable[[Peer, str], None],
        ratelog: RateLimitedLog | None = None,
    ) -> None:
        self.config = config
        self.on_state = on_state
        # Malformed STUN on this participant's ports: dropped, counted, logged once per cause per minute.
        self.stun = StunGuard(ratelog)
        # SRTP/SRTCP from other addresses than the selected pair, and RTCP beyond its rate, are
        # dropped where they are read, before decryption (media/ice.py).
        self.gate = DatagramGate(config.rtcp_datagrams_per_second, config.rtcp_datagrams_burst)
        # Every m-line on the one transport the client bundles them on. aiortc's default (balanced) puts
        # the second and later m-lines of a kind on a per-kind transport that BUNDLE then abandons, so
        # those slots and tracks would never carry a packet.
        self.pc = new_peer_connection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.mlines: list[MLine] = []
        self.wires: dict[int, Wire] = {}
        self.inbound: list[InboundTrack] = []
        self.downtracks: list[DownTrack] = []
        self.inbound_by_ssrc: dict[int, InboundTrack] = {}
        self.down_by_ssrc: dict[int, DownTrack] = {}
        self.mid_ext_id = 0
        self.created_at = time.monotonic()
        self.last_rtcp = 0.0
        # when anything (RTP or RTCP) last came from this client: the technician's and the teacher's
        # "is this classroom still there" reads it, at a second's resolution
        self.last_heard = 0.0
        self.connected = False
        self.closed = False
        self.bad_rtp = 0
        self.unknown_rtp = 0
        self.rtcp_packets = 0
        # RTCP datagrams that achieved nothing (review_rtcp), and how often that cut the gate's rate
        self.useless_rtcp = 0
        self.rtcp_penalties = 0
        self._useless_seen = 0
        self._rtcp_seen = 0
        self._dropped_seen = 0
        self.transport_feedback = 0
        self.errors = 0
        # Feedback beyond these per-participant rates is ignored and counted (docs/media.md).
        self.rate_limited = 0
        # NACK packets refused unread because their slot's (or room's) retransmission budget is spent
        self.nacks_over_budget = 0
        self.nack_limit = TokenBucket(config.nack_packets_per_second, 2 * config.nack_packets_per_second)
        self.keyframe_limit = TokenBucket(config.keyframe_requests_per_second, 2 * config.keyframe_requests_per_second)
        self._sends_since_yield = 0
        self.pc.on("connectionstatechange", self._on_connection_state)

    # -- negotiation ------------------------------------------------------------------------------

    async def apply_offer(self, offer_sdp: str) -> list[MLine]:
        # Numbers range-checked and cross-references resolved first, with the line named (sdp_check).
        offer_sdp = check_offer(offer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            parsed = sdp.SessionDescription.parse(offer_sdp)
        except Exception as exc:
            raise MediaError(f"cannot use this SDP offer: {_describe(exc)}") from exc
        by_mid = {t.mid: t for t in self.pc.getTransceivers()}
        for media in parsed.media:
            if media.kind not in ("audio", "video"):
                continue
            transceiver = by_mid.get(media.rtp.muxId)
            if transceiver is None:
                continue
            line = MLine(
                mid=media.rtp.muxId,
                media_kind=media.kind,
                client_sends=media.direction in ("sendonly", "sendrecv"),
                client_receives=media.direction in ("recvonly", "sendrecv"),
                transceiver=transceiver,
                codecs=list(transceiver._codecs),
            )
            if media.ssrc:
                line.ssrc = media.ssrc[0].ssrc
            for group in media.ssrc_group:
                if group.semantic == "FID" and len(group.items) == 2:
                    line.ssrc, line.rtx_ssrc = int(group.items[0]), int(group.items[1])
            for ext in transceiver._headerExtensions:
                if ext.uri == MID_URI:
                    self.mid_ext_id = ext.id
            self.mlines.append(line)
        return self.mlines

    async def answer(self, directions: dict[str, str]) -> str:
        """Answer with each m-line's direction as seen from the SFU ('recvonly', 'sendonly', ...)."""
        for line in self.mlines:
            t = line.transceiver
            t.direction = directions.get(line.mid, "inactive")
            # aiortc would start an encoder/decoder loop here; we forward packets instead.
            t.sender.send = _not_started  # type: ignore[method-assign]
            t.receiver.receive = _not_started  # type: ignore[method-assign]
            _drop_unused_parts(t)
        for dtls in self._dtls_transports():
            self._hook(dtls)
        control_host_candidates(
            self.pc,
            self.config.announced_addresses,
            self.config.udp_port_min,
            self.config.udp_port_max,
            self.stun,
            self.gate,
        )
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            raise MediaError(f"cannot answer this SDP offer: {_describe(exc)}") from exc
        answer_sdp = self.pc.localDescription.sdp
        if not any(d in ("recvonly", "sendrecv") for d in directions.values()):
            # A pure subscriber: aiortc keeps both parsed descriptions (~20 KiB) only for a
            # renegotiation, which the SFU never does (a reconnect is a new connection); ICE and DTLS
            # keep their own parameters. Where the SFU receives, aiortc's connect step still reads
            # the remote description to start the (stubbed) receivers, so publishers keep theirs.
            for which in ("current", "pending"):
                for side in ("Local", "Remote"):
                    setattr(self.pc, f"_RTCPeerConnection__{which}{side}Description", None)
        return answer_sdp

    def _dtls_transports(self) -> list[RTCDtlsTransport]:
        seen: dict[int, RTCDtlsTransport] = {}
        for t in self.pc.getTransceivers():
            seen[id(t.receiver.transport)] = t.receiver.transport
        return list(seen.values())

    def wire_for(self, line: MLine) -> Wire:
        return self.wires[id(line.transceiver.receiver.transport)]

    def _hook(self, dtls: RTCDtlsTransport) -> None:
        wire = Wire()
        self.wires[id(dtls)] = wire
        dtls._handle_rtp_data = self._on_rtp  # type: ignore[method-assign]
        dtls._handle_rtcp_data = self._on_rtcp  # type: ignore[method-assign]

        def on_dtls_state() -> None:
            if dtls.state == "connected" and dtls._tx_srtp is not None:
                pair = dtls.transport._connection._nominated.get(1)
                if pair is not None:
                    transport = pair.protocol.transport
                    self.gate.remote = pair.remote_addr
                    self.gate.validated = partial(_checked_pair_with, dtls.transport._connection)
                    # The raw socket: asyncio's transport adds a Python layer per datagram and
                    # cannot pass the ancillary data that batches a frame into one call. A full
                    # send buffer then drops the datagram (counted; NACK repairs it) instead of
                    # queueing it in Python.
                    raw = getattr(transport, "_sock", None)
                    wire.connect(
                        dtls._tx_srtp.protect,
                        dtls._tx_srtp.protect_rtcp,
                        raw.sendto if raw is not None else transport.sendto,
                        pair.remote_addr,
                        raw.sendmsg if raw is not None and self.config.udp_gso else None,
                    )
                    # Slots held for a keyframe can ask now rather than at the room's next tick.
                    self.on_state(self, MEDIA_READY)
            elif dtls.state in ("closed", "failed"):
                wire.down()

        dtls.on("statechange", on_dtls_state)

    def register(self, inbound: list[InboundTrack], downtracks: list[DownTrack]) -> None:
        self.inbound = inbound
        self.downtracks = downtracks
        for track in inbound:
            if track.ssrc is not None:
                self.inbound_by_ssrc[track.ssrc] = track
            if track.rtx_ssrc is not None:
                self.inbound_by_ssrc[track.rtx_ssrc] = track
        for dt in downtracks:
            self.down_by_ssrc[dt.ssrc] = dt
            self.down_by_ssrc[dt.rtx_ssrc] = dt

    # -- inbound packets (called by aiortc's DTLS receive loop) ----------------------------------

    async def _on_rtp(self, data: bytes, arrival_time_ms: int = 0) -> None:
        try:
            hdr = RtpHeader.parse(data)
            if hdr is None:
                self.bad_rtp += 1
                return
            track = self.inbound_by_ssrc.get(hdr.ssrc)
            if track is None:
                track = self._learn_ssrc(hdr, data)
                if track is None:
                    self.unknown_rtp += 1
                    return
            now = time.monotonic()
            self.last_heard = now
            track.on_rtp(hdr, data, now)
        except Exception:
            # A packet we failed on must not end aiortc's receive loop and with it the connection.
            self.errors += 1
            if self.errors <= 3:
                logger.exception("dropping an RTP packet that broke forwarding")
            return
        self._sends_since_yield += 1 + len(track.downtracks)
        if self._sends_since_yield >= _SENDS_PER_YIELD:
            self._sends_since_yield = 0
            await asyncio.sleep(0)

    def _learn_ssrc(self, hdr: RtpHeader, data: bytes) -> InboundTrack | None:
        """Find the track of an SSRC the offer did not list (no a=ssrc): by mid extension or payload type."""
        mid = None
        if hdr.extension and self.mid_ext_id:
            raw = hdr.extensions(data).get(self.mid_ext_id)
            if raw:
                mid = raw.decode("ascii", "replace")
        pt = hdr.payload_type
        candidates = [t for t in self.inbound if (mid is None or t.mid == mid) and (pt in t.codecs or pt in t.rtx_apt)]
        if len(candidates) != 1:
            return None
        track = candidates[0]
        # Only an empty place is filled, so a stream of random SSRCs cannot grow the table.
        if pt in track.rtx_apt:
            if track.rtx_ssrc is not None:
                return None
            track.rtx_ssrc = hdr.ssrc
        else:
            if track.ssrc is not None:
                return None
            track.ssrc = hdr.ssrc
        self.inbound_by_ssrc[hdr.ssrc] = track
        return track

    async def _on_rtcp(self, data: bytes) -> None:
        now = time.monotonic()
        self.last_rtcp = self.last_heard = now
        self.rtcp_packets += 1
        try:
            # NACKs the participant's rate or the slot's budget refuses are not even unpacked.
            if not self._dispatch_rtcp(parse_compound(data, lambda ssrc: self._admit_nack(ssrc, now) is not None), now):
                self.useless_rtcp += 1
        except Exception:
            self.errors += 1
            if self.errors <= 3:
                logger.exception("dropping an RTCP packet that broke its handling")

    def _dispatch_rtcp(self, packets: list[Any], now: float) -> bool:
        """Act on the packets of one RTCP datagram; whether any of them did anything (a report or
        request for one of this participant's tracks or slots that was not refused)."""
        ntp_mid = (ntp_time(time.time()) >> 16) & 0xFFFFFFFF
        down = self.down_by_ssrc
        acted = False
        for p in packets:
            if isinstance(p, SenderReport | ReceiverReport):
                if isinstance(p, SenderReport):
                    track = self.inbound_by_ssrc.get(p.ssrc)
                    if track is not None:
                        track.on_sender_report(p.ntp, now)
                        acted = True
                for block in p.reports:
                    dt = down.get(block.ssrc)
                    if dt is not None:
                        dt.on_report(block, ntp_mid)
                        acted = True
            elif isinstance(p, Nack):
                if p.admitted:  # checked while parsing, numbers left packed
                    dt = down.get(p.media_ssrc)
                    if dt is not None:
                        dt.on_nack_items(p.items, now)
                        acted = True
                elif p.admitted is None:
                    dt = self._admit_nack(p.media_ssrc, now)
                    if dt is not None:
                        dt.on_nack(p.lost[:MAX_NACKED_PER_PACKET], now)
                        acted = True
            elif isinstance(p, Pli):
                dt = down.get(p.media_ssrc)
                if dt is not None:
                    if not self.keyframe_limit.take(now):
                        self.rate_limited += 1
                        continue
                    dt.on_keyframe_request(now)
                    acted = True
            elif isinstance(p, Fir):
                if not self.keyframe_limit.take(now):
                    self.rate_limited += 1
                    continue
                for ssrc, _ in p.entries[:16]:
                    dt = down.get(ssrc)
                    if dt is not None:
                        dt.on_keyframe_request(now)
                        acted = True
            elif isinstance(p, Remb):
                for ssrc in p.ssrcs:
                    dt = down.get(ssrc)
                    if dt is not None:
                        dt.remb = p.bitrate
                        acted = True
            elif isinstance(p, TransportFeedback):
                self.transport_feedback += 1
                acted = True
            elif isinstance(p, Bye):
                acted = True
        return acted

    def review_rtcp(self) -> None:
        """Once per report interval: a participant a third of whose RTCP datagrams (and at least
        `rtcp_useless_min` of them) achieved nothing — junk, NACKs refused for rate or budget,
        reports for SSRCs it does not have — has its datagram rate halved, down to
        `rtcp_datagrams_floor` (at once to the floor when two thirds or more achieved nothing); one
        that behaves (nothing useless, nothing over its rate) gets it
        doubled back up to the configured rate."""
        cfg = self.config
        useless = self.useless_rtcp - self._useless_seen
        received = self.rtcp_packets - self._rtcp_seen
        self._useless_seen, self._rtcp_seen = self.useless_rtcp, self.rtcp_packets
        gate = self.gate
        dropped = gate.rate_limited - self._dropped_seen
        self._dropped_seen = gate.rate_limited
        rate = new = gate.bucket.rate
        if useless >= cfg.rtcp_useless_min and 3 * useless >= received:
            if rate > cfg.rtcp_datagrams_floor:
                # mostly useless (two thirds or more): straight to the floor, so a flood is cut within
                # one interval rather than three; partly useless: halved
                clearly = 3 * useless >= 2 * received
                new = cfg.rtcp_datagrams_floor if clearly else max(cfg.rtcp_datagrams_floor, rate / 2)
                self.rtcp_penalties += 1
        elif rate < cfg.rtcp_datagrams_per_second and not dropped:
            # back up only once it keeps within what it is allowed now (a flood held at the floor
            # admits too few datagrams to count as useless again)
            new = min(cfg.rtcp_datagrams_per_second, rate * 2)
        if new != rate:
            gate.set_rate(new, new * cfg.rtcp_datagrams_burst / cfg.rtcp_datagrams_per_second)

    def _admit_nack(self, media_ssrc: int, now: float) -> DownTrack | None:
        """The slot a NACK packet is for, if it may be answered: a slot of this participant, within
        the participant's NACK rate, and with retransmission budget left. O(1), counted when not."""
        dt = self.down_by_ssrc.get(media_ssrc)
        if dt is None:
            return None
        if not self.nack_limit.take(now):
            self.rate_limited += 1
            return None
        if not dt.may_retransmit(now):
            dt.nack_packets_over_budget += 1
            self.nacks_over_budget += 1
            return None
        return dt

    # -- lifecycle --------------------------------------------------------------------------------

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected = True
            self.last_rtcp = time.monotonic()
        self.on_state(self, state)

    def send_reports(self, now: float, remb_bitrate: int) -> None:
        """One compound RTCP datagram per transport: SRs of its slots, RRs (+REMB) of its tracks."""
        ntp = ntp_time(time.time())
        for wire in self.wires.values():
            if not wire.up:
                continue
            parts: list[bytes] = []
            for dt in self.downtracks:
                if dt.wire is wire:
                    sr = dt.sender_report(now, ntp)
                    if sr:
                        parts.append(sr)
            for track in self.inbound:
                if track.wire is wire:
                    rr = track.receiver_report(now, remb_bitrate)
                    if rr:
                        parts.append(rr)
            chunk = b""
            for part in parts:
                if len(chunk) + len(part) > 1100:
                    wire.send_rtcp(chunk)
                    chunk = b""
                chunk += part
            if chunk:
                wire.send_rtcp(chunk)

    async def add_candidate(
        self, candidate: str, sdp_mid: str | None = None, sdp_mline_index: int | None = None
    ) -> None:
        """A remote ICE candidate the client trickled after its offer ("" signals end-of-candidates).

        Every m-line is bundled on one transport, so the candidate goes to that transport whichever
        m-line the client named."""
        text = candidate.strip().removeprefix("a=").removeprefix("candidate:")
        parsed = None
        if text:
            try:
                parsed = sdp.candidate_from_sdp(text)
            except (ValueError, IndexError) as exc:
                raise MediaError(f"bad ICE candidate: {exc}") from None
            parsed.sdpMid, parsed.sdpMLineIndex = sdp_mid, sdp_mline_index
        if self.closed:
            return
        transports = {
            id(t.receiver.transport.transport): t.receiver.transport.transport
            for t in self.pc.getTransceivers()
            if t.receiver.transport is not None
        }
        for ice in transports.values():
            await ice.addRemoteCandidate(parsed)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for wire in self.wires.values():
            wire.down()
        try:
            await self.pc.close()
        except Exception:
            logger.debug("closing a peer connection failed", exc_info=True)

    @property
    def state(self) -> str:
        return self.pc.connectionState


def _checked_pair_with(connection: Any, addr: tuple[object, ...]) -> bool:
    """Whether `addr` is the remote end of one of `connection`'s ICE pairs that passed its check."""
    return any(p.state == CandidatePair.State.SUCCEEDED and p.remote_addr[0] == addr[0] and p.remote_addr[1] == addr[1]
               for p in connection._check_list)
