"""The cascade bench's counting peers: leads that publish the pre-encoded clip and classrooms that count
what they receive, in child processes, over the real signaling protocol (`classroom bench cascade
--peers counting`).

A lead joins with a join token over the WebSocket, as the teacher's page does (camera and sound on
m-lines that also receive talk-back), and sends the clip's packets without encoding them (aiortc
packetizes `av.Packet`s), answering keyframe requests with the next picture coded as a keyframe. A
receiving classroom (or an observer) joins with its own token, offers the classroom's five slots and
never decodes: `media.bench_peers.FastPath` counts the camera's and sound's packets at the socket, with
kernel receive timestamps, NACKs what is missing and sends receiver reports (`SlotCounter`), so the
nodes do for it what they do for a real kiosk. Each pings twice a second, as the pages do. Told
`restart` (its edge died), a classroom joins again with a fresh peer, as the kiosk page does, and notes
when the first keyframe of the new peer arrives.

This is what lets the issue's sizes (640 classrooms) run on two cores: a decoding aiortc classroom
costs about 2 % of a core, a counting one a tenth of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from media.bench_clip import ClipSpec, load_clip
from media.bench_link import ChildLink, run_child
from media.bench_net import check_loopback_sdp, rtc_configuration, use_loopback_ice
from media.bench_peers import ClipTrack, FastPath, SlotCounter, install_counter
from media.workers import LoopLag
from signaling.client import ProtocolClient
from signaling.trial import AdminApi, join_token

SLOTS = ("camera", "audio", "screen", "talkback_camera", "talkback_audio")
SLOT_KINDS = ("video", "audio", "video", "video", "audio")
PING_S = 0.5  # as the pages do (signaling.liveness.HEARTBEAT_S)
JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class SeatSpec:
    """Who joins: `role` lead, receiver (with its classroom) or observer; `timed` keeps its camera
    packets' arrival times for the latency figures."""

    seat: str
    lesson: int
    role: str
    classroom: int | None = None
    timed: bool = False


class _Seat:
    def __init__(self, spec: SeatSpec, api: AdminApi, ws_url: str, clip: Any, max_seconds: float) -> None:
        self.spec = spec
        self.api, self.ws_url = api, ws_url
        self.clip, self.max_seconds = clip, max_seconds
        self.pc: RTCPeerConnection | None = None
        self.client: ProtocolClient | None = None
        self.video: SlotCounter | None = None
        self.audio: SlotCounter | None = None
        self.pinger: asyncio.Task[None] | None = None
        self.error: str | None = None
        self.dropped: str | None = None  # why the far side's peer connection ended while this seat watched

    async def join(self) -> None:
        token = await join_token(self.api, self.spec.lesson, self.spec.role, self.spec.classroom)
        pc = self.pc = RTCPeerConnection(rtc_configuration())
        self.dropped = None

        @pc.on("connectionstatechange")
        def _state() -> None:  # not when this seat closes its own peer (close() lets go of it first)
            if self.pc is pc and pc.connectionState in ("failed", "closed") and self.dropped is None:
                self.dropped = f"{pc.connectionState} {time.strftime('%H:%M:%S')}"
        if self.spec.role == "lead":
            camera = ClipTrack("video", self.clip, self.max_seconds)
            sound = ClipTrack("audio", self.clip, self.max_seconds)
            tv = pc.addTransceiver(camera, direction="sendrecv")
            pc.addTransceiver(sound, direction="sendrecv")
            tv.sender._send_keyframe = camera.request_keyframe  # type: ignore[method-assign]
            fields: dict[str, Any] = {"tracks": {"0": "camera", "1": "audio"},
                                      "slots": {"0": "talkback_camera", "1": "talkback_audio"}}
        else:
            transceivers = [pc.addTransceiver(kind, direction="recvonly") for kind in SLOT_KINDS]
            fast = FastPath([])
            rng = random.Random(self.spec.seat)
            self.video = SlotCounter(transceivers[0].receiver, "video", 0.0, rng, fast)
            self.audio = SlotCounter(transceivers[1].receiver, "audio", 0.0, rng, fast)
            fast.counters += [self.video, self.audio]
            fast.install(transceivers[0].receiver.transport)  # the BUNDLE transport: the first m-line's
            install_counter(transceivers[0].receiver, self.video)
            install_counter(transceivers[1].receiver, self.audio)
            fields = {"slots": {str(i): slot for i, slot in enumerate(SLOTS)}}
        client = self.client = await ProtocolClient.connect(self.ws_url)
        await client.join(token)
        await pc.setLocalDescription(await pc.createOffer())
        if self.video is not None:
            for transceiver in pc.getTransceivers():
                self.video.arrival.bypass_stun_parsing(transceiver.receiver.transport)
        offer = pc.localDescription.sdp
        check_loopback_sdp(offer)
        await client.send("offer", sdp=offer, **fields)
        answer = await client.expect("answer", timeout=JOIN_TIMEOUT_S)
        check_loopback_sdp(answer["sdp"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self.pinger = asyncio.ensure_future(self._ping(client))

    @staticmethod
    async def _ping(client: ProtocolClient) -> None:
        with contextlib.suppress(Exception):
            while not client.closed.is_set():
                await client.send("ping")
                await asyncio.sleep(PING_S)

    @property
    def keyframe_at(self) -> float | None:
        return None if self.video is None else self.video.first_keyframe_at

    async def rejoin(self, timeout: float) -> float | None:
        """Told `restart`: a fresh peer and socket; CLOCK_MONOTONIC when its first keyframe arrived."""
        deadline = time.monotonic() + timeout
        assert self.client is not None
        try:
            await self.client.expect("restart", timeout=timeout)
            await self.close()
            await asyncio.wait_for(self.join(), max(0.1, deadline - time.monotonic()))
            while self.keyframe_at is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        except Exception as exc:  # reported as "did not come back", with why
            self.error = f"rejoin: {type(exc).__name__}: {exc}"
            return None
        return self.keyframe_at

    def window(self, on: bool) -> None:
        for counter in (self.video, self.audio):
            if counter is not None:
                (counter.start_window if on else counter.stop_window)()

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seat": self.spec.seat, "error": self.error, "dropped": self.dropped, "expected": 0,
                               "received": 0}
        for counter in (self.video, self.audio):
            if counter is not None:
                r = counter.report({})
                out["expected"] += r["expected"]
                out["received"] += r["received"]
        if self.spec.timed and self.video is not None:  # (payload key, kernel arrival) of sampled camera packets
            out["arrivals"] = [(key, at) for key, at, _done, _end, _sampled in self.video.samples]
            self.video.samples.clear()
        return out

    async def close(self) -> None:
        if self.pinger is not None:
            self.pinger.cancel()
            self.pinger = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
            self.client = None
        if self.pc is not None:
            pc, self.pc = self.pc, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5)
        self.video = self.audio = None


async def _serve(link: ChildLink, ws_url: str, api_base: str, admin_token: str, specs: list[SeatSpec],
                 clip_spec: ClipSpec, max_seconds: float, concurrency: int) -> None:
    use_loopback_ice()
    clip = load_clip(clip_spec) if any(s.role == "lead" for s in specs) else None
    api = AdminApi(api_base, admin_token)
    seats = {s.seat: _Seat(s, api, ws_url, clip, max_seconds) for s in specs}
    gate = asyncio.Semaphore(concurrency)
    lag = LoopLag(interval=0.1, window=1_000_000)  # this process's worst lateness per phase (`take_worst`)
    lag.start()

    async def join(seat: _Seat) -> None:
        async with gate:
            try:
                await asyncio.wait_for(seat.join(), JOIN_TIMEOUT_S)
            except Exception as exc:
                seat.error = f"join: {type(exc).__name__}: {exc}"

    try:
        while True:
            cmd, payload = await link.recv()
            if cmd == "quit":
                break
            if cmd == "join":
                await asyncio.gather(*(join(s) for s in seats.values()))
                link.send("joined", errors={k: s.error for k, s in seats.items() if s.error}, lag_s=lag.take_worst())
            elif cmd == "status":
                link.send("status", keyframe=sum(1 for s in seats.values() if s.keyframe_at is not None),
                          receivers=sum(1 for s in seats.values() if s.video is not None),
                          dropped={k: s.dropped for k, s in seats.items() if s.dropped}, lag_s=lag.worst())
            elif cmd == "window":
                for s in seats.values():
                    s.window(bool(payload["on"]))
                link.send("window", lag_s=lag.take_worst())
            elif cmd == "report":
                link.send("report", seats=[s.report() for s in seats.values() if s.spec.role != "lead"])
            elif cmd == "failover":
                moved = [seats[k] for k in payload["seats"] if k in seats]
                back = await asyncio.gather(*(s.rejoin(float(payload["within"])) for s in moved))
                link.send("failover", back={s.spec.seat: t for s, t in zip(moved, back, strict=True)},
                          errors={s.spec.seat: s.error for s in moved if s.error}, lag_s=lag.take_worst())
    finally:
        lag.stop()
        await asyncio.gather(*(s.close() for s in seats.values()), return_exceptions=True)


def seats_main(conn: Connection, ws_url: str, api_base: str, admin_token: str, specs: list[SeatSpec],
               clip_spec: ClipSpec, max_seconds: float, concurrency: int, nice: int) -> None:
    """Entry point of one process of seats (multiprocessing, spawn). `nice` lowers its priority: the
    measuring apparatus shares the machine with the nodes it measures."""
    if nice:
        os.nice(nice)

    run_child(conn, lambda link: _serve(link, ws_url, api_base, admin_token, specs, clip_spec, max_seconds,
                                        concurrency))
