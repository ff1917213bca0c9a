"""Fan-out of media events to every consumer that asked for them (signaling, monitoring, ...)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from media.api import MediaEvent

_QUEUE_LIMIT = 10_000  # a consumer that stops reading loses events instead of growing memory


class EventHub:
    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[MediaEvent | None]] = []
        self.dropped = 0

    def publish(self, event: MediaEvent) -> None:
        for q in self._queues:
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1

    def close(self) -> None:
        """End every consumer's iteration."""
        for q in self._queues:
            while q.full():
                q.get_nowait()
            q.put_nowait(None)

    def subscribe(self) -> AsyncIterator[MediaEvent]:
        q: asyncio.Queue[MediaEvent | None] = asyncio.Queue(_QUEUE_LIMIT)
        self._queues.append(q)
        return self._iterate(q)

    async def _iterate(self, q: asyncio.Queue[MediaEvent | None]) -> AsyncIterator[MediaEvent]:
        try:
            while True:
                event = await q.get()
                if event is None:
                    return
                yield event
        finally:
            if q in self._queues:
                self._queues.remove(q)
