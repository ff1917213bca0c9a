"""Loopback-only WebRTC for the benchmark's own aiortc peers, and the small RPC they use to join.

aioice leaves 127.0.0.1 out when it gathers host candidates, so two aiortc peers on one machine never
connect on loopback. The benchmark's client processes (publisher, subscribers, the MediaRelay baseline)
call `use_loopback_ice()` once at start: their only host candidate is then 127.0.0.1, so nothing they
do can reach another address. Peer connections get an empty ICE server list (aiortc's default would
ask a public STUN server).

Joining goes over newline-delimited JSON on a loopback TCP port that the server process opens: one
request `{"id", "op", "args"}` and one reply `{"id", "ok", "result" | "error"}` per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration

LOOPBACK = "127.0.0.1"
MAX_LINE = 1 << 20
RPC_TIMEOUT = 60.0


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK] if use_ipv4 else []


def use_loopback_ice() -> None:
    """Make aioice in this process gather 127.0.0.1 as its only host candidate (bench processes only)."""
    aioice.ice.get_host_addresses = _loopback_addresses  # type: ignore[assignment]


def rtc_configuration() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])


def candidate_addresses(sdp: str) -> list[str]:
    """The connection addresses of all `a=candidate` lines of an SDP."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 5:
                out.append(fields[4])
    return out


def check_loopback_sdp(sdp: str) -> None:
    """Refuse an SDP that would make us send anywhere but loopback."""
    bad = [a for a in candidate_addresses(sdp) if not a.startswith("127.")]
    if bad:
        raise RuntimeError(f"the benchmark talks to loopback only; the SDP offers {bad}")


Handler = Callable[[str, Mapping[str, Any]], Awaitable[Any]]


async def serve_rpc(handler: Handler) -> asyncio.Server:
    """Serve requests on 127.0.0.1 (a free port; read it from `server.sockets[0]`)."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                req = json.loads(line)
                try:
                    result = await handler(str(req["op"]), req.get("args") or {})
                    reply = {"id": req.get("id"), "ok": True, "result": result}
                except Exception as exc:
                    reply = {"id": req.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, json.JSONDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(on_client, LOOPBACK, 0, limit=MAX_LINE)


class RpcClient:
    """One connection to the server's RPC port; requests are sent one at a time."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(self, op: str, timeout: float = RPC_TIMEOUT, **args: Any) -> Any:
        async with self._lock:
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(LOOPBACK, self._port, limit=MAX_LINE)
            assert self._reader is not None
            self._next_id += 1
            self._writer.write(json.dumps({"id": self._next_id, "op": op, "args": args}).encode() + b"\n")
            await self._writer.drain()
            line = await asyncio.wait_for(self._reader.readline(), timeout)
        if not line:
            raise ConnectionError("the bench server closed the RPC connection")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"{op} failed: {reply.get('error')}")
        return reply.get("result")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None
