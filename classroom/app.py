"""Wiring: one aiohttp application with the database, the timetable, the timed jobs and the API."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from classroom.config import Config
from scheduler.db import Database
from scheduler.jobs import LessonJobs
from scheduler.timetable import Timetable
from signaling.rest import TIMETABLE, add_routes, errors_middleware
from signaling.wiring import SIGNALING, install, make_signaling

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
JOBS = web.AppKey("jobs", LessonJobs)
STARTED = web.AppKey("started", float)


def build_app(config: Config, db: Database, *, tls: bool = False, media: str = "workers") -> web.Application:
    timetable = Timetable(db, config.scheduler)
    data = config.server.data_path
    signaling = make_signaling(
        config.signaling, config.media, data, config.server.admin_token, db, timetable, tls=tls, media_kind=media,
        alerts=config.alerts,
    )
    app = web.Application(
        middlewares=[*signaling.middlewares_outer(), errors_middleware, *signaling.middlewares_inner()],
        client_max_size=64 * 1024 * 1024,
    )
    app[CONFIG] = config
    app[TIMETABLE] = timetable
    app[STARTED] = time.time()
    app.router.add_get("/healthz", healthz)
    add_routes(app, timetable)
    install(app, signaling)  # before the jobs: a window that opens at start needs the media plane running
    app.cleanup_ctx.append(_jobs_context)
    return app


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
