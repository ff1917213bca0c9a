"""A UDP proxy in the middle of a relay link, for tests: drops what it is told to, injects datagrams,
and keeps every datagram it carried (`captured`) so a test can look at what crossed the wire.

Both ends of the link see the proxy as their peer: the origin sends to `origin_side`, the copy to
`copy_side`, and each datagram goes on from the other socket, so it arrives from the address the
receiving end expects. All on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from media.relay import KIND_RTP
from media.relay_seal import LinkSeal

Drop = Callable[[bytes], bool]


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.on_datagram(data)


class LinkProxy:
    def __init__(self) -> None:
        self.origin_addr: tuple[str, int] | None = None
        self.copy_addr: tuple[str, int] | None = None
        self.drop_to_copy: Drop | None = None
        self.dropped = 0
        self.link_key: bytes | None = None  # the link's key, for tests that look inside what crossed
        self.captured: list[bytes] = []  # every datagram, both ways, as it crossed
        self.capture_limit = 20000
        self._origin_side: _Side | None = None
        self._copy_side: _Side | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._origin_side = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_origin), local_addr=("127.0.0.1", 0))
        _, self._copy_side = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_copy), local_addr=("127.0.0.1", 0))

    @property
    def origin_side(self) -> tuple[str, int]:
        """Where the origin sends (the copy as the origin sees it)."""
        assert self._origin_side is not None and self._origin_side.transport is not None
        return self._origin_side.transport.get_extra_info("sockname")[:2]

    @property
    def copy_side(self) -> tuple[str, int]:
        """Where the copy sends (the origin as the copy sees it)."""
        assert self._copy_side is not None and self._copy_side.transport is not None
        return self._copy_side.transport.get_extra_info("sockname")[:2]

    def _capture(self, data: bytes) -> None:
        if len(self.captured) < self.capture_limit:
            self.captured.append(data)

    def _from_origin(self, data: bytes) -> None:
        self._capture(data)
        if self.drop_to_copy is not None and self.drop_to_copy(data):
            self.dropped += 1
            return
        self.inject_to_copy(data)

    def _from_copy(self, data: bytes) -> None:
        self._capture(data)
        if self.origin_addr is not None and self._origin_side and self._origin_side.transport:
            self._origin_side.transport.sendto(data, self.origin_addr)

    def inject_to_copy(self, data: bytes) -> None:
        """A datagram to the copy from the address it takes for the origin's."""
        if self.copy_addr is not None and self._copy_side and self._copy_side.transport:
            self._copy_side.transport.sendto(data, self.copy_addr)

    def close(self) -> None:
        for side in (self._origin_side, self._copy_side):
            if side is not None and side.transport is not None:
                side.transport.close()


def first_transmissions(rate: float, rnd: Any, link_key: bytes) -> Drop:
    """Drop this share of the RTP datagrams the copy is sent, each packet's first transmission only
    (the sequence number is inside the encryption: the test opens the datagram with the link's key)."""
    seen: set[tuple[int, int]] = set()
    opener = LinkSeal(link_key, origin=False)

    def drop(data: bytes) -> bool:
        opened = opener.open(data)
        if opened is None or opened[0] != KIND_RTP or len(opened[3]) < 12:
            return False
        track_id, body = opened[1], opened[3]
        key = (track_id, (body[2] << 8) | body[3])
        if key in seen:
            return False
        seen.add(key)
        return bool(rnd.random() < rate)

    return drop
