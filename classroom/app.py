"""Wiring: one aiohttp application with the database, the timetable, the timed jobs and the API."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from classroom.config import Config
from edge.joblock import JobLock, holder_name
from edge.node_secret import NodeSecretMissing, load_node_secret
from edge.placement import ClassroomLocation
from edge.presence import NodePresence, node_load
from edge.registry import InProcessRegistry, Node, Registry
from media.api import MediaPlane
from monitoring.metrics import Metrics
from scheduler.db import Database
from scheduler.jobs import LessonJobs
from scheduler.timetable import Timetable
from signaling.hub import Hub, lesson_of_room
from signaling.monitoring_api import CLUSTER_VIEW, ClusterView
from signaling.rest import TIMETABLE, add_routes, errors_middleware
from signaling.wiring import SIGNALING, install, make_plane, make_signaling

log = logging.getLogger(__name__)



@dataclass
class Cluster:
    """This node's part in the cluster: the registry, its presence there, and the job lock (None on one machine:
    the timed jobs always run here, as before there were many)."""

    registry: Registry
    backend: str  # in-process or redis
    presence: NodePresence
    lock: JobLock | None

    def describe(self) -> dict[str, object]:
        lock = self.lock.describe() if self.lock is not None else {"held": True}
        return {"registry": self.backend, "node": self.presence.node.id, "job_lock": lock}


CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", Registry)
CLUSTER = web.AppKey("cluster", Cluster)
JOBS = web.AppKey("jobs", LessonJobs)
STARTED = web.AppKey("started", float)
METRICS = web.AppKey("metrics", Metrics)


def build_app(config: Config, db: Database, *, tls: bool = False, media: str = "workers") -> web.Application:
    timetable = Timetable(db, config.scheduler)
    data = config.server.data_path
    registry = make_registry(config)
    signaling = make_signaling(
        config.signaling, config.media, data, config.server.admin_token, db, timetable, tls=tls, media_kind=media,
        alerts=config.alerts, node=config.monitoring.node_name, recording=config.recording,
        plane=cluster_plane(config, db, registry, media),
    )
    app = web.Application(
        middlewares=[*signaling.middlewares_outer(), errors_middleware, *signaling.middlewares_inner()],
        client_max_size=64 * 1024 * 1024,
    )
    app[CONFIG] = config
    app[REGISTRY] = registry
    app[TIMETABLE] = timetable
    app[STARTED] = time.time()
    app.router.add_get("/healthz", healthz)
    metrics = make_metrics(config, db, timetable, signaling.hub)
    # one picture of the node: the alerts read the sampler's CPU and loop lag, the metrics count the alerts
    metrics.alerts_firing = signaling.monitor.firing_counts
    signaling.monitor.health = metrics.process_health
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics.handle)  # outside /api/: its own access rule ([monitoring])
    add_routes(app, timetable)
    install(app, signaling)  # before the jobs: a window that opens at start needs the media plane running
    app.cleanup_ctx.append(_metrics_context)  # after install: the media plane is running by then
    app.cleanup_ctx.append(_cluster_context)
    app.cleanup_ctx.append(_jobs_context)
    return app


def node_id_of(config: Config) -> str:
    return config.cluster.node_id or f"{config.monitoring.node_name}:{config.server.port}"


def make_registry(config: Config) -> Registry:
    """The in-process registry on one machine; with `[cluster] redis_url`, the cluster's Redis."""
    cluster = config.cluster
    if cluster.redis_url:
        from edge.redis_registry import RedisRegistry

        return RedisRegistry(cluster.redis_url, heartbeat_interval=cluster.heartbeat_s, prefix=cluster.key_prefix)
    return InProcessRegistry(heartbeat_interval=cluster.heartbeat_s)


def cluster_plane(config: Config, db: Database, registry: Registry, media: str) -> MediaPlane | None:
    """With Redis and a node secret: this node's plane with copies of its rooms on edges, receiving
    classrooms placed by county and region (`edge.cluster_plane`); else None (this node's plane alone)."""
    if not config.cluster.redis_url:
        return None
    try:
        secret = load_node_secret(config.cluster.node_secret, config.server.data_path)
    except NodeSecretMissing as exc:
        log.info("edges are not used: %s", exc)
        return None
    from edge.classroom_location import classroom_id_of, classroom_location
    from edge.cluster_plane import ClusterMediaPlane
    from edge.control_client import client_context

    def locate(participant_id: str) -> ClassroomLocation | None:
        classroom_id = classroom_id_of(participant_id)
        return classroom_location(db, classroom_id) if classroom_id is not None else None

    return ClusterMediaPlane(make_plane(config.media, media), registry, node_id_of(config), secret,  # type: ignore[arg-type]
                             locate, client_context(config.cluster.ca_file),  # type: ignore[return-value]
                             heartbeat_s=config.cluster.heartbeat_s)


def make_cluster(config: Config, metrics: Metrics, lessons: Callable[[], Iterable[int]] = tuple,
                 registry: Registry | None = None) -> Cluster:
    """This node's presence in `registry` (default: `make_registry(config)`) and, with Redis, the job lock."""
    cluster = config.cluster
    node_id = node_id_of(config)
    address = config.signaling.public_url or f"http://{config.server.host}:{config.server.port}"
    node = Node(node_id, cluster.region, cluster.county, address, cluster.capacity, role=cluster.role)
    registry = registry or make_registry(config)
    lock = JobLock(registry, holder_name(node_id), lease_s=cluster.lease_s) if cluster.redis_url else None
    cores = os.cpu_count() or 1
    presence = NodePresence(registry, node, lambda: node_load(metrics.rooms.values(), metrics.process_health(), cores,
                                                              lessons()))
    return Cluster(registry, "redis" if cluster.redis_url else "in-process", presence, lock)


async def _cluster_context(app: web.Application) -> AsyncIterator[None]:
    cluster = make_cluster(app[CONFIG], app[METRICS], lambda: list(app[SIGNALING].hub.lessons), app[REGISTRY])
    app[CLUSTER] = cluster
    app[CLUSTER_VIEW] = ClusterView(cluster.registry, cluster.presence.node.id, cluster.backend,
                                    cluster.lock.describe if cluster.lock is not None else None)
    await cluster.presence.beat()
    cluster.presence.start()
    yield
    await cluster.presence.stop()
    await cluster.registry.close()


def make_metrics(config: Config, db: Database, timetable: Timetable, hub: Hub) -> Metrics:
    """The node's metrics, fed by the hub's stats loop; join times and lesson kinds looked up here."""

    def kind_of(lesson_id: int) -> str | None:
        lesson = timetable.repo.lesson(lesson_id)
        return lesson.kind.value if lesson is not None else None

    def joined_at(room_id: str, participant_id: str) -> float | None:
        lesson_id = lesson_of_room(room_id)
        live = hub.lessons.get(lesson_id) if lesson_id is not None else None
        session = live.sessions.get(participant_id) if live is not None else None
        return session.opened if session is not None else None

    def room_kind(room_id: str) -> str | None:
        lesson_id = lesson_of_room(room_id)
        live = hub.lessons.get(lesson_id) if lesson_id is not None else None
        return live.facts.lesson.kind.value if live is not None else None

    metrics = Metrics(config.monitoring, data_dir=config.server.data_path, db=db, kind_of=kind_of,
                      joined_at=joined_at, room_kind=room_kind, thresholds=config.alerts)
    hub.stats_listeners.append(metrics.observe)
    return metrics


async def _metrics_context(app: web.Application) -> AsyncIterator[None]:
    await app[METRICS].start(app[SIGNALING].plane)
    yield
    await app[METRICS].stop()


async def _jobs_context(app: web.Application) -> AsyncIterator[None]:
    jobs = LessonJobs(app[TIMETABLE], app[CONFIG].server.data_path / "reports")
    app[JOBS] = jobs
    app[SIGNALING].attach_jobs(jobs)
    lock = app[CLUSTER].lock
    if lock is not None:
        jobs.may_run = lambda: lock.held
        await lock.step()  # take the lock now if it is free: a lone node opens due windows at start
        if not lock.held:
            log.info("job lock: held by another node; timed jobs run there, and here if it stops")

        def catch_up(_lease: object) -> None:
            jobs.plan()  # everything overdue while another node held the lock (or none did)
            jobs.watch()

        lock.on_gained = catch_up
        lock.start()
    jobs.start()
    log.info("timed jobs planned: %d", len(jobs.scheduler.get_jobs()))
    yield
    if lock is not None:
        await lock.stop()  # released at once: another node takes over without waiting for the lease to run out
    jobs.stop()


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    jobs = app.get(JOBS)
    with app[TIMETABLE].db.read() as conn:
        conn.execute("SELECT 1").fetchone()
    return web.json_response(
        {
            "status": "ok",
            "uptime_s": round(time.time() - app[STARTED], 1),
            "jobs": len(jobs.scheduler.get_jobs()) if jobs else 0,
            "schema_version": app[TIMETABLE].db.version,
            "cluster": app[CLUSTER].describe() if CLUSTER in app else None,
        }
    )
