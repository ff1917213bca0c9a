"""A live lesson for end-to-end tests: an aiortc lead on air with a camera that can be paused, and one
receiving classroom, both joined over the WebSocket with media and a heartbeat, closed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from signaling.client import MovingPicture, Peer, ProtocolClient, join_with_media
from signaling.trial import AdminApi, join_token
from tests.signaling.test_lesson_state import _heartbeat


@dataclass
class LiveLesson:
    lead: ProtocolClient
    room: ProtocolClient
    lead_peer: Peer
    room_peer: Peer
    camera: MovingPicture
    beats: list[asyncio.Task[None]]

    async def drop_classroom(self) -> None:
        """The classroom's network goes: heartbeat, media and socket."""
        self.beats[1].cancel()
        await self.room_peer.close()
        await self.room.close()


@contextlib.asynccontextmanager
async def lead_and_classroom(api: AdminApi, ws_url: str, lesson: int, classroom_id: int) -> AsyncIterator[LiveLesson]:
    lead_peer, room_peer = Peer(), Peer()
    lead = await join_with_media(ws_url, await join_token(api, lesson, "lead"), lead_peer, lead_peer.as_lead(), lesson)
    room = await join_with_media(ws_url, await join_token(api, lesson, "receiver", classroom_id), room_peer,
                                 room_peer.as_classroom(), lesson)
    camera = lead_peer.pc.getTransceivers()[0].sender.track
    assert isinstance(camera, MovingPicture)
    live = LiveLesson(lead, room, lead_peer, room_peer, camera, [_heartbeat(lead), _heartbeat(room)])
    try:
        yield live
    finally:
        for beat in live.beats:
            beat.cancel()
        for closing in (lead.close(), room.close(), lead_peer.close(), room_peer.close()):
            with contextlib.suppress(Exception):
                await closing
