"""The technician's routes: the live county view as a stream, the alert log, lesson history, bandwidth, and
the cluster's nodes with their lessons.

Thin handlers over `monitoring.monitor.Monitor` and its store. Who sees what follows signaling's
scopes (`signaling.access.in_scope`): a county technician the lessons touching their county, a region
technician the region's, the administrator everything; a lesson's own lead teacher its history.

`GET /api/v1/monitor/stream` is a server-sent-events stream (docs/monitoring.md): one `snapshot`
with every live lesson and its ten-minute charts, then a `tick` every two seconds with the current
figures (and each chart's newest point), and every alert change as it happens. A stream re-checks its
token every few seconds, so a technician whose account is disabled or logged out stops seeing the
county at once, as the WebSocket sessions do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from edge.registry import NodeState, Registry, RegistryUnavailable
from monitoring.bandwidth import SchoolInfo, bandwidth_report
from monitoring.monitor import Monitor
from scheduler.model import Lesson
from scheduler.timetable import Timetable
from signaling.access import in_scope
from signaling.http import Refusal, _body
from signaling.http import principal_of as _principal
from signaling.hub import Hub, MoveRefused
from signaling.store import AccessStore
from signaling.tokens import Claims, Role, TokenRefused, TokenService, TokenType

KEEPALIVE_S = 15.0
RECHECK_S = 5.0
MAX_RANGE_DAYS = 62


@dataclass(frozen=True)
class ClusterView:
    """What the nodes' page reads: the registry this node is in, and this node's part (set by the app once
    the registry is up, as `CLUSTER_VIEW`)."""

    registry: Registry
    node_id: str
    backend: str  # in-process or redis
    job_lock: Callable[[], dict[str, Any]] | None  # None: one machine, the timed jobs run here


CLUSTER_VIEW = web.AppKey("cluster_view", ClusterView)


class MonitoringApi:
    def __init__(self, monitor: Monitor, hub: Hub, timetable: Timetable, tokens: TokenService,
                 store: AccessStore) -> None:
        self.monitor = monitor
        self.hub = hub
        self.t = timetable
        self.tokens = tokens
        self.store = store
        # the registry's nodes as last read and when (time.time()): shown, marked stale, while it is down
        self._last_nodes: tuple[list[NodeState], float] | None = None

    # ---- who may see what ---------------------------------------------------------------------------
    def _places(self, lesson: Lesson) -> tuple[frozenset[int], frozenset[int]]:
        live = self.hub.lessons.get(lesson.id)
        if live is not None:
            return live.counties, live.regions
        return self.hub.places_of(self.hub.facts(lesson.id) or _facts(lesson))

    def _may_see_lesson(self, p: Claims, lesson: Lesson) -> bool:
        if p.role == Role.TEACHER:
            return p.teacher_id is not None and p.teacher_id == lesson.lead_teacher_id
        return in_scope(p, *self._places(lesson))

    def _who(self, p: Claims) -> str:
        if p.account_id is not None:
            account = self.store.account(p.account_id)
            if account is not None:
                return account.username
        return "administrator" if p.role == Role.ADMIN else p.sub

    def _still_valid(self, request: web.Request, p: Claims) -> bool:
        if p.jti == "admin-token":
            return True
        header = request.headers.get("Authorization", "")
        try:
            claims = self.tokens.verify(header[7:].strip(), (TokenType.SESSION, TokenType.DEVICE))
            self.store.check_current(claims)
        except TokenRefused:
            return False
        return True

    # ---- the live view -----------------------------------------------------------------------------
    async def view(self, request: web.Request) -> web.Response:
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN)
        return web.json_response(self.monitor.view(lambda c, r: in_scope(p, c, r)))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN)
        scope = lambda c, r: in_scope(p, c, r)  # noqa: E731
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        sub = self.monitor.subscribe(scope)
        checked = time.monotonic()
        try:
            await _send(response, self.monitor.view(scope))
            while True:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    message = None
                if time.monotonic() - checked >= RECHECK_S:
                    checked = time.monotonic()
                    if not await asyncio.to_thread(self._still_valid, request, p):
                        await _send(response, {"type": "ended", "reason": "access_ended"})
                        break
                if message is not None:
                    await _send(response, message)
        except (ConnectionError, RuntimeError):
            pass  # the page went away
        finally:
            self.monitor.unsubscribe(sub)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    # ---- alerts ------------------------------------------------------------------------------------
    async def alerts(self, request: web.Request) -> web.Response:
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN)
        q = request.query
        try:
            since = _when(q.get("since"))
            until = _when(q.get("until"))
            lesson_id = int(q["lesson_id"]) if q.get("lesson_id") else None
            limit = min(1000, max(1, int(q.get("limit", "200"))))
        except ValueError as exc:
            raise Refusal(400, "bad_field", str(exc)) from None
        firing = {"1": True, "true": True, "0": False, "false": False}.get(q.get("firing", ""))
        rows = await asyncio.to_thread(self.monitor.store.alerts, since=since, until=until, rule=q.get("rule") or None,
                                       lesson_id=lesson_id, firing=firing, limit=limit)
        visible = [a.to_json() for a in rows if a.lesson_id is None or in_scope(p, a.county_ids, a.region_ids)]
        return web.json_response({"alerts": visible})

    async def acknowledge(self, request: web.Request) -> web.Response:
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN)
        try:
            alert_id = int(request.match_info["id"])
        except ValueError:
            raise Refusal(400, "bad_field", "the alert id is a number") from None
        existing = next((a for a in self.monitor.engine.firing.values() if a.id == alert_id), None)
        if existing is None:
            existing = await asyncio.to_thread(self.monitor.store.alert, alert_id)
        if existing is None or not (existing.lesson_id is None or in_scope(p, existing.county_ids,
                                                                            existing.region_ids)):
            raise Refusal(404, "not_found", f"no alert {alert_id}")
        who = self._who(p)
        alert = await self.monitor.acknowledge(alert_id, who)
        assert alert is not None
        self.store.audit(p.sub, p.role.value, "alert_ack", "ok", lesson_id=alert.lesson_id,
                         reason=f"{alert.rule} {alert.key} acknowledged by {who}")
        return web.json_response({"alert": alert.to_json()})

    # ---- history -----------------------------------------------------------------------------------
    async def history(self, request: web.Request) -> web.Response:
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN, Role.TEACHER)
        try:
            lesson_id = int(request.match_info["id"])
        except ValueError:
            raise Refusal(400, "bad_field", "the lesson id is a number") from None
        lesson = self.t.repo.lesson(lesson_id)
        if lesson is None or not self._may_see_lesson(p, lesson):
            raise Refusal(404, "not_found", f"no lesson {lesson_id}")
        samples = await asyncio.to_thread(self.monitor.store.samples, lesson_id)
        alerts = await asyncio.to_thread(self.monitor.store.alerts, lesson_id=lesson_id, limit=1000)
        names = self.hub.classroom_names(_facts(lesson))
        series: dict[str, dict[str, Any]] = {}
        for r in samples:
            entry = series.setdefault(r.participant_id, {
                "participant_id": r.participant_id, "role": r.role, "classroom_id": r.classroom_id,
                "name": names.get(r.classroom_id, r.participant_id) if r.classroom_id is not None else r.participant_id,
                "t": [], "kbps_in": [], "kbps_out": [], "loss": [], "rtt_ms": [], "fps": [], "score": [], "link": []})
            for name in ("kbps_in", "kbps_out", "loss", "rtt_ms", "fps", "score", "link"):
                entry[name].append(getattr(r, name))
            entry["t"].append(r.at)
        tz = self.t.config.tz
        return web.json_response({
            "lesson": {"id": lesson.id, "kind": lesson.kind.value, "subject": lesson.subject,
                       "status": lesson.status.value, "start": lesson.start.astimezone(tz).isoformat(),
                       "end": lesson.end.astimezone(tz).isoformat(), "starts_at": lesson.start.timestamp(),
                       "ends_at": lesson.end.timestamp(), "lead": names.get(lesson.lead_classroom_id, ""),
                       "receivers": [{"classroom_id": c, "name": names.get(c, str(c))}
                                     for c in lesson.receiving_classroom_ids]},
            "series": sorted(series.values(), key=lambda e: (e["role"] != "lead", e["name"])),
            "alerts": [a.to_json() for a in reversed(alerts)],
        })

    async def lessons(self, request: web.Request) -> web.Response:
        """One day's lessons this viewer looks after, for the history page's list."""
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN)
        tz = self.t.config.tz
        try:
            day = datetime.fromisoformat(request.query["date"]).date() if request.query.get("date") else \
                datetime.now(tz).date()
        except ValueError:
            raise Refusal(400, "bad_field", "date is YYYY-MM-DD") from None
        since = datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)
        found = self.t.repo.lessons(start=since, end=since + timedelta(days=1), limit=5000)
        found = [lesson for lesson in found if in_scope(p, *self._places(lesson))]
        counts: dict[int, int] = {}
        if found:
            for a in await asyncio.to_thread(self.monitor.store.alerts, since=since.timestamp(),
                                             until=(since + timedelta(days=2)).timestamp(), limit=100000):
                if a.lesson_id is not None:
                    counts[a.lesson_id] = counts.get(a.lesson_id, 0) + 1
        out = []
        for lesson in sorted(found, key=lambda x: (x.start, x.id)):
            names = self.hub.classroom_names(_facts(lesson))
            out.append({"id": lesson.id, "kind": lesson.kind.value, "subject": lesson.subject,
                        "status": lesson.status.value, "start": lesson.start.astimezone(tz).isoformat(),
                        "end": lesson.end.astimezone(tz).isoformat(), "lead": names.get(lesson.lead_classroom_id, ""),
                        "receivers": len(lesson.receiving_classroom_ids), "alerts": counts.get(lesson.id, 0)})
        return web.json_response({"date": day.isoformat(), "lessons": out})

    async def nodes(self, request: web.Request) -> web.Response:
        """The cluster's live nodes, their load and the lessons on each (those this viewer looks after)."""
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN)
        view = request.app.get(CLUSTER_VIEW)
        if view is None:
            raise Refusal(503, "registry_unavailable", "the cluster's registry is not started yet")
        problem: dict[str, Any] = {}
        try:
            states = await view.registry.nodes()
            self._last_nodes = (states, time.time())
        except RegistryUnavailable as exc:
            if self._last_nodes is None:
                raise Refusal(503, "registry_unavailable", f"the cluster's registry cannot be reached: {exc}") from None
            # lessons on air go on without Redis: the technician keeps the picture as last seen, marked so
            states, read_at = self._last_nodes
            problem = {"registry_error": str(exc), "nodes_read_at": read_at}
        nodes = await asyncio.to_thread(self._nodes_json, p, states, view.node_id, view.registry.seen_now())
        return web.json_response({"at": time.time(), "registry": view.backend, "this_node": view.node_id,
                                  "job_lock": view.job_lock() if view.job_lock is not None else {"held": True},
                                  "nodes": nodes, "placements": self._placements(p), **problem})

    def _placements(self, p: Claims) -> list[dict[str, Any]]:
        """The last placements of receiving classrooms in live lessons this viewer looks after, newest
        first: where each went and why, with the classroom's name."""
        rooms = {live.room_id: live for live in self.hub.lessons.values() if in_scope(p, live.counties, live.regions)}
        out = []
        for choice in reversed(list(getattr(self.hub.plane, "placements", []))):
            live = rooms.get(choice["room_id"])
            if live is None:
                continue
            session = live.sessions.get(choice["participant_id"])
            out.append({**choice, "lesson_id": live.lesson_id, "name": session.name if session else "",
                        "connected": session is not None})
        return out

    async def move(self, request: web.Request) -> web.Response:
        """POST {participant_id, node}: move a receiving classroom's media to that node of the cluster now
        (it reconnects at once); audited."""
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN)
        try:
            lesson_id = int(request.match_info["id"])
        except ValueError:
            raise Refusal(400, "bad_field", "the lesson id is a number") from None
        body = await _body(request)
        participant_id, node = body.get("participant_id"), body.get("node")
        if not isinstance(participant_id, str) or not isinstance(node, str) or not node:
            raise Refusal(400, "bad_field", "participant_id and node are strings")
        live = self.hub.lessons.get(lesson_id)
        if live is None or not in_scope(p, live.counties, live.regions):
            raise Refusal(404, "not_found", f"lesson {lesson_id} is not live")
        who = self._who(p)
        try:
            await self.hub.move(lesson_id, participant_id, node, who)
        except MoveRefused as exc:
            self.store.audit(p.sub, p.role.value, "classroom_move", "refused", lesson_id=lesson_id,
                             reason=f"{participant_id} to {node}: {exc}")
            raise Refusal(404 if exc.code == "not_found" else 409, exc.code, str(exc)) from None
        self.store.audit(p.sub, p.role.value, "classroom_move", "ok", lesson_id=lesson_id,
                         reason=f"{participant_id} moved to node {node} by {who}")
        return web.json_response({"moved": participant_id, "node": node})

    def _nodes_json(self, p: Claims, states: list[NodeState], this_node: str, now: float) -> list[dict[str, Any]]:
        tz = self.t.config.tz
        out = []
        for s in sorted(states, key=lambda x: (x.node.id != this_node, x.node.id)):
            lessons = []
            for lesson_id in s.load.lessons:
                lesson = self.t.repo.lesson(lesson_id)
                if lesson is None or not in_scope(p, *self._places(lesson)):
                    continue
                live = self.hub.lessons.get(lesson_id) if s.node.id == this_node else None
                lessons.append({"id": lesson.id, "subject": lesson.subject, "kind": lesson.kind.value,
                                "start": lesson.start.astimezone(tz).isoformat(), "status": lesson.status.value,
                                "lead_on_air": None if live is None else live.picture.lead_present})
            data = s.to_json()
            data["load"] = {k: v for k, v in data["load"].items() if k != "lessons"}
            out.append({**data, "this": s.node.id == this_node, "lessons": lessons,
                        "seen_ago_s": round(max(0.0, now - s.seen), 1),
                        "lessons_hidden": len(s.load.lessons) - len(lessons)})
        return out

    async def bandwidth(self, request: web.Request) -> web.Response:
        p = _principal(request, Role.ADMIN, Role.TECHNICIAN)
        tz = self.t.config.tz
        q = request.query
        try:
            first = datetime.fromisoformat(q["from"]).date() if q.get("from") else datetime.now(tz).date()
            last = datetime.fromisoformat(q["to"]).date() if q.get("to") else first
        except ValueError:
            raise Refusal(400, "bad_field", "from and to are dates, YYYY-MM-DD") from None
        if last < first or (last - first).days > MAX_RANGE_DAYS:
            raise Refusal(400, "bad_field", f"to is on or after from, at most {MAX_RANGE_DAYS} days later")
        since = datetime.combine(first, datetime.min.time(), tz).astimezone(UTC)
        until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
        rows = await asyncio.to_thread(self.monitor.store.samples_between, since.timestamp(), until.timestamp())
        repo = self.t.repo
        county_names = {c.id: c.name for c in repo.counties()}
        schools = {s.id: SchoolInfo(s.id, s.name, s.county_id, county_names.get(s.county_id, ""), s.bandwidth_mbps)
                   for s in repo.schools()}
        school_of = {c.id: c.school_id for c in repo.classrooms()}
        lessons = {lesson.id: lesson for lesson in repo.lessons(start=since, end=until, limit=100000)}
        visible = {lid for lid, lesson in lessons.items() if in_scope(p, *self._places(lesson))}
        slot_of = {lid: f"{lesson.start.astimezone(tz):%H:%M}–{lesson.end.astimezone(tz):%H:%M}"
                   for lid, lesson in lessons.items() if lid in visible}
        report = bandwidth_report((r for r in rows if r.lesson_id in visible), school_of, schools, slot_of)
        return web.json_response({"from": first.isoformat(), "to": last.isoformat(), **report})


def _facts(lesson: Lesson) -> Any:
    from signaling.access import LessonFacts

    return LessonFacts(lesson, 0, 0)


def _when(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text).timestamp()


async def _send(response: web.StreamResponse, message: dict[str, Any]) -> None:
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    await response.write(f"event: {message.get('type', 'message')}\ndata: {data}\n\n".encode())


def add_routes(app: web.Application, api: MonitoringApi) -> None:
    r = app.router
    r.add_get("/api/v1/monitor", api.view, name="sig.monitor")
    r.add_get("/api/v1/monitor/stream", api.stream, name="sig.monitor_stream")
    r.add_get("/api/v1/monitor/lessons", api.lessons, name="sig.monitor_lessons")
    r.add_get("/api/v1/alerts", api.alerts, name="sig.alerts")
    r.add_post("/api/v1/alerts/{id}/ack", api.acknowledge, name="sig.alert_ack")
    r.add_get("/api/v1/lessons/{id}/history", api.history, name="sig.lesson_history")
    r.add_get("/api/v1/bandwidth", api.bandwidth, name="sig.bandwidth")
    r.add_get("/api/v1/monitor/nodes", api.nodes, name="sig.monitor_nodes")
    r.add_post("/api/v1/monitor/lessons/{id}/move", api.move, name="sig.monitor_move")
