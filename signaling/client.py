"""A protocol v1 client in Python: the WebSocket conversation and aiortc peers for the lead and classrooms.

Used by the join benchmark and the tests, and a working example for people writing their own client
(see docs/protocol.md). Clients announce a loopback host candidate when told to (`addresses`), because
aioice leaves loopback out and a test on 127.0.0.1 would otherwise never connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import ssl
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from av import VideoFrame

from media.ice import control_host_candidates

VERSION = 1


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProtocolClient:
    """One WebSocket session: send messages, wait for message types, keep the rest in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> None:
        self.ws = ws
        self._session = session
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.last_heard = time.monotonic()  # when the server last sent anything (heartbeat, docs/protocol.md)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._next_id = 0

    @classmethod
    async def connect(cls, url: str, ssl_context: ssl.SSLContext | bool | None = None) -> ProtocolClient:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, ssl=ssl_context if ssl_context is not None else True, heartbeat=None)
        except BaseException:
            await session.close()
            raise
        return cls(ws, session)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                self.last_heard = time.monotonic()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    self.seen.append(data)
                    await self.inbox.put(data)
        finally:
            self.closed.set()

    async def send(self, kind: str, **fields: Any) -> int:
        self._next_id += 1
        await self.ws.send_str(json.dumps({"v": VERSION, "type": kind, "id": self._next_id, **fields}))
        return self._next_id

    async def expect(self, *kinds: str, timeout: float = 15.0) -> dict[str, Any]:
        """The next message of one of `kinds`; an `error` raises Refused; others are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kinds} within {timeout}s")
            get = asyncio.ensure_future(self.inbox.get())
            closed = asyncio.ensure_future(self.closed.wait())
            done, _ = await asyncio.wait({get, closed}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if get not in done:
                get.cancel()
                if self.closed.is_set() and self.inbox.empty():
                    raise ConnectionError(f"closed ({self.ws.close_code}) while waiting for {kinds}")
                continue
            msg = get.result()
            if msg.get("type") in kinds:
                return msg
            if msg.get("type") == "error" and "error" not in kinds:
                raise Refused(str(msg.get("code")), str(msg.get("message")))

    async def join(self, token: str, lesson_id: int | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"token": token, "client": {"name": "live-classroom-python"}}
        if lesson_id is not None:
            fields["lesson_id"] = lesson_id
        await self.send("join", **fields)
        return await self.expect("joined", "standby")

    async def negotiate(self, pc: RTCPeerConnection, **fields: Any) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        await self.send("offer", sdp=pc.localDescription.sdp, **fields)
        answer = await self.expect("answer", timeout=20.0)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self._session.close()


class MovingPicture(MediaStreamTrack):
    """A generated camera: a bright bar sweeping across, so every frame differs (for "moving video")."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.count = 0
        self._start: float | None = None
        self._running = asyncio.Event()
        self._running.set()

    def pause(self) -> None:
        """Send nothing until resume(), as a camera whose driver hangs does (the connection stays up)."""
        self._running.clear()

    def resume(self) -> None:
        self._start = None  # frames go on from now, not in a burst to catch up
        self._running.set()

    async def recv(self) -> VideoFrame:
        await self._running.wait()
        if self._start is None:
            self._start = time.monotonic() - self.count / self.fps
        delay = self._start + self.count / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        img = np.full((self.height, self.width, 3), 40, dtype=np.uint8)
        x = (self.count * 8) % self.width
        img[:, x : x + 16] = (230, 200, 40)
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self.count * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.count += 1
        return frame


class Peer:
    """An aiortc peer connection as a lead (publishes) or a classroom (five slots, optional talk-back)."""

    def __init__(self, addresses: Sequence[str] = ("127.0.0.1",), ports: tuple[int, int] = (50000, 59999)) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.addresses = tuple(addresses)
        self.ports = ports
        self.first_frame_at: float | None = None
        self.frames = 0
        self.first_frame = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not self._tasks:
                self._tasks.append(asyncio.ensure_future(self._consume(track)))

    def as_lead(self) -> dict[str, Any]:
        # one m-line per kind that both publishes and receives the called classroom (as the web page does)
        self.pc.addTransceiver(MovingPicture(), direction="sendrecv")
        self.pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
        mids = self._mids()
        return {"tracks": {mids[0]: "camera", mids[1]: "audio"},
                "slots": {mids[0]: "talkback_camera", mids[1]: "talkback_audio"}}

    def as_classroom(self, publish: bool = False) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if publish:
            self.pc.addTransceiver(MovingPicture(), direction="sendonly")
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        for kind in ("video", "audio", "video", "video", "audio"):
            self.pc.addTransceiver(kind, direction="recvonly")
        mids = self._mids()
        slots = mids[2:] if publish else mids
        fields["slots"] = dict(zip(slots, ("camera", "audio", "screen", "talkback_camera", "talkback_audio"),
                                   strict=True))
        if publish:
            fields["tracks"] = {mids[0]: "camera", mids[1]: "audio"}
        return fields

    def _mids(self) -> list[str]:
        # aiortc assigns mids at createOffer; they are the transceiver indexes as strings
        return [str(i) for i in range(len(self.pc.getTransceivers()))]

    def prepare(self) -> None:
        control_host_candidates(self.pc, self.addresses, *self.ports)

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.frames += 1
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
                self.first_frame.set()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.pc.close()


async def join_with_media(
    ws_url: str, token: str, peer: Peer, fields: dict[str, Any], lesson_id: int | None = None,
    ssl_context: ssl.SSLContext | bool | None = None,
) -> ProtocolClient:
    client = await ProtocolClient.connect(ws_url, ssl_context)
    try:
        await client.join(token, lesson_id)
        peer.prepare()
        await client.negotiate(peer.pc, **fields)
    except BaseException:
        await client.close()
        raise
    return client


class ResilientClassroom:
    """A receiving classroom that behaves as the web page does when its network drops (docs/protocol.md §2b).

    It pings twice a second; when nothing has come from the server for `lost_after` seconds it notes the
    outage, drops its socket and peer, and tries a fresh connection at once and then every `retry`
    seconds (an attempt that has not connected within `connect_timeout` is given up), joining again with
    the same join token. `outages` and `recoveries` hold time.time() of each outage noticed and of the
    first decoded frame after each reconnect."""

    def __init__(
        self, ws_url: str, token: str, lesson_id: int, addresses: Sequence[str] = ("127.0.0.1",),
        heartbeat: float = 0.5, lost_after: float = 1.5, retry: float = 0.2, connect_timeout: float = 1.5,
    ) -> None:
        self.ws_url, self.token, self.lesson_id, self.addresses = ws_url, token, lesson_id, tuple(addresses)
        self.heartbeat, self.lost_after = heartbeat, lost_after
        self.retry, self.connect_timeout = retry, connect_timeout
        self.spread = 0.4
        self.client: ProtocolClient | None = None
        self.peer: Peer | None = None
        self.outages: list[float] = []
        self.recoveries: list[float] = []
        self.first_frame_at: float | None = None
        self.errors: list[str] = []
        self.marks: dict[str, float] = {}  # time.time() of each step of the latest connection
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Connect, play, and keep reconnecting after every outage until stop()."""
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._connect(), self.connect_timeout + 20.0)
            except (OSError, ConnectionError, TimeoutError, Refused, aiohttp.ClientError, ValueError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}"[:160])
                del self.errors[:-20]
                await self._drop()
                await self._pause(self.retry)
                continue
            reconnect = bool(self.outages)
            watch = asyncio.ensure_future(self._record_first_frame(reconnect))
            await self._watch()  # returns when the link is lost (or on stop)
            watch.cancel()
            await self._drop()
            if not self._stop.is_set():
                await self._pause(self.retry if len(self.errors) else 0.0)

    async def _attempt(self) -> ProtocolClient:
        session = aiohttp.ClientSession()
        try:
            ws = await asyncio.wait_for(session.ws_connect(self.ws_url, heartbeat=None), self.connect_timeout)
        except BaseException:
            await session.close()
            raise
        return ProtocolClient(ws, session)

    async def _open(self) -> ProtocolClient:
        """A socket, as the page opens one: while an attempt hangs, another starts every `spread` seconds
        (at most four at a time); the first to open wins."""
        pending: set[asyncio.Task[ProtocolClient]] = set()
        try:
            while True:
                if len(pending) < 4:
                    pending.add(asyncio.ensure_future(self._attempt()))
                done, pending = await asyncio.wait(pending, timeout=self.spread, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        return task.result()
                if not pending:
                    raise ConnectionError(f"cannot connect: {next(iter(done)).exception()}")
        finally:
            for task in pending:
                task.cancel()
                with contextlib.suppress(BaseException):
                    late = await task
                    await late.close()

    async def _connect(self) -> None:
        marks = self.marks = {"start": time.time()}
        self.client = await self._open()
        marks["ws_open"] = time.time()
        await self.client.join(self.token, self.lesson_id)
        marks["joined"] = time.time()
        self.peer = Peer(self.addresses)
        fields = self.peer.as_classroom()
        self.peer.prepare()
        await self.client.negotiate(self.peer.pc, **fields)
        marks["answer"] = time.time()

    async def _record_first_frame(self, reconnect: bool) -> None:
        peer = self.peer
        assert peer is not None
        await peer.first_frame.wait()
        assert peer.first_frame_at is not None
        at = time.time() - (time.monotonic() - peer.first_frame_at)
        self.marks["first_frame"] = at
        if reconnect:
            self.recoveries.append(at)
        elif self.first_frame_at is None:
            self.first_frame_at = at

    async def _watch(self) -> None:
        client = self.client
        assert client is not None
        while not self._stop.is_set():
            with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                await client.send("ping")
            await self._pause(self.heartbeat)
            if time.monotonic() - client.last_heard > self.lost_after or client.closed.is_set():
                self.outages.append(time.time())
                return

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _drop(self) -> None:
        client, peer = self.client, self.peer
        self.client = self.peer = None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 1.0)
        if peer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.close(), 2.0)

    async def stop(self) -> None:
        self._stop.set()
        await self._drop()
