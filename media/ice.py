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
import time
from collections.abc import Callable, Sequence
from types import MethodType

from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol, get_host_addresses
from aiortc import RTCPeerConnection

from media.limits import MAX_DATAGRAM
from media.ratelimit import RateLimitedLog, TokenBucket

logger = logging.getLogger(__name__)

_SOCKET_BUFFER = 1 << 20  # a burst of keyframe packets must not overflow the kernel queue
# Datagrams read from one socket per readiness event. asyncio reads one per event-loop iteration, so
# when an iteration is long (a keyframe fanned out to hundreds of subscribers, a join storm) a
# publisher's socket builds a backlog of media in the kernel, and the ICE consent checks queued
# behind it are answered seconds late: the publisher's ICE gives up (6 misses of 0.5 s each, about
# 30 s) and the whole room goes dark. Reading the backlog at once answers STUN as soon as the loop
# gets to the socket; media goes on to aioice's queue, processed in order.
READ_BATCH = 256
# Datagrams aioice may hold for the DTLS receive loop of one connection. Beyond this the process is
# overloaded; dropping media here (repaired by NACK) keeps memory bounded, as the kernel queue did.
QUEUE_LIMIT = 4096


class StunGuard:
    """Counts and logs (once per cause per minute) datagrams aioice fails on: anyone who reaches a UDP
    port can send them before authenticating. aioice's STUN parser raises `struct.error` and others
    besides the `ValueError` it expects; such a datagram is dropped here instead of escaping the read
    loop (a traceback per datagram, the rest of the socket read lost)."""

    def __init__(self, log: RateLimitedLog | None = None) -> None:
        self.malformed = 0
        self.bad_size = 0
        self.log = log or RateLimitedLog(logger)

    def refused(self, size: int) -> None:
        self.bad_size += 1
        self.log("datagram-size", time.monotonic(), "dropping a datagram of %d bytes (DTLS/SRTP take 1..%d)", size,
                 MAX_DATAGRAM)

    def dropped(self, exc: Exception, addr: object) -> None:
        self.malformed += 1
        cause = f"stun:{type(exc).__name__}"
        self.log(cause, time.monotonic(), "dropping malformed STUN from %s: %s: %s", addr, type(exc).__name__, exc)


class DatagramGate:
    """Admission of one participant's SRTP/SRTCP datagrams where they are read from its sockets,
    before aioice, aiortc's receive loop and SRTP decryption spend anything on them.

    Once the participant's ICE pair is selected (`remote`), a media datagram (first byte 128..191)
    from any other address is dropped (`wrong_address`) unless that address is the remote end of
    another of its pairs that passed its ICE connectivity check (a browser moving to another pair):
    aioice hands over data from whoever sends it, and decryption would refuse it anyway, after an
    HMAC. RTCP datagrams (RFC 5761: second byte
    192..223) beyond `rate` a second (`burst` saved up) are dropped (`rate_limited`): a flood costs a
    token-bucket check per datagram instead of a decryption and a parse.
    """

    __slots__ = ("also", "bucket", "rate_limited", "remote", "validated", "wrong_address")

    def __init__(self, rate: float, burst: float) -> None:
        self.bucket = TokenBucket(rate, burst, time.monotonic())
        self.remote: tuple[str, int] | None = None
        # Whether another address is the remote end of one of the participant's ICE pairs that passed
        # its connectivity check (authenticated with the ICE password): a browser may move to another
        # pair after the first was chosen (a better pair becoming writable, a network change), and its
        # media then comes from there. Checked once per new address; those admitted are kept in `also`.
        self.validated: Callable[[tuple[object, ...]], bool] | None = None
        self.also: set[tuple[object, object]] = set()
        self.rate_limited = 0
        self.wrong_address = 0

    def set_rate(self, rate: float, burst: float) -> None:
        """A new datagram rate and burst (Peer.review_rtcp); what is saved up stays within the burst."""
        bucket = self.bucket
        bucket.refill(time.monotonic())
        bucket.rate, bucket.burst = rate, burst
        bucket.tokens = min(bucket.tokens, burst)

    def admit(self, data: bytes, addr: tuple[object, ...]) -> bool:
        """For a datagram whose first byte says SRTP or SRTCP: whether it goes on."""
        if len(data) > MAX_DATAGRAM:
            return True  # refused for its size by `bound_queue`, and counted there (bad_size_datagrams)
        remote = self.remote
        if remote is not None and (addr[1] != remote[1] or addr[0] != remote[0]):
            key = (addr[0], addr[1])
            if key not in self.also:
                if self.validated is None or not self.validated(addr):
                    self.wrong_address += 1
                    return False
                self.also.add(key)
        if len(data) > 1 and 191 < data[1] < 224 and not self.bucket.take(time.monotonic()):
            self.rate_limited += 1
            return False
        return True


async def _bind(
    connection: Connection,
    address: str,
    port_min: int,
    port_max: int,
    guard: StunGuard | None = None,
    gate: DatagramGate | None = None,
) -> tuple[StunProtocol, str] | None:
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
        read_in_batches(transport, protocol, guard or StunGuard(), gate)
        return protocol, address
    logger.warning("no free UDP port for %s in %d-%d", address, port_min, port_max)
    return None


def read_in_batches(
    transport: asyncio.BaseTransport,
    protocol: asyncio.DatagramProtocol,
    guard: StunGuard | None = None,
    gate: DatagramGate | None = None,
) -> bool:
    """Make the loop drain up to READ_BATCH datagrams per readiness event of this UDP transport; with
    a `gate`, SRTP/SRTCP datagrams it refuses are dropped right there.

    Works with asyncio's selector loop (the default on Linux); elsewhere the transport is left as it
    is and False is returned.
    """
    loop = asyncio.get_running_loop()
    raw = getattr(transport, "_sock", None)
    add_reader = getattr(loop, "_add_reader", None)
    remove_reader = getattr(loop, "_remove_reader", None)
    if raw is None or add_reader is None or remove_reader is None or not hasattr(transport, "_conn_lost"):
        return False
    fd = raw.fileno()
    recvfrom = raw.recvfrom
    max_size = getattr(transport, "max_size", 256 * 1024)
    received = protocol.datagram_received

    def read_ready() -> None:
        for _ in range(READ_BATCH):
            if transport._conn_lost:  # type: ignore[attr-defined]
                return
            try:
                data, addr = recvfrom(max_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            if gate is not None and data and 127 < data[0] < 192 and not gate.admit(data, addr):
                continue
            try:
                received(data, addr)
            except Exception as exc:
                # Malformed STUN (aioice raises struct.error, KeyError, ...): drop this datagram only.
                if guard is not None:
                    guard.dropped(exc, addr)

    remove_reader(fd)
    add_reader(fd, read_ready)
    return True


def bound_queue(connection: Connection, limit: int = QUEUE_LIMIT, guard: StunGuard | None = None) -> None:
    """Drop media arriving for `connection` while aioice already holds `limit` datagrams for it, and
    datagrams no DTLS or SRTP packet can be: empty, or over `MAX_DATAGRAM` bytes. aiortc's receive
    loop reads `data[0]` (IndexError on an empty one) and pylibsrtp refuses to unprotect more than
    1,500 bytes with ValueError; either ends aiortc's DTLS receive loop, and with it the connection,
    and aioice hands over such datagrams from any address, before any authentication."""
    queue = connection._queue
    put = queue.put_nowait

    def data_received(data: bytes, component: int) -> None:
        if not data or len(data) > MAX_DATAGRAM:
            if guard is not None:
                guard.refused(len(data))
            return
        if queue.qsize() >= limit:
            connection.dropped_datagrams = getattr(connection, "dropped_datagrams", 0) + 1  # type: ignore[attr-defined]
            return
        put((data, component))

    connection.data_received = data_received  # type: ignore[method-assign]


async def gather_host_candidates(
    connection: Connection,
    addresses: Sequence[str],
    port_min: int,
    port_max: int,
    guard: StunGuard | None = None,
    gate: DatagramGate | None = None,
) -> None:
    """Fill `connection` with one host candidate per address (per component), ports in range."""
    if connection._local_candidates_start:
        return
    connection._local_candidates_start = True
    bound_queue(connection, guard=guard)
    if not addresses:
        # a host with nothing but loopback (a single-machine trial, a test namespace) still answers
        # with a candidate rather than none, which would leave every client "new" until it gave up
        addresses = get_host_addresses(use_ipv4=True, use_ipv6=False) or ["127.0.0.1"]
    for component in sorted(connection._components):
        for address in addresses:
            bound = await _bind(connection, address, port_min, port_max, guard, gate)
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
    pc: RTCPeerConnection,
    addresses: Sequence[str],
    port_min: int = 1024,
    port_max: int = 65535,
    guard: StunGuard | None = None,
    gate: DatagramGate | None = None,
) -> None:
    """Make every ICE transport of `pc` gather `addresses` in the port range (with `gate`, the
    participant's datagram admission, on every socket).

    Call after the transceivers exist (after setRemoteDescription for an answerer, after
    addTransceiver for an offerer) and before setLocalDescription, which gathers.
    """
    addresses = tuple(addresses)
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection

        async def gather(self: Connection) -> None:
            await gather_host_candidates(self, addresses, port_min, port_max, guard, gate)

        connection.gather_candidates = MethodType(gather, connection)
