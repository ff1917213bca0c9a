"""Host candidate gathering under our control: announced addresses and a UDP port range.

aioice gathers host candidates itself, from every interface except loopback, on ephemeral ports. An
SFU needs two things it cannot express: announce a chosen address (the public address of a server
behind 1:1 NAT, or 127.0.0.1 in tests) and bind only ports a firewall lets through. We replace the
gathering step of each ICE connection of a peer connection, before aiortc gathers, with one that
binds in the range and announces what the configuration says. Test and benchmark clients use the
same function so both ends of a loopback call have a loopback candidate.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
from collections.abc import Sequence
from types import MethodType

from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol, get_host_addresses
from aiortc import RTCPeerConnection

logger = logging.getLogger(__name__)

_SOCKET_BUFFER = 1 << 20  # a burst of keyframe packets must not overflow the kernel queue


async def _bind(connection: Connection, address: str, port_min: int, port_max: int) -> tuple[StunProtocol, str] | None:
    """Bind one UDP socket on a free port in range; returns (protocol, address to announce)."""
    loop = asyncio.get_running_loop()
    span = port_max - port_min + 1
    first = random.randrange(span)
    bind_address = address
    for i in range(span):
        port = port_min + (first + i) % span
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), local_addr=(bind_address, port)
            )
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL and bind_address == address:
                # Not an address of this host: we are behind 1:1 NAT; bind all and announce it.
                bind_address = "::" if ":" in address else "0.0.0.0"
                try:
                    transport, protocol = await loop.create_datagram_endpoint(
                        lambda: StunProtocol(connection), local_addr=(bind_address, port)
                    )
                except OSError:
                    continue
            else:
                continue
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, _SOCKET_BUFFER)
        return protocol, address
    logger.warning("no free UDP port for %s in %d-%d", address, port_min, port_max)
    return None


async def gather_host_candidates(
    connection: Connection, addresses: Sequence[str], port_min: int, port_max: int
) -> None:
    """Fill `connection` with one host candidate per address (per component), ports in range."""
    if connection._local_candidates_start:
        return
    connection._local_candidates_start = True
    if not addresses:
        addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
    for component in sorted(connection._components):
        for address in addresses:
            bound = await _bind(connection, address, port_min, port_max)
            if bound is None:
                continue
            protocol, announced = bound
            port = protocol.transport.get_extra_info("sockname")[1]
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", announced),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=announced,
                port=port,
                type="host",
            )
            connection._protocols.append(protocol)
            connection._local_candidates.append(protocol.local_candidate)
    connection._local_candidates_end = True


def control_host_candidates(
    pc: RTCPeerConnection, addresses: Sequence[str], port_min: int = 1024, port_max: int = 65535
) -> None:
    """Make every ICE transport of `pc` gather `addresses` in the port range.

    Call after the transceivers exist (after setRemoteDescription for an answerer, after
    addTransceiver for an offerer) and before setLocalDescription, which gathers.
    """
    addresses = tuple(addresses)
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection

        async def gather(self: Connection) -> None:
            await gather_host_candidates(self, addresses, port_min, port_max)

        connection.gather_candidates = MethodType(gather, connection)
