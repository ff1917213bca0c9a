"""The benchmark's server process: hosts one media plane and lets the bench's peers join over loopback RPC.

`plane` is `local` (our SFU, rooms in this process), `workers` (our SFU, rooms in worker processes
below this one) or `baseline` (the MediaRelay relay of `media.baseline`). The orchestrator measures the
CPU and memory of this process and everything below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback
from collections.abc import AsyncIterator, Mapping
from multiprocessing.connection import Connection
from typing import Any

from media.api import MediaEvent, MediaPlane, ParticipantRole, RecordingRequest, TrackKind
from media.bench_link import ChildLink
from media.bench_net import check_loopback_sdp, serve_rpc

PLANES = ("local", "workers", "baseline")


def make_plane(plane: str, config_overrides: Mapping[str, Any]) -> MediaPlane:
    if plane == "baseline":
        from media.baseline import MediaRelayPlane
        from media.bench_net import use_loopback_ice

        use_loopback_ice()
        return MediaRelayPlane()
    from media.config import MediaConfig

    config = MediaConfig(**dict(config_overrides))
    if plane == "local":
        from media.local import LocalMediaPlane

        return LocalMediaPlane(config)
    if plane == "workers":
        from media.workers import WorkerMediaPlane

        return WorkerMediaPlane(config)
    raise ValueError(f"unknown plane {plane!r}; choose one of {PLANES}")


class EventLog:
    """Counts the plane's events by kind and keeps the first few that end something, for the report."""

    KEEP = 10
    NOTABLE = frozenset({"publisher_down", "subscriber_down", "room_lost", "room_closed"})

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.notable: list[dict[str, Any]] = []

    async def consume(self, stream: AsyncIterator[MediaEvent]) -> None:
        async for event in stream:
            kind = str(event.kind)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind in self.NOTABLE and len(self.notable) < self.KEEP:
                self.notable.append(
                    {"kind": kind, "participant": event.participant_id, "at": event.at, "detail": dict(event.detail)}
                )


async def _serve(
    link: ChildLink, plane_name: str, room_id: str, config: Mapping[str, Any], monitoring: bool = False,
    recording_folder: str = "",
) -> None:
    plane = make_plane(plane_name, config)
    await plane.start()
    server: asyncio.Server | None = None
    events = EventLog()
    consumer = asyncio.get_running_loop().create_task(events.consume(plane.events()))
    load = None
    watcher: asyncio.Task[None] | None = None
    try:
        # Recording (`classroom bench record`): without its periodic keyframe requests, which the clip can only
        # answer with an intra version of a frame whose following inter frames were coded against another
        # picture (a decoder refuses them); an encoder answers with a fresh keyframe, the clip cannot.
        recording = RecordingRequest(recording_folder, keyframe_every_s=3600.0) if recording_folder else None
        await plane.open_room(room_id, recording)
        if monitoring:  # what `classroom serve` adds per room: stats every second, metrics, scrapes
            from monitoring.bench import MonitoringLoad

            load = MonitoringLoad(room_id)
            watcher = asyncio.get_running_loop().create_task(load.run(plane))

        async def handle(op: str, args: Mapping[str, Any]) -> Any:
            if op == "join":
                check_loopback_sdp(str(args["offer"]))
                tracks = {str(mid): TrackKind(kind) for mid, kind in (args.get("tracks") or {}).items()}
                answer = await plane.join(
                    str(args["room"]),
                    str(args["participant"]),
                    ParticipantRole(str(args["role"])),
                    str(args["offer"]),
                    tracks or None,
                )
                check_loopback_sdp(answer)
                return answer
            if op == "leave":
                await plane.leave(str(args["room"]), str(args["participant"]))
                return None
            if op == "stats":
                return await plane.stats(args.get("room"))
            raise ValueError(f"unknown op {op!r}")

        server = await serve_rpc(handle)
        port = server.sockets[0].getsockname()[1]
        link.send("ready", port=port, pid=os.getpid())
        while True:
            cmd, _payload = await link.recv()
            if cmd == "quit":
                break
            if cmd == "stats":
                try:
                    stats = await asyncio.wait_for(plane.stats(room_id), 10)
                except Exception as exc:
                    stats = {"error": f"{type(exc).__name__}: {exc}"}
                link.send("stats", stats=stats, events=events.counts, notable=events.notable,
                          monitoring=load.figures() if load is not None else None)
    finally:
        consumer.cancel()
        if watcher is not None:
            watcher.cancel()
        if server is not None:
            server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(plane.close_room(room_id), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(plane.stop(), 15)


def server_main(conn: Connection, plane: str, room_id: str, config: dict[str, Any], monitoring: bool = False,
                recording_folder: str = "") -> None:
    """Entry point of the server process (multiprocessing, spawn)."""

    async def run() -> None:
        link = ChildLink(conn)
        try:
            await _serve(link, plane, room_id, config, monitoring, recording_folder)
        except Exception:
            link.send("error", message=traceback.format_exc(limit=8))
            raise
        finally:
            link.close()

    asyncio.run(run())
