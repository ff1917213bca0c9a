"""The benchmark's aiortc peers: one publisher and many counting subscribers, each in its own process.

The publisher sends the cached clip's packets as `av.Packet`s, which aiortc's sender packetizes without
encoding; when asked for a keyframe it sends the intra-coded version of the frame that is due. It logs
the send time (CLOCK_MONOTONIC, shared by all processes of the machine) of every
RTP packet, keyed by its last 16 payload bytes, which no forwarder rewrites.

A subscriber never decodes. Its receivers' `_handle_rtp_packet` (the step below aiortc's jitter
buffer) is replaced by a counter that keeps what a real receiver must keep to stay honest to the
server: RTCP receiver-report statistics and NACK generation (so loss repair is exercised end to end),
and otherwise only counts, records sequence numbers, notes the first keyframe, and timestamps packets.
Injected loss (`loss` in 0..1) drops video packets right there, before the NACK generator sees them:
the packet was lost on the server-to-subscriber leg, and only a retransmission can repair it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RtpPacket, unwrap_rtx

from media.bench_clip import AUDIO_CLOCK, AUDIO_FRAME_SAMPLES, VIDEO_CLOCK, Clip, ClipSpec, load_clip
from media.bench_link import ChildLink
from media.bench_net import RpcClient, check_loopback_sdp, rtc_configuration, use_loopback_ice

KEY_BYTES = 16
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


def _log_sends(transport: Any, log: SendLog) -> None:
    """Wrap a DTLS transport's `_send_rtp` to log when each RTP packet is sent."""
    if getattr(transport, "_bench_logged", False):
        return
    original: Callable[[bytes], Awaitable[None]] = transport._send_rtp
    monotonic = time.monotonic

    async def send_rtp(data: bytes) -> None:
        # RTP with a dynamic payload type (RTCP's packet types 200..206 read as 72..78 here).
        # Stamped before SRTP and sendto: the receiver may well see the packet before this process
        # is scheduled again after sendto.
        if len(data) > 12 + KEY_BYTES and data[1] & 0x7F >= 96:
            log.setdefault(data[-KEY_BYTES:], []).append(monotonic())
        await original(data)

    transport._send_rtp = send_rtp
    transport._bench_logged = True


async def _publisher(link: ChildLink, port: int, room: str, spec: ClipSpec, max_seconds: float) -> None:
    use_loopback_ice()
    clip = load_clip(spec)
    log: SendLog = {}
    video = ClipTrack("video", clip, max_seconds)
    audio = ClipTrack("audio", clip, max_seconds)
    pc = RTCPeerConnection(rtc_configuration())
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
        for t in pc.getTransceivers():
            _log_sends(t.sender.transport, log)
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
                )
    finally:
        await rpc.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pc.close(), 5)


def publisher_main(conn: Connection, port: int, room: str, spec: ClipSpec, max_seconds: float) -> None:
    """Entry point of the publisher process (multiprocessing, spawn)."""

    async def run() -> None:
        link = ChildLink(conn)
        try:
            await _publisher(link, port, room, spec, max_seconds)
        except Exception:
            link.send("error", message=traceback.format_exc(limit=8))
        finally:
            link.close()

    asyncio.run(run())


# --------------------------------------------------------------------------------------------------
# subscribers


class ArrivalClock:
    """Stamps each datagram as aioice hands it over (before DTLS/SRTP/RTP parsing) for latency samples.

    The stamp rides through aioice's queue with the datagram, so the time read when a packet reaches
    the counter is that packet's own arrival in this process, not the end of its processing.
    """

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = 0.0

    def install(self, connection: Any) -> None:
        queue = connection._queue
        original_recvfrom = connection.recvfrom
        monotonic = time.monotonic

        def data_received(data: bytes, component: int) -> None:
            queue.put_nowait(((data, monotonic()), component))

        async def recvfrom() -> tuple[bytes, int]:
            data, component = await original_recvfrom()
            if isinstance(data, tuple):
                data, self.at = data
            else:
                self.at = monotonic()
            return data, component

        connection.data_received = data_received
        connection.recvfrom = recvfrom


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

    def __init__(
        self, receiver: RTCRtpReceiver, kind: str, loss: float, rng: random.Random, arrival: ArrivalClock
    ) -> None:
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

    def set_parameters(self, parameters: RTCRtpReceiveParameters) -> None:
        for codec in parameters.codecs:
            self.clock_rates[codec.payloadType] = codec.clockRate
            apt = codec.parameters.get("apt")
            if codec.mimeType.lower().endswith("/rtx") and isinstance(apt, int):
                self.rtx_apt[codec.payloadType] = apt
        for encoding in parameters.encodings:
            if encoding.rtx:
                self.rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc

    async def handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        now = time.monotonic()
        pt = packet.payload_type
        clock_rate = self.clock_rates.get(pt)
        if clock_rate is None:
            self.unknown_payload_type += 1
            return
        apt = self.rtx_apt.get(pt)
        if apt is not None:
            media_ssrc = self.rtx_ssrc.get(packet.ssrc)
            if media_ssrc is None or len(packet.payload) < 2:
                self.unknown_payload_type += 1
                return
            if self.loss and self.rng.random() < self.loss:
                return
            if self.rr_streams is not None:
                self._feed_rr(packet, clock_rate)
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=media_ssrc)
            rtx = True
        else:
            rtx = False
            if self.loss and self.rng.random() < self.loss:
                if self.in_window:
                    stream = self._stream(packet.ssrc, packet.sequence_number)
                    stream.dropped.add(stream.extend(packet.sequence_number))
                return
            if self.rr_streams is not None:
                self._feed_rr(packet, clock_rate)

        stream = self._stream(packet.ssrc, packet.sequence_number)
        ext = stream.extend(packet.sequence_number)
        self.packets += 1
        if self.first_packet_at is None:
            self.first_packet_at = now
        payload = packet.payload
        if self.first_keyframe_at is None and self.video and vp8_keyframe_start(payload):
            self.first_keyframe_at = now
        if self.in_window:
            stream.received.add(ext)
            self.window_packets += 1
            self.window_bytes += len(payload) + 12
            if rtx:
                self.window_rtx += 1
            elif len(payload) >= KEY_BYTES + 8:  # the key must not reach into the VP8 descriptor
                frame_end = self.video and packet.marker
                if frame_end or not ext & 3:
                    self.samples.append((payload[-KEY_BYTES:], self.arrival.at, now, frame_end, not ext & 3))
            if self.video and packet.marker and not rtx:
                self.window_frames += 1
        elif stream.end is not None:
            stream.received.add(ext)  # late retransmissions still repair the window

        if self.nack is not None and self.nack.add(packet):
            await self.receiver._send_rtcp_nack(packet.ssrc, sorted(self.nack.missing))

    def _feed_rr(self, packet: RtpPacket, clock_rate: int) -> None:
        assert self.rr_streams is not None
        stats = self.rr_streams.get(packet.ssrc)
        if stats is None:
            stats = self.rr_streams[packet.ssrc] = StreamStatistics(clock_rate)
        stats.add(packet)

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
        arrival = ArrivalClock()
        for t in (tv, ta):
            arrival.install(t.receiver.transport.transport._connection)
        self.video = SlotCounter(tv.receiver, "video", loss, rng, arrival)
        self.audio = SlotCounter(ta.receiver, "audio", loss, rng, arrival)
        install_counter(tv.receiver, self.video)
        install_counter(ta.receiver, self.audio)
        self.offer_at: float | None = None
        self.connected_at: float | None = None
        self.error: str | None = None

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()

    async def join(self, port: int, room: str) -> None:
        rpc = RpcClient(port)
        try:
            await self.pc.setLocalDescription(await self.pc.createOffer())
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


async def _subscribers(
    link: ChildLink, port: int, room: str, names: list[str], loss: float, seed: int, concurrency: int
) -> None:
    use_loopback_ice()
    subs = [Subscriber(name, loss, seed * 100_003 + i) for i, name in enumerate(names)]
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
        await asyncio.gather(*(asyncio.wait_for(s.pc.close(), 5) for s in subs), return_exceptions=True)


def subscribers_main(
    conn: Connection, port: int, room: str, names: list[str], loss: float, seed: int, concurrency: int
) -> None:
    """Entry point of one subscriber process (multiprocessing, spawn): several subscribers share it."""

    async def run() -> None:
        link = ChildLink(conn)
        try:
            await _subscribers(link, port, room, names, loss, seed, concurrency)
        except Exception:
            link.send("error", message=traceback.format_exc(limit=8))
        finally:
            link.close()

    asyncio.run(run())
