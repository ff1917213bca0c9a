"""`classroom edge`: a media node as its own process.

It runs a media plane (`WorkerMediaPlane`, one worker per core, or `LocalMediaPlane` with `--media
local`), serves the control API the control node uses to hold copies of rooms on it
(`edge.control_api`, authenticated with the cluster's node secret), and registers in the cluster's
registry (Redis) as role `edge` with its region, county, control address and capacity, heartbeating
its load (`edge.presence`). It has no database and no web pages: lessons, tokens and schedules stay
on the control node (`--control URL`, checked at start and shown in its status)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from classroom.config import Config
from edge.control_api import EdgeIdentity, EdgePlane, build_control_app
from edge.load import LoadSampler
from edge.node_secret import load_node_secret
from edge.presence import NodePresence
from edge.redis_registry import RedisRegistry
from edge.registry import Node
from media.workers import LoopLag
from signaling.tls import server_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeOptions:
    control_url: str
    region: str
    county: str
    media: str = "workers"  # or local
    node_id: str = ""
    upstream: str = ""  # the edge this one takes its lessons from (empty: the control node)
    tls_cert: str = ""  # HTTPS for the control API (the node secret and the links' keys cross it)
    tls_key: str = ""


def edge_address(config: Config, tls: bool = False) -> str:
    """Where the control node reaches this edge's control API: `[signaling] public_url`, else the first
    announced media address (or the listening host) and the port, over HTTPS when it has a certificate."""
    if config.signaling.public_url:
        return config.signaling.public_url.rstrip("/")
    host = (config.media.announced_addresses or (config.server.host,))[0]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{config.server.port}"


def make_plane(config: Config, media: str) -> EdgePlane:
    if media == "local":
        from media.local import LocalMediaPlane

        return LocalMediaPlane(config.media)  # type: ignore[return-value]
    from media.workers import WorkerMediaPlane

    return WorkerMediaPlane(config.media)  # type: ignore[return-value]


async def control_reachable(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
                http.get(url.rstrip("/") + "/healthz") as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _sample_load(plane: EdgePlane, sampler: LoadSampler, interval: float) -> None:
    while True:
        try:
            sampler.sample(await plane.stats())
        except Exception:
            log.exception("edge: reading the media plane's load failed")
        await asyncio.sleep(interval)


async def run_edge(config: Config, options: EdgeOptions, stop: asyncio.Event | None = None) -> None:
    """Run the edge until `stop` is set (or SIGTERM/SIGINT)."""
    cluster = config.cluster
    secret = load_node_secret(cluster.node_secret, config.server.data_path)  # refuses to start without one
    node_id = options.node_id or cluster.node_id or f"edge-{config.monitoring.node_name}:{config.server.port}"
    tls = server_context(Path(options.tls_cert), Path(options.tls_key)) if options.tls_cert else None
    address = edge_address(config, tls is not None)
    if options.upstream == node_id:
        raise ValueError("an edge cannot take its lessons from itself (--upstream)")
    node = Node(node_id, options.region, options.county, address, cluster.capacity, role="edge",
                upstream=options.upstream)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    if await control_reachable(options.control_url):
        log.info("edge: control node %s answers", options.control_url)
    else:
        log.warning("edge: control node %s does not answer (yet); this edge serves whoever has the node secret",
                    options.control_url)
    plane = make_plane(config, options.media)
    await plane.start()
    identity = EdgeIdentity(node_id, options.region, options.county, cluster.capacity, options.control_url)
    runner = web.AppRunner(build_control_app(plane, identity, secret), access_log=None)
    await runner.setup()
    registry = RedisRegistry(cluster.redis_url, heartbeat_interval=cluster.heartbeat_s, prefix=cluster.key_prefix)
    lag = LoopLag()
    lag.start()
    sampler = LoadSampler(lag=lag)
    presence = NodePresence(registry, node, lambda: sampler.load)
    sampling = loop.create_task(_sample_load(plane, sampler, cluster.heartbeat_s), name="edge-load")
    try:
        await web.TCPSite(runner, config.server.host, config.server.port, ssl_context=tls).start()
        log.info("edge %s: control API on %s (listening on %s:%d), media plane %s, region %s, county %s, "
                 "lessons from %s", node_id, address, config.server.host, config.server.port, options.media,
                 options.region or "-", options.county or "-", options.upstream or "the control node")
        sampler.sample(await plane.stats())
        await presence.beat()
        presence.start()
        await stop.wait()
    finally:
        log.info("edge %s: stopping", node_id)
        lag.stop()
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        await presence.stop()
        await registry.close()
        await runner.cleanup()
        await plane.stop()
