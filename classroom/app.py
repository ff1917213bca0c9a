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
from signaling.auth import load_or_create_token, token_middleware
from signaling.rest import TIMETABLE, add_routes, errors_middleware

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
JOBS = web.AppKey("jobs", LessonJobs)
STARTED = web.AppKey("started", float)


def build_app(config: Config, db: Database) -> web.Application:
    token = load_or_create_token(config.server.data_path / "admin-token", config.server.admin_token)
    app = web.Application(middlewares=[errors_middleware, token_middleware(token)], client_max_size=64 * 1024 * 1024)
    timetable = Timetable(db, config.scheduler)
    app[CONFIG] = config
    app[TIMETABLE] = timetable
    app[STARTED] = time.time()
    app.router.add_get("/healthz", healthz)
    add_routes(app, timetable)
    app.cleanup_ctx.append(_jobs_context)
    return app


async def _jobs_context(app: web.Application) -> AsyncIterator[None]:
    jobs = LessonJobs(app[TIMETABLE], app[CONFIG].server.data_path / "reports")
    app[JOBS] = jobs
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
