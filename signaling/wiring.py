"""Signaling's part of the application: tokens, accounts, the hub, the media plane, routes, middlewares."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from media.api import MediaPlane
from media.config import MediaConfig
from monitoring.alerts import AlertConfig
from monitoring.monitor import Monitor
from monitoring.recording_watch import RecordingWatch
from scheduler.db import Database
from scheduler.jobs import LessonJobs
from scheduler.recordings import Recordings
from scheduler.rules.recording import RecordingConfig
from scheduler.timetable import Timetable
from signaling.auth import load_or_create_token
from signaling.config import SignalingConfig
from signaling.http import AccessApi, add_routes, auth_middleware, refusal_middleware, security_headers
from signaling.hub import Hub
from signaling.monitoring_api import MonitoringApi
from signaling.monitoring_api import add_routes as monitoring_routes
from signaling.recordings_api import RecordingsApi
from signaling.recordings_api import add_routes as recording_routes
from signaling.store import AccessStore
from signaling.tokens import TokenService, load_or_create_key

log = logging.getLogger(__name__)


@dataclass
class Signaling:
    config: SignalingConfig
    tokens: TokenService
    store: AccessStore
    hub: Hub
    api: AccessApi
    plane: MediaPlane
    monitor: Monitor
    tls: bool
    recordings: Recordings
    watch: RecordingWatch

    def middlewares_outer(self) -> list[Any]:
        """Outside the domain's error handling: headers go on every response, errors included."""
        return [security_headers(self.tls, self.config.hsts)]

    def middlewares_inner(self) -> list[Any]:
        return [auth_middleware(self.api.admin_token, self.tokens, self.store), refusal_middleware]

    def attach_jobs(self, jobs: LessonJobs) -> None:
        jobs.on_open.append(self.hub.on_window_open)
        jobs.before_settle.append(self.hub.attendance.before_settle)  # the final attendance, written first
        jobs.on_settled.append(self.hub.on_settled)
        jobs.every_minute.append(self.watch.check)  # replays about to open, retention, counties' quotas


SIGNALING = web.AppKey("signaling", Signaling)


def make_plane(media: MediaConfig, kind: str) -> MediaPlane:
    """`workers`: rooms in worker processes (the default); `local`: in this process."""
    if kind == "local":
        from media.local import LocalMediaPlane

        return LocalMediaPlane(media)
    from media.workers import WorkerMediaPlane

    return WorkerMediaPlane(media)


def make_signaling(
    config: SignalingConfig,
    media: MediaConfig,
    data_path: Path,
    admin_token_setting: str,
    db: Database,
    timetable: Timetable,
    *,
    tls: bool = False,
    media_kind: str = "workers",
    alerts: AlertConfig | None = None,
    node: str = "",
    recording: RecordingConfig | None = None,
    plane: MediaPlane | None = None,
) -> Signaling:
    """Signaling over `plane` (default: `make_plane(media, media_kind)`)."""
    admin_token = load_or_create_token(data_path / "admin-token", admin_token_setting)
    tokens = TokenService(load_or_create_key(data_path / "signing-key"), db)
    store = AccessStore(db)
    plane = plane or make_plane(media, media_kind)
    monitor = Monitor(alerts or AlertConfig(), db, data_path, node or socket.gethostname())
    recording = recording or RecordingConfig()
    folder = Path(recording.folder).expanduser() if recording.folder else data_path / "recordings"
    recordings = Recordings(db, timetable.repo, recording, folder)
    hub = Hub(plane, timetable, tokens, store, config, media.ice_servers(), monitor=monitor, recordings=recordings)
    api = AccessApi(timetable, tokens, store, hub, config, admin_token)
    watch = RecordingWatch(recordings, timetable, monitor.set_conditions)
    return Signaling(config, tokens, store, hub, api, plane, monitor, tls, recordings, watch)



def install(app: web.Application, signaling: Signaling) -> None:
    app[SIGNALING] = signaling
    add_routes(app, signaling.api, signaling.hub)
    monitoring_routes(app, MonitoringApi(signaling.monitor, signaling.hub, signaling.hub.timetable, signaling.tokens,
                                         signaling.store))
    recording_routes(app, RecordingsApi(signaling.recordings, signaling.hub.timetable, signaling.tokens,
                                        signaling.store))
    app.cleanup_ctx.append(_media_context)


async def _media_context(app: web.Application) -> AsyncIterator[None]:
    s = app[SIGNALING]
    await s.plane.start()
    await s.monitor.start()
    await s.hub.start()
    log.info("media plane %s started", type(s.plane).__name__)
    yield
    await s.hub.stop()
    await s.monitor.stop()
    await s.plane.stop()
