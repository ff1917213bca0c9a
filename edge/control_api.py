"""An edge node's control API: the media-plane calls the control node makes to hold copies of rooms on it.

Served by `classroom edge` (aiohttp), every request authenticated with the cluster's node secret
(`Authorization: Bearer SECRET`, compared in constant time; 401 otherwise, with nothing else said):

    POST /node/v1/call/<method>   JSON {"args": {...}} -> {"result": ...}
    GET  /node/v1/events          WebSocket: every media event of this node as a JSON object
    GET  /node/v1/status          this node: id, region, county, capacity, free subscriptions, rooms

The methods (`CALLS`) are the media plane's own (`media/api.py`, `media/local.py`): `relay_copy`
(a copy of a room owned elsewhere, its end of a relay link bound; the link's key in base64),
`relay_connect`, `relay_origin` and `relay_drop` (this node's copy passing the room on down a chain,
to an edge further down), `close_copy`, `join`, `leave`, `add_candidate`, `stats` and `free_subscriptions`.
A refusal of the media plane is 409 with {"error", "type"} (`media_capacity` when it is full); a
malformed call 400. `edge.control_client.EdgeClient` is the other end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from edge.node_secret import bearer, secret_matches
from media.api import MediaError, MediaEvent, ParticipantRole, SlotKind, TrackKind
from media.config import MediaCapacityError

log = logging.getLogger(__name__)


class EdgePlane(Protocol):
    """The media-plane calls an edge serves (LocalMediaPlane and WorkerMediaPlane both have them)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def relay_copy(self, room_id: str, link_id: str, key: bytes, fast_start: bool = False) -> tuple[str, int]: ...
    async def relay_connect(self, room_id: str, link_id: str, peer: tuple[str, int]) -> None: ...
    async def relay_origin(self, room_id: str, link_id: str, key: bytes, peer: tuple[str, int]) -> tuple[str, int]: ...
    async def relay_drop(self, room_id: str, link_id: str) -> None: ...
    async def close_copy(self, room_id: str, lost: bool = False) -> None: ...
    async def join(self, room_id: str, participant_id: str, role: ParticipantRole, offer_sdp: str,
                   tracks: dict[str, TrackKind] | None = None, slots: dict[str, SlotKind] | None = None) -> str: ...
    async def leave(self, room_id: str, participant_id: str) -> None: ...
    async def add_candidate(self, room_id: str, participant_id: str, candidate: dict[str, Any]) -> None: ...
    async def stats(self, room_id: str | None = None) -> dict[str, Any]: ...
    async def free_subscriptions(self) -> int | None: ...
    def events(self) -> Any: ...


@dataclass(frozen=True)
class EdgeIdentity:
    """What `GET /node/v1/status` says of this node besides its plane's figures."""

    node_id: str
    region: str
    county: str
    capacity: int
    control_url: str


Handler = Callable[[EdgePlane, dict[str, Any]], Awaitable[Any]]


def _str(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _address(value: Any) -> tuple[str, int]:
    if not isinstance(value, list | tuple) or len(value) != 2 or not isinstance(value[0], str):
        raise ValueError("an address is [host, port]")
    return value[0], int(value[1])


def _key(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("key is base64")
    return base64.b64decode(value, validate=True)


async def _relay_copy(plane: EdgePlane, a: dict[str, Any]) -> list[Any]:
    host, port = await plane.relay_copy(_str(a, "room_id"), _str(a, "link_id"), _key(a.get("key")),
                                        bool(a.get("fast_start", False)))
    return [host, port]


async def _relay_connect(plane: EdgePlane, a: dict[str, Any]) -> None:
    await plane.relay_connect(_str(a, "room_id"), _str(a, "link_id"), _address(a.get("peer")))


async def _relay_origin(plane: EdgePlane, a: dict[str, Any]) -> list[Any]:
    host, port = await plane.relay_origin(_str(a, "room_id"), _str(a, "link_id"), _key(a.get("key")),
                                          _address(a.get("peer")))
    return [host, port]


async def _relay_drop(plane: EdgePlane, a: dict[str, Any]) -> None:
    await plane.relay_drop(_str(a, "room_id"), _str(a, "link_id"))


async def _close_copy(plane: EdgePlane, a: dict[str, Any]) -> None:
    await plane.close_copy(_str(a, "room_id"), bool(a.get("lost", False)))


async def _join(plane: EdgePlane, a: dict[str, Any]) -> str:
    tracks = a.get("tracks")
    slots = a.get("slots")
    return await plane.join(
        _str(a, "room_id"), _str(a, "participant_id"), ParticipantRole(_str(a, "role")), _str(a, "offer_sdp"),
        {str(m): TrackKind(k) for m, k in dict(tracks).items()} if tracks is not None else None,
        {str(m): SlotKind(k) for m, k in dict(slots).items()} if slots is not None else None,
    )


async def _leave(plane: EdgePlane, a: dict[str, Any]) -> None:
    await plane.leave(_str(a, "room_id"), _str(a, "participant_id"))


async def _add_candidate(plane: EdgePlane, a: dict[str, Any]) -> None:
    candidate = a.get("candidate")
    if not isinstance(candidate, dict):
        raise ValueError("candidate is an object")
    await plane.add_candidate(_str(a, "room_id"), _str(a, "participant_id"), candidate)


async def _stats(plane: EdgePlane, a: dict[str, Any]) -> dict[str, Any]:
    room_id = a.get("room_id")
    return await plane.stats(str(room_id) if room_id is not None else None)


async def _free(plane: EdgePlane, _a: dict[str, Any]) -> int | None:
    return await plane.free_subscriptions()


CALLS: dict[str, Handler] = {
    "relay_copy": _relay_copy,
    "relay_connect": _relay_connect,
    "relay_origin": _relay_origin,
    "relay_drop": _relay_drop,
    "close_copy": _close_copy,
    "join": _join,
    "leave": _leave,
    "add_candidate": _add_candidate,
    "stats": _stats,
    "free_subscriptions": _free,
}

PLANE = web.AppKey("edge_plane", object)
IDENTITY = web.AppKey("edge_identity", EdgeIdentity)
SECRET = web.AppKey("edge_secret", str)


def event_json(event: MediaEvent) -> dict[str, Any]:
    return {"kind": str(event.kind), "room_id": event.room_id, "participant_id": event.participant_id,
            "track": str(event.track) if event.track is not None else None, "at": event.at,
            "detail": dict(event.detail)}


@web.middleware
async def _authenticated(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    if not secret_matches(bearer(request.headers.get("Authorization")), request.app[SECRET]):
        log.warning("edge control API: refused %s %s from %s (wrong or no node secret)", request.method,
                    request.path, request.remote)
        return web.json_response({"error": "unauthorized"}, status=401)
    return await handler(request)


async def _call(request: web.Request) -> web.Response:
    handler = CALLS.get(request.match_info["method"])
    if handler is None:
        return web.json_response({"error": "unknown method"}, status=404)
    try:
        body = await request.json()
        args = body.get("args", {}) if isinstance(body, dict) else None
        if not isinstance(args, dict):
            raise ValueError("the body is {\"args\": {...}}")
        result = await handler(request.app[PLANE], args)  # type: ignore[arg-type]
    except MediaCapacityError as exc:
        return web.json_response({"error": str(exc), "type": "media_capacity"}, status=409)
    except MediaError as exc:
        return web.json_response({"error": str(exc), "type": "media"}, status=409)
    except (ValueError, TypeError, KeyError) as exc:
        return web.json_response({"error": f"bad call: {exc}"}, status=400)
    return web.json_response({"result": result})


async def _events(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=10)
    await ws.prepare(request)
    plane: EdgePlane = request.app[PLANE]  # type: ignore[assignment]
    events = plane.events()

    async def forward() -> None:
        async for event in events:
            await ws.send_json(event_json(event))

    task = asyncio.get_running_loop().create_task(forward())
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await task
    return ws


async def _status(request: web.Request) -> web.Response:
    ident = request.app[IDENTITY]
    plane: EdgePlane = request.app[PLANE]  # type: ignore[assignment]
    stats = await plane.stats()
    return web.json_response({
        "node_id": ident.node_id, "role": "edge", "region": ident.region, "county": ident.county,
        "capacity": ident.capacity, "control_url": ident.control_url,
        "free_subscriptions": await plane.free_subscriptions(), "rooms": sorted(stats.get("rooms", {})),
    })


def build_control_app(plane: EdgePlane, identity: EdgeIdentity, secret: str) -> web.Application:
    """The control API over `plane`; every route needs `secret`."""
    app = web.Application(middlewares=[_authenticated], client_max_size=1024 * 1024)
    app[PLANE] = plane
    app[IDENTITY] = identity
    app[SECRET] = secret
    app.router.add_post("/node/v1/call/{method}", _call)
    app.router.add_get("/node/v1/events", _events)
    app.router.add_get("/node/v1/status", _status)
    return app
