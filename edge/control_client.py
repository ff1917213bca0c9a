"""The control node's end of an edge's control API (`edge.control_api`): the media-plane calls, over HTTP.

`EdgeClient(url, secret)` has the calls of the plane it reaches (`relay_copy`, `relay_connect`,
`relay_origin`, `relay_drop`, `close_copy`, `join`, `leave`, `add_candidate`, `stats`,
`free_subscriptions`) with the same arguments and results, and `events()`, the edge's media events as
`MediaEvent`s from its WebSocket.
A refusal comes back as the media plane's own exception (`MediaCapacityError`, `MediaError`); an edge
that cannot be reached or refuses the secret as `EdgeUnavailable` (a `MediaError`)."""

from __future__ import annotations

import base64
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from media.api import EventKind, MediaError, MediaEvent, ParticipantRole, SlotKind, TrackKind
from media.config import MediaCapacityError

CALL_TIMEOUT_S = 15.0


class EdgeUnavailable(MediaError):
    """The edge's control API cannot be reached, or it refused this node's secret."""


def client_context(ca_file: str = "") -> ssl.SSLContext:
    """How the control node checks an edge's HTTPS certificate: against `ca_file` (PEM), else the system's
    CAs; the host name is always checked."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_off_host(url: str) -> bool:
    """An http:// URL to another host: the node secret and the relay links' keys would cross in clear."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not _is_loopback(parts.hostname or "")


def link_mismatch(ours: str, theirs: str) -> bool:
    """The two ends of a relay link, one on loopback and the other not: neither can reach the other (a
    node left at the default `[media] relay_address` 127.0.0.1 in a cluster of several hosts)."""
    return _is_loopback(ours) != _is_loopback(theirs)


class EdgeClient:
    def __init__(self, url: str, secret: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {secret}"}
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, connector=aiohttp.TCPConnector(ssl=self._ssl),
                                                  timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, **args: Any) -> Any:
        try:
            async with self._http().post(f"{self.url}/node/v1/call/{method}", json={"args": args}) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise EdgeUnavailable(f"edge {self.url}: {exc or type(exc).__name__}") from exc
        if status == 200:
            return body.get("result")
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
        if status == 401:
            raise EdgeUnavailable(f"edge {self.url} refused this node's secret")
        if status == 409 and body.get("type") == "media_capacity":
            raise MediaCapacityError(error)
        raise MediaError(f"edge {self.url}: {error or status}")

    async def status(self) -> dict[str, Any]:
        try:
            async with self._http().get(f"{self.url}/node/v1/status") as resp:
                if resp.status == 401:
                    raise EdgeUnavailable(f"edge {self.url} refused this node's secret")
                return dict(await resp.json())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EdgeUnavailable(f"edge {self.url}: {exc}") from exc

    # -- the media plane's calls ----------------------------------------------------------------

    async def relay_copy(self, room_id: str, link_id: str, key: bytes, fast_start: bool = False) -> tuple[str, int]:
        host, port = await self.call("relay_copy", room_id=room_id, link_id=link_id,
                                     key=base64.b64encode(key).decode(), fast_start=fast_start)
        return str(host), int(port)

    async def relay_connect(self, room_id: str, link_id: str, peer: tuple[str, int]) -> None:
        await self.call("relay_connect", room_id=room_id, link_id=link_id, peer=[peer[0], int(peer[1])])

    async def relay_origin(self, room_id: str, link_id: str, key: bytes, peer: tuple[str, int]) -> tuple[str, int]:
        host, port = await self.call("relay_origin", room_id=room_id, link_id=link_id,
                                     key=base64.b64encode(key).decode(), peer=[peer[0], int(peer[1])])
        return str(host), int(port)

    async def relay_drop(self, room_id: str, link_id: str) -> None:
        await self.call("relay_drop", room_id=room_id, link_id=link_id)

    async def close_copy(self, room_id: str, lost: bool = False) -> None:
        await self.call("close_copy", room_id=room_id, lost=lost)

    async def join(self, room_id: str, participant_id: str, role: ParticipantRole, offer_sdp: str,
                   tracks: Mapping[str, TrackKind] | None = None, slots: Mapping[str, SlotKind] | None = None) -> str:
        return str(await self.call(
            "join", room_id=room_id, participant_id=participant_id, role=str(role), offer_sdp=offer_sdp,
            tracks={m: str(k) for m, k in tracks.items()} if tracks is not None else None,
            slots={m: str(k) for m, k in slots.items()} if slots is not None else None))

    async def leave(self, room_id: str, participant_id: str) -> None:
        await self.call("leave", room_id=room_id, participant_id=participant_id)

    async def add_candidate(self, room_id: str, participant_id: str, candidate: Mapping[str, Any]) -> None:
        await self.call("add_candidate", room_id=room_id, participant_id=participant_id, candidate=dict(candidate))

    async def stats(self, room_id: str | None = None) -> dict[str, Any]:
        return dict(await self.call("stats", room_id=room_id))

    async def free_subscriptions(self) -> int | None:
        free = await self.call("free_subscriptions")
        return None if free is None else int(free)

    async def events(self, heartbeat: float = 10.0,
                     on_open: Callable[[], None] | None = None) -> AsyncIterator[MediaEvent]:
        """The edge's media events from now on, until its WebSocket closes (its own session: a stream
        that lasts as long as the lessons, with no total time limit). It pings every `heartbeat`
        seconds and ends when a pong takes more than half of that (a dead host, a cut link);
        `on_open` is called once the stream is up."""
        try:
            stream_timeout = aiohttp.ClientTimeout(total=None, connect=CALL_TIMEOUT_S)
            async with aiohttp.ClientSession(headers=self._headers, connector=aiohttp.TCPConnector(ssl=self._ssl),
                                             timeout=stream_timeout) as http, \
                    http.ws_connect(f"{self.url}/node/v1/events", heartbeat=heartbeat) as ws:
                if on_open is not None:
                    on_open()
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    e = msg.json()
                    yield MediaEvent(EventKind(e["kind"]), str(e["room_id"]), e.get("participant_id"),
                                     TrackKind(e["track"]) if e.get("track") else None, float(e.get("at", 0.0)),
                                     dict(e.get("detail") or {}))
        except aiohttp.WSServerHandshakeError as exc:
            raise EdgeUnavailable(f"edge {self.url} refused the events stream ({exc.status})") from exc
        except aiohttp.ClientError as exc:
            raise EdgeUnavailable(f"edge {self.url}: {exc}") from exc
