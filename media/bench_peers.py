"""The benchmark's aiortc peers: one publisher and many counting subscribers, each in its own process.

The publisher sends the cached clip's packets as `av.Packet`s, which aiortc's sender packetizes without
encoding; when asked for a keyframe it sends the intra-coded version of the frame that is due. It logs
the send time (CLOCK_REALTIME, shared by all processes of the machine) of every
RTP packet, keyed by its last 16 payload bytes, which no forwarder rewrites.

A subscriber never decodes. Its media never reaches aiortc's receivers, jitter buffers or decoders:
`FastPath` reads the sockets itself (with kernel receive timestamps) and hands each RTP packet to a
`SlotCounter` (which also replaces the receivers' `_handle_rtp_packet`, for anything that takes aiortc's
own path). A counter keeps what a real receiver must keep to stay honest to the server: RTCP
receiver-report statistics and NACK generation (so loss repair is exercised end to end), and otherwise
only counts, records sequence numbers, notes the first keyframe, and takes latency samples (every
fourth packet by sequence number, and every frame-ending video packet). Injected loss (`loss` in 0..1)
drops video packets right there, before the NACK generator sees them: the packet was lost on the
server-to-subscriber leg, and only a retransmission can repair it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any

import av
import pylibsrtp
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RtpPacket

from media.bench_clip import AUDIO_CLOCK, AUDIO_FRAME_SAMPLES, VIDEO_CLOCK, Clip, ClipSpec, load_clip
from media.bench_link import ChildLink, run_child
from media.bench_net import RpcClient, check_loopback_sdp, rtc_configuration, use_loopback_ice

KEY_BYTES = 16
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not export it
READ_BATCH = 64  # datagrams read per readiness callback
READ_SIZE = 4096
JOIN_TIMEOUT = 60.0
SendLog = dict[bytes, list[float]]


def vp8_keyframe_start(payload: bytes) -> bool:
    """True when an RTP VP8 payload starts a keyframe (RFC 7741 descriptor, then the frame tag)."""
    if not payload:
        return False
    b0 = payload[0]
    if not b0 & 0x10 or b0 & 0x07:  # not the start of partition 0
        return False
    pos = 1
    if b0 & 0x80:
        if len(payload) < 2:
            return False
        b1 = payload[1]
        pos = 2
        if b1 & 0x80:
            if len(payload) <= pos:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if b1 & 0x40:
            pos += 1
        if b1 & 0x30:
            pos += 1
    return len(payload) > pos and not payload[pos] & 0x01


# --------------------------------------------------------------------------------------------------
# publisher


class ClipTrack(MediaStreamTrack):
    """Plays the clip's pre-encoded packets in real time, looped, for aiortc's sender to packetize."""

    def __init__(self, kind: str, clip: Clip, max_seconds: float) -> None:
        super().__init__()
        self.kind = kind
        self._clip = clip
        self._n = 0
        self._start: float | None = None
        self._max_frames = int(max_seconds * (clip.spec.fps if kind == "video" else 50))
        self._keyframe_wanted = False
        self.keyframe_requests = 0
        self.keyframes_sent = 0
        if kind == "video":
            self._period = 1 / clip.spec.fps
            self._ticks = VIDEO_CLOCK // clip.spec.fps
            self._time_base = Fraction(1, VIDEO_CLOCK)
        else:
            self._period = AUDIO_FRAME_SAMPLES / AUDIO_CLOCK
            self._ticks = AUDIO_FRAME_SAMPLES
            self._time_base = Fraction(1, AUDIO_CLOCK)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._keyframe_wanted = True

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self._n >= self._max_frames:
            self.stop()
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._n * self._period
        if due > now:
            await asyncio.sleep(due - now)
        n = self._n
        self._n += 1
        if self.kind == "video":
            index = n % len(self._clip.video)
            data = self._clip.video[index]
            if self._keyframe_wanted:
                self._keyframe_wanted = False
                self.keyframes_sent += 1
                data = self._clip.video_intra[index] if index else data
        else:
            data = self._clip.audio[n % len(self._clip.audio)]
        packet = av.Packet(data)
        packet.pts = n * self._ticks
        packet.time_base = self._time_base
        return packet


def _log_sends(transport: Any, log: SendLog, paced_ssrc: int | None = None, pacing_bps: float = 0.0) -> None:
    """Wrap a DTLS transport's `_send_rtp` to log when each RTP packet is sent.

    With `pacing_bps`, packets of `paced_ssrc` (the video) leave no faster than that rate, the way a
    browser's pacer spreads a frame's packets instead of sending them back to back; each packet is
    stamped when it actually leaves, so the pacer's own delay is not charged to the SFU.
    """
    if getattr(transport, "_bench_logged", False):
        return
    original: Callable[[bytes], Awaitable[None]] = transport._send_rtp
    wall = time.time  # CLOCK_REALTIME, the clock of the kernel's receive timestamps
    loop = asyncio.get_running_loop()
    next_free = 0.0

    async def send_rtp(data: bytes) -> None:
        nonlocal next_free
        if pacing_bps > 0 and len(data) >= 12 and int.from_bytes(data[8:12], "big") == paced_ssrc:
            now = loop.time()
            start = max(now, next_free)
            next_free = start + len(data) * 8 / pacing_bps
            if start > now:
                await asyncio.sleep(start - now)
        # RTP with a dynamic payload type (RTCP's packet types 200..206 read as 72..78 here).
        # Stamped before SRTP and sendto: the receiver may well see the packet before this process
        # is scheduled again after sendto.
        if len(data) > 12 + KEY_BYTES and data[1] & 0x7F >= 96:
            log.setdefault(data[-KEY_BYTES:], []).append(wall())
        await original(data)

    transport._send_rtp = send_rtp
    transport._bench_logged = True


async def _publisher(
    link: ChildLink, port: int, room: str, spec: ClipSpec, max_seconds: float, pacing: float = 0.0
) -> None:
    use_loopback_ice()
    clip = load_clip(spec)
    log: SendLog = {}
    video = ClipTrack("video", clip, max_seconds)
    audio = ClipTrack("audio", clip, max_seconds)
    pc = RTCPeerConnection(rtc_configuration())
    states: list[tuple[float, str, str]] = []  # (time.time(), "ice" | "connection", new state)

    @pc.on("iceconnectionstatechange")
    def on_ice() -> None:
        states.append((time.time(), "ice", pc.iceConnectionState))

    @pc.on("connectionstatechange")
    def on_connection() -> None:
        states.append((time.time(), "connection", pc.connectionState))

    rpc = RpcClient(port)
    try:
        tv = pc.addTransceiver(video, direction="sendonly")
        ta = pc.addTransceiver(audio, direction="sendonly")
        tv.sender._send_keyframe = video.request_keyframe  # type: ignore[method-assign]
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        check_loopback_sdp(offer)
        tracks = {tv.mid: "camera", ta.mid: "audio"}
        answer = await rpc.call(
            "join", room=room, participant="lead", role="lead", offer=offer, tracks=tracks, timeout=JOIN_TIMEOUT
        )
        check_loopback_sdp(answer)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        pacing_bps = pacing * clip.video_mbps * 1e6
        for t in pc.getTransceivers():
            _log_sends(t.sender.transport, log, tv.sender._ssrc, pacing_bps)
        link.send("joined")
        while True:
            cmd, _payload = await link.recv()
            if cmd == "quit":
                break
            if cmd == "status":
                link.send(
                    "status",
                    connection=pc.connectionState,
                    video_frames=video._n,
                    audio_frames=audio._n,
                    keyframe_requests=video.keyframe_requests,
                    keyframes_sent=video.keyframes_sent,
                )
            elif cmd == "report":
                link.send(
                    "report",
                    log=log,
                    keyframe_requests=video.keyframe_requests,
                    keyframes_sent=video.keyframes_sent,
                    video_mbps=clip.video_mbps,
                    states=states,
                )
    finally:
        await rpc.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pc.close(), 5)


def publisher_main(
    conn: Connection, port: int, room: str, spec: ClipSpec, max_seconds: float, pacing: float = 0.0
) -> None:
    """Entry point of the publisher process (multiprocessing, spawn)."""

    run_child(conn, lambda link: _publisher(link, port, room, spec, max_seconds, pacing))


# --------------------------------------------------------------------------------------------------
# subscribers


class _Header:
    """The clear fields of an RTP header; what aiortc's NACK generator and RR statistics read."""

    __slots__ = ("marker", "payload_type", "sequence_number", "ssrc", "timestamp")

    def __init__(self) -> None:
        self.marker = 0
        self.payload_type = 0
        self.sequence_number = 0
        self.ssrc = 0
        self.timestamp = 0


def rtp_payload(data: bytes) -> bytes:
    """The payload of a plain RTP packet (after CSRCs, header extension; without padding)."""
    if len(data) < 12:
        return b""
    pos = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= pos + 4:
        pos += 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
    end = len(data)
    if data[0] & 0x20 and end > pos:
        end -= data[-1]
    return data[pos:end] if end > pos else b""


class FastPath:
    """Counts a subscriber's media where aioice hands a datagram over, from the clear RTP header.

    SRTP leaves the RTP header in clear text, so sequence numbers, SSRC, timestamp and marker can be
    counted without aiortc's per-packet chain (asyncio queue, DTLS transport task, SRTP, RtpPacket
    parsing, routing), which would otherwise cost the subscriber processes more CPU than the server
    under test uses. A packet is decrypted (SRTP, authenticated) only when its payload is needed:
    retransmissions (RTX carries the original sequence number in its payload), video until the first
    keyframe, and latency samples. Before SRTP keys exist, and for DTLS and RTCP, aioice's queue and
    aiortc's transport handle the datagram as usual. Every datagram is stamped on arrival.
    """

    def __init__(self, counters: list[SlotCounter]) -> None:
        self.counters = counters
        self.by_pt: dict[int, SlotCounter] = {}
        self.at = 0.0  # when the datagram being handled reached the socket (CLOCK_REALTIME)
        self.kernel_at: float | None = None  # the kernel's receive timestamp of that datagram
        self.header = _Header()
        self.tasks: set[asyncio.Task[None]] = set()
        self.auth_failures = 0

    def install(self, dtls: Any) -> None:
        """Take over aioice's `data_received` (and the queue's consumer) of this DTLS transport."""
        connection = dtls.transport._connection
        queue = connection._queue
        original_recvfrom = connection.recvfrom
        monotonic = time.monotonic
        wall = time.time
        unpack = struct.Struct("!HII").unpack_from
        header = self.header

        def data_received(data: bytes, component: int) -> None:
            now = monotonic()
            at = self.kernel_at or wall()
            srtp = dtls._rx_srtp
            # RTP (first byte 128..191) that is not RTCP (second byte 192..208, as aiortc tells them).
            if srtp is not None and len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 209:
                counter = self.by_pt.get(data[1] & 0x7F) or self._route(data[1] & 0x7F)
                if counter is not None:
                    self.at = at
                    header.marker = data[1] >> 7
                    header.payload_type = data[1] & 0x7F
                    header.sequence_number, header.timestamp, header.ssrc = unpack(data, 2)
                    payload = None
                    if counter.needs_payload(header):
                        try:
                            payload = rtp_payload(srtp.unprotect(data))
                        except pylibsrtp.Error:
                            self.auth_failures += 1
                            return
                    lost = counter.on_packet(header, payload, len(data), now)
                    if lost:
                        self._send_nack(counter, counter.last_ssrc, lost)
                    return
            queue.put_nowait(((data, at), component))

        async def recvfrom() -> tuple[bytes, int]:
            data, component = await original_recvfrom()
            if isinstance(data, tuple):
                data, self.at = data
            else:
                self.at = wall()
            return data, component

        connection.data_received = data_received
        connection.recvfrom = recvfrom

    def bypass_stun_parsing(self, dtls: Any) -> None:
        """Read this transport's sockets ourselves, with kernel receive timestamps, and hand SRTP/DTLS
        datagrams straight to the connection instead of trying them as STUN first. Call after gathering.

        aioice parses every datagram as STUN and takes the ValueError as "not STUN"; the first byte
        tells (RFC 7983: 0..3 STUN, 20..63 DTLS, 128..191 RTP/RTCP). The kernel's timestamp (when the
        datagram reached the socket) keeps the latency figure free of this process's own scheduling:
        a subscriber process that lags behind does not make the server look slow.
        """
        connection = dtls.transport._connection
        loop = asyncio.get_running_loop()
        for protocol in connection._protocols:
            if getattr(protocol, "_bench_bypass", False):
                continue
            stun_path = protocol.datagram_received
            component = protocol.local_candidate.component

            def datagram_received(
                data: bytes, addr: tuple[Any, ...], stun_path: Any = stun_path, component: int = component
            ) -> None:
                if data and data[0] > 19:
                    connection.data_received(data, component)
                else:
                    stun_path(data, addr)

            protocol.datagram_received = datagram_received
            protocol._bench_bypass = True
            sock = getattr(protocol.transport, "_sock", None)
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                loop._add_reader(sock.fileno(), self._reader(sock, protocol))  # type: ignore[attr-defined]

    def _reader(self, sock: socket.socket, protocol: Any) -> Callable[[], None]:
        """What the event loop calls when the socket is readable (instead of asyncio's transport)."""
        space = socket.CMSG_SPACE(16)
        timespec = struct.Struct("qq").unpack

        def read_ready() -> None:
            for _ in range(READ_BATCH):
                try:
                    data, ancillary, _flags, addr = sock.recvmsg(READ_SIZE, space)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    protocol.error_received(exc)
                    return
                self.kernel_at = None
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                        sec, nsec = timespec(value[:16])
                        self.kernel_at = sec + nsec * 1e-9
                protocol.datagram_received(data, addr)
                self.kernel_at = None

        return read_ready

    def _route(self, pt: int) -> SlotCounter | None:
        for counter in self.counters:
            if pt in counter.clock_rates:
                self.by_pt[pt] = counter
                return counter
        return None

    def _send_nack(self, counter: SlotCounter, ssrc: int, lost: list[int]) -> None:
        task = asyncio.get_running_loop().create_task(counter.receiver._send_rtcp_nack(ssrc, lost))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class _Stream:
    """Sequence bookkeeping of one media SSRC as a subscriber receives it."""

    __slots__ = ("dropped", "end", "max_ext", "received", "start")

    def __init__(self, first: int) -> None:
        self.max_ext = first
        self.start: int | None = None  # first extended sequence number of the window
        self.end: int | None = None  # last one
        self.received: set[int] = set()
        self.dropped: set[int] = set()

    def extend(self, seq: int) -> int:
        diff = (seq - self.max_ext) & 0xFFFF
        if diff >= 0x8000:
            diff -= 0x10000
        ext = self.max_ext + diff
        if diff > 0:
            self.max_ext = ext
        return ext


class SlotCounter:
    """Replaces one receiver's `_handle_rtp_packet`: count, timestamp, NACK; never decode."""

    def __init__(self, receiver: RTCRtpReceiver, kind: str, loss: float, rng: random.Random, arrival: FastPath) -> None:
        self.receiver = receiver
        self.arrival = arrival
        self.kind = kind
        self.video = kind == "video"
        self.loss = loss if self.video else 0.0
        self.rng = rng
        self.nack = NackGenerator() if self.video else None
        self.clock_rates: dict[int, int] = {}
        self.rtx_apt: dict[int, int] = {}  # RTX payload type -> media payload type
        self.rtx_ssrc: dict[int, int] = {}  # RTX SSRC -> media SSRC
        self.streams: dict[int, _Stream] = {}
        self.rr_streams: dict[int, StreamStatistics] | None = getattr(receiver, "_RTCRtpReceiver__remote_streams", None)
        self.in_window = False
        self.packets = 0
        self.window_packets = 0
        self.window_bytes = 0
        self.window_frames = 0
        self.window_rtx = 0
        self.first_packet_at: float | None = None
        self.first_keyframe_at: float | None = None
        # (key, arrival, handled, ends a frame, in the every-fourth-packet sample)
        self.samples: list[tuple[bytes, float, float, bool, bool]] = []
        self.unknown_payload_type = 0
        self.last_ssrc = 0
        self.seq_holder = _Header()

    def set_parameters(self, parameters: RTCRtpReceiveParameters) -> None:
        for codec in parameters.codecs:
            self.clock_rates[codec.payloadType] = codec.clockRate
            apt = codec.parameters.get("apt")
            if codec.mimeType.lower().endswith("/rtx") and isinstance(apt, int):
                self.rtx_apt[codec.payloadType] = apt
        for encoding in parameters.encodings:
            if encoding.rtx:
                self.rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc

    def needs_payload(self, header: _Header) -> bool:
        """Whether `on_packet` will read this packet's payload (so the fast path must decrypt it)."""
        pt = header.payload_type
        if pt in self.rtx_apt or (self.video and self.first_keyframe_at is None):
            return True
        return self.in_window and ((self.video and header.marker) or not header.sequence_number & 3)

    async def handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """aiortc's path (what `_handle_rtp_packet` is replaced by) for packets the fast path left."""
        lost = self.on_packet(packet, packet.payload, len(packet.payload) + 12, time.monotonic())
        if lost:
            await self.receiver._send_rtcp_nack(self.last_ssrc, lost)

    def on_packet(self, header: Any, payload: bytes | None, size: int, now: float) -> list[int] | None:
        """Account one packet (`payload` None: not decrypted); returns the sequence numbers to NACK."""
        pt = header.payload_type
        clock_rate = self.clock_rates.get(pt)
        if clock_rate is None:
            self.unknown_payload_type += 1
            return None
        apt = self.rtx_apt.get(pt)
        if apt is not None:
            media_ssrc = self.rtx_ssrc.get(header.ssrc)
            if media_ssrc is None or payload is None or len(payload) < 2:
                self.unknown_payload_type += 1
                return None
            if self.loss and self.rng.random() < self.loss:
                return None
            if self.rr_streams is not None:
                self._feed_rr(header, clock_rate)
            ssrc = media_ssrc
            seq = (payload[0] << 8) | payload[1]
            payload = payload[2:]
            size -= 2
            rtx = True
        else:
            ssrc = header.ssrc
            seq = header.sequence_number
            if self.loss and self.rng.random() < self.loss:
                if self.in_window:
                    stream = self._stream(ssrc, seq)
                    stream.dropped.add(stream.extend(seq))
                return None
            if self.rr_streams is not None:
                self._feed_rr(header, clock_rate)
            rtx = False
        self.last_ssrc = ssrc

        stream = self._stream(ssrc, seq)
        ext = stream.extend(seq)
        self.packets += 1
        if self.first_packet_at is None:
            self.first_packet_at = now
        if self.first_keyframe_at is None and self.video and payload and vp8_keyframe_start(payload):
            self.first_keyframe_at = now
        if self.in_window:
            fresh = ext not in stream.received
            stream.received.add(ext)
            self.window_packets += 1
            self.window_bytes += size
            if rtx:
                self.window_rtx += 1
            elif payload is not None and len(payload) >= KEY_BYTES + 8:  # key must not reach the descriptor
                frame_end = bool(self.video and header.marker)
                if frame_end or not ext & 3:
                    sample = (payload[-KEY_BYTES:], self.arrival.at, time.time(), frame_end, not ext & 3)
                    self.samples.append(sample)
            if self.video and header.marker and fresh:  # a repaired frame end counts once
                self.window_frames += 1
        elif stream.end is not None:
            stream.received.add(ext)  # late retransmissions still repair the window

        if self.nack is not None:
            self.seq_holder.sequence_number = seq
            if self.nack.add(self.seq_holder):
                return sorted(self.nack.missing)
        return None

    def _feed_rr(self, header: Any, clock_rate: int) -> None:
        assert self.rr_streams is not None
        stats = self.rr_streams.get(header.ssrc)
        if stats is None:
            stats = self.rr_streams[header.ssrc] = StreamStatistics(clock_rate)
        stats.add(header)

    def _stream(self, ssrc: int, seq: int) -> _Stream:
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = _Stream(seq)
            if self.in_window:
                stream.start = seq
        return stream

    def start_window(self) -> None:
        for stream in self.streams.values():
            stream.start = stream.max_ext + 1
        self.in_window = True

    def stop_window(self) -> None:
        self.in_window = False
        for stream in self.streams.values():
            stream.end = stream.max_ext

    def report(self, log: SendLog) -> dict[str, Any]:
        expected = received = dropped = repaired = 0
        for stream in self.streams.values():
            if stream.start is None or stream.end is None or stream.end < stream.start:
                continue
            expected += stream.end - stream.start + 1
            inside = {s for s in stream.received if stream.start <= s <= stream.end}
            received += len(inside)
            lost = {s for s in stream.dropped if stream.start <= s <= stream.end}
            dropped += len(lost)
            repaired += len(lost & inside)
        latencies: list[float] = []
        handled: list[float] = []
        frame_latencies: list[float] = []
        arrivals: list[float] = []  # when each of `latencies` arrived (CLOCK_MONOTONIC)
        unmatched = 0
        for key, arrived, done, frame_end, sampled in self.samples:
            sent = log.get(key)
            i = bisect.bisect_right(sent, arrived) if sent else 0
            if i == 0:
                unmatched += 1
                continue
            if sampled:
                latencies.append((arrived - sent[i - 1]) * 1000)
                arrivals.append(arrived)
                handled.append((done - sent[i - 1]) * 1000)
            if frame_end:
                frame_latencies.append((arrived - sent[i - 1]) * 1000)
        return {
            "kind": self.kind,
            "expected": expected,
            "received": received,
            "dropped": dropped,
            "repaired": repaired,
            "packets": self.window_packets,
            "bytes": self.window_bytes,
            "frames": self.window_frames,
            "rtx": self.window_rtx,
            "latencies_ms": latencies,
            "arrivals": arrivals,
            "handled_latencies_ms": handled,
            "frame_latencies_ms": frame_latencies,
            "unmatched": unmatched,
            "unknown_payload_type": self.unknown_payload_type,
        }


def install_counter(receiver: RTCRtpReceiver, counter: SlotCounter) -> None:
    original_receive = receiver.receive

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        counter.set_parameters(parameters)
        await original_receive(parameters)

    receiver.receive = receive  # type: ignore[method-assign]
    receiver._handle_rtp_packet = counter.handle  # type: ignore[method-assign]


class Subscriber:
    def __init__(self, name: str, loss: float, seed: int) -> None:
        self.name = name
        self.pc = RTCPeerConnection(rtc_configuration())
        rng = random.Random(seed)
        tv = self.pc.addTransceiver("video", direction="recvonly")
        ta = self.pc.addTransceiver("audio", direction="recvonly")
        self.fast = FastPath([])
        self.video = SlotCounter(tv.receiver, "video", loss, rng, self.fast)
        self.audio = SlotCounter(ta.receiver, "audio", loss, rng, self.fast)
        self.fast.counters += [self.video, self.audio]
        for t in (tv, ta):
            self.fast.install(t.receiver.transport)
        install_counter(tv.receiver, self.video)
        install_counter(ta.receiver, self.audio)
        self.offer_at: float | None = None
        self.connected_at: float | None = None
        self.error: str | None = None
        self.hostile_rounds = 0

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()

    async def join(self, port: int, room: str) -> None:
        rpc = RpcClient(port)
        try:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            for t in self.pc.getTransceivers():
                self.fast.bypass_stun_parsing(t.receiver.transport)
            offer = self.pc.localDescription.sdp
            check_loopback_sdp(offer)
            self.offer_at = time.monotonic()
            answer = await rpc.call(
                "join", room=room, participant=self.name, role="receiver", offer=offer, timeout=JOIN_TIMEOUT
            )
            check_loopback_sdp(answer)
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        finally:
            await rpc.close()

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.connected_at is not None,
            "keyframe": self.video.first_keyframe_at is not None,
            "audio": self.audio.packets > 0,
            "failed": self.error is not None or self.pc.connectionState == "failed",
        }

    def report(self, log: SendLog) -> dict[str, Any]:
        def since(t: float | None, origin: float | None) -> float | None:
            return None if t is None or origin is None else max(0.0, (t - origin) * 1000)

        return {
            "name": self.name,
            "error": self.error,
            "state": self.pc.connectionState,
            "connect_ms": since(self.connected_at, self.offer_at),
            "first_keyframe_ms": since(self.video.first_keyframe_at, self.connected_at),
            "first_keyframe_from_offer_ms": since(self.video.first_keyframe_at, self.offer_at),
            "video": self.video.report(log),
            "audio": self.audio.report(log),
        }


# A hostile subscriber's feedback (`--hostile K`): this many rounds per second of a NACK of the last
# HOSTILE_NACK_SPAN numbers and a datagram of junk RTCP, with a PLI every HOSTILE_PLI_EVERY rounds:
# a little above what the SFU accepts from one participant (100 NACK packets and 5 keyframe requests
# a second), so it runs at its limits without spending the shared machine's CPU on refused packets.
HOSTILE_RATE = 110
HOSTILE_NACK_SPAN = 200
HOSTILE_PLI_EVERY = 20


def _junk_rtcp(rng: random.Random) -> bytes:
    return bytes([0x80 | rng.randrange(32), rng.choice([200, 201, 202, 203, 205, 206])]) + rng.randbytes(
        rng.randrange(2, 120)
    )


async def _harass(sub: Subscriber, max_seconds: float, rng: random.Random) -> None:
    """Send `HOSTILE_RATE` rounds a second of NACK + PLI + junk for the video slot, for at most
    `max_seconds` (loopback only: the SFU is the only peer)."""
    from media.rtcp import build_nack, build_pli  # the bench's clients speak the SFU's own RTCP builders

    dtls = sub.pc.getTransceivers()[0].receiver.transport
    deadline = time.monotonic() + max_seconds
    rounds = 0
    while time.monotonic() < deadline:
        ssrc = sub.video.last_ssrc
        if ssrc and getattr(dtls, "_tx_srtp", None) is not None:
            last = sub.video.seq_holder.sequence_number
            try:
                await dtls._send_rtp(build_nack(1, ssrc, [(last - k) & 0xFFFF for k in range(HOSTILE_NACK_SPAN)]))
                if rounds % HOSTILE_PLI_EVERY == 0:
                    await dtls._send_rtp(build_pli(1, ssrc))
                with contextlib.suppress(pylibsrtp.Error):  # our own SRTCP refuses some junk
                    await dtls._send_rtp(_junk_rtcp(rng))
            except Exception:
                return  # the SFU dropped us (misbehaving) or the connection closed
            rounds += 1
            sub.hostile_rounds = rounds
        await asyncio.sleep(1 / HOSTILE_RATE)


async def _subscribers(
    link: ChildLink,
    port: int,
    room: str,
    names: list[str],
    loss: float,
    seed: int,
    concurrency: int,
    hostile_seconds: float = 0.0,
) -> None:
    use_loopback_ice()
    subs = [Subscriber(name, loss, seed * 100_003 + i) for i, name in enumerate(names)]
    harassers: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(concurrency)

    async def join(sub: Subscriber) -> None:
        async with gate:
            try:
                await asyncio.wait_for(sub.join(port, room), JOIN_TIMEOUT)
            except Exception as exc:
                sub.error = f"{type(exc).__name__}: {exc}"

    try:
        await asyncio.gather(*(join(s) for s in subs))
        link.send("joined", errors=[s.error for s in subs if s.error])
        if hostile_seconds > 0:
            rng = random.Random(seed)
            harassers = [asyncio.ensure_future(_harass(s, hostile_seconds, rng)) for s in subs if not s.error]
        while True:
            cmd, payload = await link.recv()
            if cmd == "quit":
                break
            if cmd == "status":
                states = [s.status() for s in subs]
                link.send("status", **{k: sum(1 for st in states if st[k]) for k in states[0]})
            elif cmd == "start_window":
                for s in subs:
                    s.video.start_window()
                    s.audio.start_window()
                link.send("started")
            elif cmd == "stop_window":
                for s in subs:
                    s.video.stop_window()
                    s.audio.stop_window()
                link.send("stopped")
            elif cmd == "report":
                log: SendLog = payload["log"]
                link.send("report", subscribers=[s.report(log) for s in subs])
    finally:
        for task in harassers:
            task.cancel()
        await asyncio.gather(*(asyncio.wait_for(s.pc.close(), 5) for s in subs), return_exceptions=True)


def subscribers_main(
    conn: Connection,
    port: int,
    room: str,
    names: list[str],
    loss: float,
    seed: int,
    concurrency: int,
    nice: int,
    hostile_seconds: float = 0.0,
) -> None:
    """Entry point of one subscriber process (multiprocessing, spawn): several subscribers share it.

    `nice` lowers this process's CPU priority: on a machine shared with the server under test, the
    measuring apparatus must not take the server's CPU away (on a real network subscribers are
    elsewhere). A subscriber process that falls behind drops at its own sockets, which the bench
    reports separately (`udp_drops_subscribers`).
    """
    if nice:
        os.nice(nice)

    run_child(conn, lambda link: _subscribers(link, port, room, names, loss, seed, concurrency, hostile_seconds))
