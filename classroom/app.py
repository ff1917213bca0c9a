"""Wiring: one aiohttp application with the database, the timetable, the timed jobs and the API."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from classroom.config import Config
from monitoring.metrics import Metrics
from scheduler.db import Database
from scheduler.jobs import LessonJobs
from scheduler.timetable import Timetable
from signaling.hub import Hub, lesson_of_room
from signaling.rest import TIMETABLE, add_routes, errors_middleware
from signaling.wiring import SIGNALING, install, make_signaling

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
JOBS = web.AppKey("jobs", LessonJobs)
STARTED = web.AppKey("started", float)
METRICS = web.AppKey("metrics", Metrics)


def build_app(config: Config, db: Database, *, tls: bool = False, media: str = "workers") -> web.Application:
    timetable = Timetable(db, config.scheduler)
    data = config.server.data_path
    signaling = make_signaling(
        config.signaling, config.media, data, config.server.admin_token, db, timetable, tls=tls, media_kind=media,
        alerts=config.alerts, node=config.monitoring.node_name, recording=config.recording,
    )
    app = web.Application(
        middlewares=[*signaling.middlewares_outer(), errors_middleware, *signaling.middlewares_inner()],
        client_max_size=64 * 1024 * 1024,
    )
    app[CONFIG] = config
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
    app.cleanup_ctx.append(_jobs_context)
    return app


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
    jobs.start()
    log.info("timed jobs planned: %d", len(jobs.scheduler.get_jobs()))
    yield
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
        }
    )
