"""Live lessons on the signaling side: WebSocket sessions, rooms in the media plane, evidence.

A room opens in the media plane when a lesson's window opens (the scheduler's timed jobs tell us) or
when the first entitled participant arrives inside an open window (after a restart); it closes when
the lesson is settled. Each WebSocket session is admitted once, by a join token, and is then a
participant of the room. Media events (the lead's tracks going up and down, classrooms connecting)
become protocol events; periodic room stats become the lead's quality display. Attendance is not kept
here: presence changes, the lead's on-air changes and each stats snapshot are handed on to
`monitoring.attendance_recorder`, whose timeline is the lesson's evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from media.api import EventKind, MediaError, MediaEvent, MediaPlane, ParticipantRole, SlotKind, TrackKind
from monitoring.alerts import Condition, recording_stopped_condition
from monitoring.attendance import Mark
from monitoring.attendance_recorder import AttendanceRecorder
from monitoring.monitor import Monitor
from monitoring.observation import LessonSample, ParticipantSample
from monitoring.quality import ReportRefused, clean_client_report
from scheduler.model import Lesson, LessonStatus
from scheduler.recordings import Recordings
from scheduler.timetable import Timetable
from signaling import protocol
from signaling.access import LessonFacts, check_join, socket_refusal
from signaling.config import SignalingConfig
from signaling.layout import LessonPicture, layout_for
from signaling.liveness import HEARTBEAT_S, STALE_AFTER_S, LinkState, link_state, shown_quality
from signaling.ratelimit import RateLimiter
from signaling.recording_keeper import RECORDING_EVENTS, RecordingKeeper
from signaling.replayer import ReplayKeeper
from signaling.store import AccessStore
from signaling.tokens import Claims, Role, TokenRefused, TokenService, TokenType

log = logging.getLogger(__name__)

CLOSE_REFUSED = 4403  # the join was refused: the page shows the reason and does not retry blindly
CLOSE_KICKED = 4409  # replaced by another device, token revoked, window closed
CLOSE_RESTART = 4503  # the media room was lost: reconnect
MEDIA_TIMEOUT_S = 15.0
LIVENESS_INTERVAL_S = 0.25
ROSTER_EVERY_S = 0.2  # a lead is sent the roster at most this often (the last change always goes out)
TALKBACK_RESUME_S = 30.0  # a called classroom whose link drops has the floor again if back within this
MAX_EARLY_CANDIDATES = 32  # trickled before the media plane answered the offer
MAX_ERRORS = 50  # a session sending this many bad messages is closed
JOIN_DEADLINE_S = 20.0  # a socket that has not joined by then is closed: idle sockets must not pile up


def room_id_of(lesson_id: int) -> str:
    return f"lesson-{lesson_id}"


def lesson_of_room(room_id: str) -> int | None:
    prefix, _, tail = room_id.partition("-")
    return int(tail) if prefix == "lesson" and tail.isdigit() else None


@dataclass(eq=False)
class Session:
    ws: web.WebSocketResponse
    address: str
    opened: float = field(default_factory=time.monotonic)
    claims: Claims | None = None
    lesson_id: int | None = None
    participant_id: str | None = None
    name: str = ""
    in_media: bool = False
    # candidates trickled while the offer is still with the media plane, applied once it answered
    early_candidates: list[dict[str, Any]] = field(default_factory=list)
    hand_up: bool = False
    talkback_requested: bool = False
    client_stats: dict[str, float] = field(default_factory=dict)  # the last accepted `stats` report, cleaned
    stats_at: float = 0.0  # monotonic time of the last accepted `stats` report
    stats_refused: int = 0  # reports refused (too frequent); junk values are dropped from the report instead
    last_seen: float = field(default_factory=time.monotonic)  # the last frame of any kind from the client
    link: LinkState = LinkState.OK
    layout: dict[str, Any] | None = None  # the layout this client was last sent
    errors: int = 0
    left: bool = False  # said `leave`: gone on purpose, not dropped
    closed: bool = False

    @property
    def role(self) -> Role | None:
        return self.claims.role if self.claims else None

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed or self.ws.closed:
            return
        try:
            await self.ws.send_str(json.dumps(message, ensure_ascii=False))
        except (ConnectionError, RuntimeError):
            self.closed = True


@dataclass
class LiveLesson:
    lesson_id: int
    facts: LessonFacts
    names: dict[int, str]  # classroom id -> "school classroom"
    sessions: dict[str, Session] = field(default_factory=dict)  # participant id -> session
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    quality_at: float = 0.0  # monotonic time of the media snapshot `quality` came from
    picture: LessonPicture = field(default_factory=LessonPicture)
    layout_seq: int = 0
    # the called classroom dropped (not left): (participant id, to_all, monotonic deadline) to call on it
    # again if it is back in time, as a teacher would expect after a blip of its network
    talkback_resume: tuple[str, bool, float] | None = None
    # receiving classrooms that were here and are not (participant id -> how they went: lost or left)
    departed: dict[str, LinkState] = field(default_factory=dict)
    # participant id -> (seconds since the SFU last heard it, monotonic time of that snapshot)
    heard: dict[str, tuple[float | None, float]] = field(default_factory=dict)
    counties: frozenset[int] = frozenset()  # of the lead and receiving classrooms: whose technicians watch it
    recording: bool = False  # the room records the lead (scheduler/rules/recording.py); shown on the lead's page
    regions: frozenset[int] = frozenset()
    roster_sent_at: float = -1e9  # monotonic time the leads were last sent the roster
    roster_due: bool = False  # a roster is to go out at the end of the interval (it carries every change since)

    @property
    def room_id(self) -> str:
        return room_id_of(self.lesson_id)

    @property
    def lead_on_air(self) -> bool:
        return bool(self.picture.lead_live)

    # who has the floor lives in the picture the layouts are drawn from, and only there
    @property
    def talkback(self) -> str | None:
        return self.picture.talkback

    @property
    def talkback_to_all(self) -> bool:
        return self.picture.talkback_to_all

    def set_talkback(self, participant_id: str | None, name: str = "", to_all: bool = False) -> None:
        self.picture.talkback = participant_id
        self.picture.talkback_name = name if participant_id else ""
        self.picture.talkback_to_all = to_all and participant_id is not None

    def layout_of(self, session: Session) -> dict[str, Any]:
        """What this participant's screen shows now (without the lesson's `seq`)."""
        return layout_for(self.picture, session.role.value if session.role else "", session.participant_id)

    def leads(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.role == Role.LEAD]


class MoveRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Hub:
    def __init__(
        self,
        plane: MediaPlane,
        timetable: Timetable,
        tokens: TokenService,
        store: AccessStore,
        config: SignalingConfig,
        ice_servers: list[dict[str, Any]],
        clock: Callable[[], float] = time.time,
        monitor: Monitor | None = None,
        recordings: Recordings | None = None,
    ) -> None:
        self.plane = plane
        # the lesson recordings' catalogue (None: nothing is recorded, as in tests of other things)
        self.recordings = RecordingKeeper(recordings) if recordings is not None else None
        # replayed lessons (录播): the recording published into the room as its lead, at the lesson's start
        self.replays = ReplayKeeper(plane, recordings, clock) if recordings is not None else None
        # live lessons whose recording stopped (a full disk): the technicians' alert, until the lesson closes
        self._recording_alerts: dict[int, Condition] = {}
        self.monitor = monitor
        self.timetable = timetable
        self.tokens = tokens
        self.store = store
        self.config = config
        self.ice_servers = ice_servers
        self.clock = clock
        self.join_limiter = RateLimiter(config.join_per_minute, config.join_burst, config.rate_limit_addresses)
        self.lessons: dict[int, LiveLesson] = {}
        self.sessions: set[Session] = set()
        self.standby: dict[int, set[Session]] = {}  # classroom id -> device sessions waiting for a window
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()  # opening/closing rooms one at a time keeps rooms and lessons in step
        self._loop: asyncio.AbstractEventLoop | None = None
        # each room's stats snapshot, as the stats loop takes it, goes to these (monitoring's metrics)
        self.stats_listeners: list[Callable[[str, Lesson, dict[str, Any]], None]] = []
        self.attendance = AttendanceRecorder(timetable, config.stats_interval_s, config.evidence_interval_s,
                                             wall=clock)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._spawn(self._consume_events())
        self._spawn(self._stats_loop())
        self._spawn(self._liveness_loop())
        self._spawn(self.attendance.run())
        if self.recordings is not None:
            self._spawn(self.recordings.recover())

    async def stop(self) -> None:
        for session in list(self.sessions):
            await self._close(session, 1001, "server shutting down")
        await self.attendance.stop()
        if self.replays is not None:
            await self.replays.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- scheduler listeners ----------------------------------------------------------------------
    # The timed jobs call these from APScheduler's worker threads (plain functions run in its executor),
    # or from the event loop when a lesson added over the API opens at once: hand over to the loop.
    def on_window_open(self, lesson_id: int) -> None:
        self._call_in_loop(lambda: self._spawn(self._window_opened(lesson_id)))

    def on_settled(self, lesson_id: int, status: LessonStatus) -> None:
        self._call_in_loop(lambda: self._spawn(self.close_lesson(lesson_id, f"lesson {status.value}")))

    def _call_in_loop(self, fn: Callable[[], object]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    async def _window_opened(self, lesson_id: int) -> None:
        facts = self.facts(lesson_id)
        if facts is None:
            return
        try:
            await self.ensure_room(facts)
        except MediaError:
            log.exception("lesson %d: the media room did not open", lesson_id)
            return
        for classroom_id in facts.lesson.receiving_classroom_ids:
            for session in list(self.standby.get(classroom_id, ())):
                await session.send(protocol.event("window_opened", lesson_id=lesson_id))

    def facts(self, lesson_id: int) -> LessonFacts | None:
        lesson = self.timetable.repo.lesson(lesson_id)
        if lesson is None:
            return None
        opens, closes = self.timetable.window(lesson)
        members = self.timetable.repo.community_members(lesson.community_id)
        return LessonFacts(lesson, opens.astimezone(UTC).timestamp(), closes.astimezone(UTC).timestamp(), members)

    async def ensure_room(self, facts: LessonFacts) -> LiveLesson:
        async with self._lock:
            live = self.lessons.get(facts.lesson.id)
            if live is None:
                request = await self.recordings.request_for(facts.lesson) if self.recordings else None
                # a replay's lead is a file: it cannot make a keyframe when a classroom joins mid-way
                await self.plane.open_room(room_id_of(facts.lesson.id), request,
                                           fast_start=facts.lesson.replay_of is not None)
                live = LiveLesson(facts.lesson.id, facts, self.classroom_names(facts))
                live.recording = request is not None
                live.counties, live.regions = self.places_of(facts)
                self.lessons[facts.lesson.id] = live
                self.attendance.open(facts.lesson, facts.community_teacher_ids)
                log.info("lesson %d: room open", facts.lesson.id)
                if self.replays is not None and facts.lesson.replay_of is not None:
                    opened = live
                    self.replays.begin(facts.lesson, live.room_id, lambda on: self._replay_on_air(opened, on))
            else:
                live.facts = facts
            return live

    def _push_recording_alerts(self) -> None:
        """Live lessons whose recording stopped, as conditions for the technicians' alerts (until they close)."""
        if self.monitor is not None:
            self.monitor.set_conditions("recording_stopped", list(self._recording_alerts.values()))

    def _replay_on_air(self, live: LiveLesson, on: bool) -> None:
        """The replay publishes (its lead is present), or its file has ended (the lead has gone)."""
        live.picture.lead_present = on
        if not on:
            live.picture.lead_was_on_air = False
        if self.lessons.get(live.lesson_id) is live:
            self._spawn(self._send_layouts(live))

    def places_of(self, facts: LessonFacts) -> tuple[frozenset[int], frozenset[int]]:
        """The counties and regions of a lesson's lead and receiving classrooms."""
        repo = self.timetable.repo
        wanted = {facts.lesson.lead_classroom_id, *facts.lesson.receiving_classroom_ids}
        school_of = {c.id: c.school_id for c in repo.classrooms() if c.id in wanted}
        county_of = {s.id: s.county_id for s in repo.schools() if s.id in set(school_of.values())}
        counties = frozenset(county_of.values())
        city_of = {c.id: c.city_id for c in repo.counties() if c.id in counties}
        region_of = {c.id: c.region_id for c in repo.cities() if c.id in set(city_of.values())}
        return counties, frozenset(region_of.values())

    def classroom_names(self, facts: LessonFacts) -> dict[int, str]:
        rooms = {c.id: c for c in self.timetable.repo.classrooms()}
        schools = {s.id: s.name for s in self.timetable.repo.schools()}
        wanted = [facts.lesson.lead_classroom_id, *facts.lesson.receiving_classroom_ids]
        return {c: f"{schools.get(rooms[c].school_id, '')} {rooms[c].name}".strip() for c in wanted if c in rooms}

    async def close_lesson(self, lesson_id: int, reason: str) -> None:
        async with self._lock:
            live = self.lessons.pop(lesson_id, None)
        if live is None:
            return
        if self.replays is not None:
            await self.replays.end(lesson_id)
        if self._recording_alerts.pop(lesson_id, None) is not None:
            self._push_recording_alerts()
        await self.attendance.close(lesson_id)
        for session in list(live.sessions.values()):
            await session.send(protocol.event("window_closed", lesson_id=lesson_id, reason=reason))
            await self._close(session, CLOSE_KICKED, "window closed")
        with contextlib.suppress(MediaError):
            await self.plane.close_room(live.room_id)
        if self.monitor is not None:
            self.monitor.lesson_closed(lesson_id)
        log.info("lesson %d: room closed (%s)", lesson_id, reason)

    def kick_token(self, jti: str, reason: str) -> int:
        """Close every session admitted with the token `jti` (revocation); returns how many."""
        hits = [s for s in self.sessions if s.claims is not None and s.claims.jti == jti]
        for s in hits:
            self._spawn(self._kick(s, reason))
        return len(hits)

    def kick_classroom(self, classroom_id: int, reason: str, keep_device: str | None = None) -> int:
        hits = 0
        for s in list(self.sessions):
            c = s.claims
            if c is not None and c.classroom_id == classroom_id and c.role == Role.RECEIVER:
                if keep_device is not None and c.device_id == keep_device:
                    continue
                hits += 1
                self._spawn(self._kick(s, reason))
        return hits

    def kick_account(self, account_id: int, reason: str) -> int:
        """Close every session admitted with a token of the account (disabled, password reset); how many."""
        hits = [s for s in self.sessions if s.claims is not None and s.claims.account_id == account_id]
        for s in hits:
            self._spawn(self._kick(s, reason))
        return len(hits)

    async def move(self, lesson_id: int, participant_id: str, node_id: str, by: str) -> None:
        """A technician moves a receiving classroom's media to another node of the cluster: the plane
        places its next joins there, and the classroom is told to reconnect at once (`move`, then its
        WebSocket closes as for `restart`; it keeps its join token). MoveRefused says why not."""
        live = self.lessons.get(lesson_id)
        session = live.sessions.get(participant_id) if live else None
        if live is None or session is None or session.role != Role.RECEIVER:
            raise MoveRefused("not_found", f"{participant_id} is not a receiving classroom in lesson {lesson_id} now")
        move = getattr(self.plane, "move", None)
        if not callable(move):
            raise MoveRefused("no_cluster", "this node has no other nodes to move a classroom to")
        try:
            await move(live.room_id, participant_id, node_id, by)
        except MediaError as exc:
            raise MoveRefused("node_unavailable", str(exc)) from None
        await session.send(protocol.event("move", node=node_id))
        await self._close(session, CLOSE_RESTART, "moved")

    async def _kick(self, session: Session, reason: str) -> None:
        await session.send(protocol.event("kicked", reason=reason))
        await self._close(session, CLOSE_KICKED, reason)

    async def _close(self, session: Session, code: int, message: str) -> None:
        if not session.ws.closed:
            with contextlib.suppress(Exception):
                await session.ws.close(code=code, message=message.encode()[:120])
        session.closed = True

    # ---- the WebSocket endpoint --------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if len(self.sessions) >= self.config.ws_max_sessions:
            return web.json_response({"error": "too many connections; retry shortly"}, status=503)
        crowded = socket_refusal(self.config, request.remote or "", self.sessions)
        if crowded is not None:
            return web.json_response({"error": crowded, "code": "rate_limited"}, status=429,
                                     headers={"Retry-After": "20"})
        ws = web.WebSocketResponse(
            max_msg_size=self.config.ws_max_message_bytes, heartbeat=20.0, receive_timeout=self.config.ws_idle_timeout_s
        )
        await ws.prepare(request)
        session = Session(ws, request.remote or "")
        self.sessions.add(session)
        deadline = asyncio.get_running_loop().call_later(JOIN_DEADLINE_S, self._join_deadline, session)
        try:
            async for msg in ws:
                session.last_seen = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(session, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await session.send(protocol.error("binary_frame", "frames are JSON text, not binary"))
                    session.errors += 1
                elif msg.type == WSMsgType.ERROR:
                    break
                if session.errors >= MAX_ERRORS:
                    await self._close(session, WSCloseCode.POLICY_VIOLATION, "too many bad messages")
                if session.closed:
                    break
        except (TimeoutError, ConnectionError):
            pass
        finally:
            deadline.cancel()
            await self._gone(session)
        return ws

    def _join_deadline(self, session: Session) -> None:
        if session.claims is None and not session.closed:
            self._spawn(self._close(session, WSCloseCode.POLICY_VIOLATION, "join first"))

    async def _on_frame(self, session: Session, raw: str) -> None:
        try:
            msg = protocol.parse(raw)
        except protocol.ProtocolError as exc:
            session.errors += 1
            await session.send(protocol.error(exc.code, exc.message))
            return
        handler = getattr(self, f"_m_{msg.type}")
        try:
            await handler(session, msg)
        except protocol.ProtocolError as exc:
            session.errors += 1
            await session.send(protocol.error(exc.code, exc.message, msg))
        except MediaError as exc:
            await session.send(protocol.error("media_refused", str(exc)[:300], msg))
        except Exception:
            log.exception("handling %s failed", msg.type)
            await session.send(protocol.error("internal", "the server failed to handle this message", msg))

    def _need(self, session: Session, *roles: Role) -> LiveLesson:
        if session.claims is None or session.lesson_id is None:
            raise protocol.ProtocolError("not_joined", "send join first")
        live = self.lessons.get(session.lesson_id)
        if live is None:
            raise protocol.ProtocolError("window_closed", "the lesson is not live")
        if roles and session.role not in roles:
            raise protocol.ProtocolError("not_allowed", f"{session.role} may not do this")
        return live

    # ---- messages ----------------------------------------------------------------------------
    async def _m_ping(self, session: Session, msg: protocol.Message) -> None:
        await session.send(protocol.event("pong", id=msg.id, t=self.clock()))

    async def _m_join(self, session: Session, msg: protocol.Message) -> None:
        if session.claims is not None:
            raise protocol.ProtocolError("already_joined", "this connection has joined already")
        wanted = msg.data.get("lesson_id")
        claims: Claims | None = None
        try:
            if not self.join_limiter.allow(session.address):
                raise TokenRefused("rate_limited", "too many join attempts from this address; wait a minute")
            claims = self.tokens.verify(msg.data["token"], (TokenType.JOIN, TokenType.DEVICE))
            self.store.check_current(claims)  # the account still enabled, the device still enrolled
            if claims.typ == TokenType.DEVICE:
                await self._standby(session, claims, msg)
                return
            lesson_id = claims.lesson_id if wanted is None else wanted
            facts = self.facts(lesson_id) if isinstance(lesson_id, int) else None
            check_join(claims, facts, wanted, self.clock())
            assert facts is not None
            if claims.role == Role.LEAD and facts.lesson.replay_of is not None:
                raise TokenRefused("replay_lesson", "this lesson is a recording the server replays; "
                                   "nobody broadcasts it live")
        except TokenRefused as exc:
            peek = claims or self.tokens.peek(msg.data["token"])
            self.store.audit(
                peek.sub if peek else "unknown",
                peek.role.value if peek else "",
                "join",
                "refused",
                lesson_id=wanted if isinstance(wanted, int) else (peek.lesson_id if peek else None),
                address=session.address,
                reason=exc.code,
            )
            await session.send(protocol.error(exc.code, exc.message, msg))
            await self._close(session, CLOSE_REFUSED, exc.code)
            return
        live = await self.ensure_room(facts)
        try:  # again: the account may have been disabled (or the device replaced) while the room opened
            self.store.check_current(claims)
        except TokenRefused as exc:
            self.store.audit(claims.sub, claims.role.value, "join", "refused", lesson_id=facts.lesson.id,
                             address=session.address, reason=exc.code)
            await session.send(protocol.error(exc.code, exc.message, msg))
            await self._close(session, CLOSE_REFUSED, exc.code)
            return
        pid, name = self._identity(claims, live)
        old = live.sessions.get(pid)
        session.claims, session.lesson_id, session.participant_id, session.name = claims, facts.lesson.id, pid, name
        live.sessions[pid] = session
        live.departed.pop(pid, None)
        self._presence(live, session, Mark.JOINED)
        if claims.role == Role.LEAD:
            # a new connection of the lead says afresh what it shares
            live.picture.lead_present = True
            live.picture.lead_declared = None
            live.picture.lead_was_on_air = bool(live.picture.lead_live)
        session.layout = {"seq": live.layout_seq, **live.layout_of(session)}
        self.store.audit(claims.sub, claims.role.value, "join", "admitted", lesson_id=live.lesson_id,
                         address=session.address, reason="replaces an earlier connection" if old else "")
        if old is not None and old is not session:
            # the same classroom (or teacher) again: the newer connection wins; tell the old one why
            old.participant_id = None
            self.store.audit(claims.sub, claims.role.value, "join", "replaced", lesson_id=live.lesson_id,
                             address=old.address, reason="another connection of the same participant")
            self._spawn(self._kick(old, "replaced"))
        lesson = facts.lesson
        await session.send(
            protocol.event(
                "joined",
                id=msg.id,
                participant_id=pid,
                role=claims.role.value,
                name=name,
                lesson={
                    "id": lesson.id,
                    "kind": lesson.kind.value,
                    "subject": lesson.subject,
                    "grade": lesson.grade,
                    "start": lesson.start.isoformat(),
                    "end": lesson.end.isoformat(),
                    "lead": live.names.get(lesson.lead_classroom_id, ""),
                    "replay": lesson.replay_of is not None,  # a recording the server replays: nobody to talk to
                },
                window_closes=facts.closes,
                ice_servers=self.ice_servers,
                lead_on_air=live.lead_on_air,
                recording=live.recording,
                talkback={"participant_id": live.talkback, "to_all": live.talkback_to_all},
                may_publish=claims.role in (Role.LEAD, Role.RECEIVER),
                layout=session.layout,
                heartbeat_s=HEARTBEAT_S,
            )
        )
        await self._send_layouts(live)
        await self._send_roster(live)

    async def _standby(self, session: Session, claims: Claims, msg: protocol.Message) -> None:
        cid = claims.classroom_id
        if cid is None or self.store.current_device(cid) != claims.device_id:
            raise TokenRefused("device_replaced", "another device has been enrolled for this classroom")
        session.claims = claims
        self.standby.setdefault(cid, set()).add(session)
        open_now = [
            live.lesson_id
            for live in self.lessons.values()
            if cid in live.facts.lesson.receiving_classroom_ids and live.facts.opens <= self.clock() < live.facts.closes
        ]
        await session.send(protocol.event("standby", id=msg.id, classroom_id=cid, open_lessons=open_now))

    def _identity(self, claims: Claims, live: LiveLesson) -> tuple[str, str]:
        if claims.role == Role.LEAD:
            return f"lead-{claims.teacher_id}", live.names.get(live.facts.lesson.lead_classroom_id, "lead")
        if claims.role == Role.RECEIVER:
            return f"classroom-{claims.classroom_id}", live.names.get(claims.classroom_id or 0, "classroom")
        return f"observer-{claims.jti[:10]}", claims.sub

    async def _m_offer(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session)
        assert session.participant_id is not None and session.role is not None
        tracks = msg.data.get("tracks")
        if session.role == Role.OBSERVER and tracks:
            self.store.audit(session.claims.sub if session.claims else "", "observer", "publish", "refused",
                             lesson_id=live.lesson_id, address=session.address, reason="observer_publish")
            raise protocol.ProtocolError("not_allowed_to_publish", "an observer watches and listens only")
        if session.role == Role.RECEIVER and tracks and set(tracks.values()) - {"camera", "audio"}:
            raise protocol.ProtocolError("not_allowed_to_publish", "a classroom publishes camera and audio only")
        role = ParticipantRole(session.role.value)
        try:
            answer = await asyncio.wait_for(
                self.plane.join(
                    live.room_id,
                    session.participant_id,
                    role,
                    msg.data["sdp"],
                    {k: TrackKind(v) for k, v in tracks.items()} if tracks is not None else None,
                    {k: SlotKind(v) for k, v in msg.data["slots"].items()} if msg.data.get("slots") else None,
                ),
                MEDIA_TIMEOUT_S,
            )
        except TimeoutError:
            raise protocol.ProtocolError("media_timeout", "the media server did not answer in time") from None
        except MediaError as exc:
            text = str(exc)
            code = getattr(exc, "code", None) or (
                "not_allowed_to_publish" if "may not publish" in text else "media_lost" if "no open room" in text
                else "not_allowed" if "only the lead" in text else "bad_sdp"
            )
            raise protocol.ProtocolError(code, text[:300]) from None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            # aiortc raises these on SDP it cannot parse: the client hears "bad SDP", never a hung join
            raise protocol.ProtocolError("bad_sdp", f"the offer could not be used: {exc}"[:300]) from None
        if self.lessons.get(live.lesson_id) is not live or live.sessions.get(session.participant_id) is not session:
            # closed or replaced while the media plane worked: undo
            with contextlib.suppress(MediaError):
                await self.plane.leave(live.room_id, session.participant_id)
            raise protocol.ProtocolError("window_closed", "the lesson closed meanwhile")
        session.in_media = True
        await session.send(protocol.event("answer", id=msg.id, sdp=answer))
        early, session.early_candidates = session.early_candidates, []
        for candidate in early:
            with contextlib.suppress(MediaError):  # checked when it arrived; the peer may have gone since
                await self.plane.add_candidate(live.room_id, session.participant_id, candidate)
        await self._resume_talkback(live, session)

    async def _resume_talkback(self, live: LiveLesson, session: Session) -> None:
        """The classroom that had the floor when its link dropped is back: it has the floor again."""
        resume = live.talkback_resume
        if resume is None or resume[0] != session.participant_id or live.talkback is not None:
            return
        live.talkback_resume = None
        if time.monotonic() > resume[2]:
            return
        pid, to_all, _ = resume
        try:
            await self.plane.set_talkback(live.room_id, pid, to_all)
        except MediaError:
            return
        live.set_talkback(pid, session.name, to_all)
        self.store.audit(session.claims.sub if session.claims else "", "receiver", "talkback", "resumed",
                         lesson_id=live.lesson_id, address=session.address, reason=pid)
        await self._broadcast(live, protocol.event("talkback", participant_id=pid, name=session.name, to_all=to_all))
        await self._send_layouts(live)
        await self._send_roster(live)

    async def _m_candidate(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session)
        if not session.in_media or session.participant_id is None:
            # the offer may still be with the media plane: keep a bounded few for when it has answered
            if len(session.early_candidates) >= MAX_EARLY_CANDIDATES:
                raise protocol.ProtocolError("too_many_candidates", "send the offer first, then a few candidates")
            session.early_candidates.append(dict(msg.data))
            return
        try:
            await self.plane.add_candidate(live.room_id, session.participant_id, msg.data)
        except MediaError as exc:
            raise protocol.ProtocolError("bad_candidate", str(exc)[:300]) from None

    async def _m_publishing(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session, Role.LEAD)
        declared = dict(live.picture.lead_declared or {})
        declared.update({k: bool(v) for k, v in msg.data.items()})
        live.picture.lead_declared = declared
        await self._send_layouts(live)

    async def _m_talkback_request(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session, Role.RECEIVER)
        session.talkback_requested = True
        for lead in live.leads():
            await lead.send(protocol.event("talkback_requested", participant_id=session.participant_id,
                                           name=session.name, up=True))
        await self._send_roster(live)

    async def _m_talkback_cancel(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session, Role.RECEIVER)
        session.talkback_requested = False
        for lead in live.leads():
            await lead.send(protocol.event("talkback_requested", participant_id=session.participant_id,
                                           name=session.name, up=False))
        await self._send_roster(live)

    async def _m_talkback_grant(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session, Role.LEAD)
        target = live.sessions.get(msg.data["participant_id"])
        if target is None or target.role != Role.RECEIVER:
            raise protocol.ProtocolError("unknown_participant", "no such classroom in this lesson")
        to_all = bool(msg.data.get("to_all", False))
        await self.plane.set_talkback(live.room_id, target.participant_id, to_all)
        live.set_talkback(target.participant_id, target.name, to_all)
        live.talkback_resume = None
        target.talkback_requested = False
        target.hand_up = False
        self.store.audit(session.claims.sub if session.claims else "", "lead", "talkback", "granted",
                         lesson_id=live.lesson_id, address=session.address, reason=target.participant_id or "")
        await self._broadcast(live, protocol.event("talkback", participant_id=target.participant_id,
                                                   name=target.name, to_all=to_all))
        await self._send_layouts(live)
        await self._send_roster(live)

    async def _m_talkback_end(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session, Role.LEAD)
        # the screens change first (the called classroom leaves them at once), the media plane follows
        live.set_talkback(None)
        live.talkback_resume = None
        await self._send_layouts(live)
        await self._broadcast(live, protocol.event("talkback", participant_id=None, name="", to_all=False))
        await self.plane.set_talkback(live.room_id, None)
        await self._send_roster(live)

    async def _m_raise_hand(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session, Role.RECEIVER, Role.OBSERVER)
        session.hand_up = bool(msg.data["up"])
        for lead in live.leads():
            await lead.send(protocol.event("hand", participant_id=session.participant_id, name=session.name,
                                           up=session.hand_up))
        await self._send_roster(live)

    async def _m_text(self, session: Session, msg: protocol.Message) -> None:
        live = self._need(session, Role.RECEIVER, Role.OBSERVER)
        leads = live.leads()
        for lead in leads:
            await lead.send(protocol.event("text", participant_id=session.participant_id, name=session.name,
                                           text=msg.data["text"].strip(), at=self.clock()))
        await session.send(protocol.event("text", id=msg.id, delivered=len(leads)))

    async def _m_stats(self, session: Session, msg: protocol.Message) -> None:
        self._need(session)
        now = time.monotonic()
        try:
            report = clean_client_report(msg.data["report"], now - session.stats_at if session.stats_at else None)
        except ReportRefused as exc:
            session.stats_refused += 1
            if session.stats_refused in (1, 10, 100, 1000):
                log.info("lesson %s: %s: stats report refused (%d so far): %s", session.lesson_id,
                         session.participant_id, session.stats_refused, exc)
            return
        session.client_stats = report
        session.stats_at = now

    async def _m_leave(self, session: Session, msg: protocol.Message) -> None:
        session.left = True
        await self._close(session, 1000, "left")

    # ---- departures, media events, stats -------------------------------------------------------
    async def _gone(self, session: Session) -> None:
        session.closed = True
        self.sessions.discard(session)
        if session.claims is not None and session.claims.classroom_id is not None:
            waiting = self.standby.get(session.claims.classroom_id)
            if waiting is not None:
                waiting.discard(session)
                if not waiting:
                    del self.standby[session.claims.classroom_id]
        live = self.lessons.get(session.lesson_id) if session.lesson_id is not None else None
        pid = session.participant_id
        if live is None or pid is None or live.sessions.get(pid) is not session:
            return  # never joined, or replaced by a newer connection that keeps the media
        del live.sessions[pid]
        self._presence(live, session, Mark.LEFT if session.left else Mark.DEPARTED)
        if session.role == Role.RECEIVER:
            live.departed[pid] = LinkState.LEFT if session.left else LinkState.LOST
        if session.role == Role.LEAD and not live.leads():
            live.picture.lead_present = False
            live.picture.lead_declared = None
            live.picture.lead_was_on_air = False
        if session.in_media:
            with contextlib.suppress(MediaError):
                await self.plane.leave(live.room_id, pid)
        if live.talkback == pid:
            if not session.left and session.role == Role.RECEIVER:
                live.talkback_resume = (pid, live.talkback_to_all, time.monotonic() + TALKBACK_RESUME_S)
            live.set_talkback(None)
            await self._broadcast(live, protocol.event("talkback", participant_id=None, name="", to_all=False))
        await self._send_layouts(live)
        self.store.audit(session.claims.sub if session.claims else "", session.role.value if session.role else "",
                         "leave", "left", lesson_id=live.lesson_id, address=session.address)
        await self._send_roster(live)

    async def _consume_events(self) -> None:
        async for ev in self.plane.events():
            try:
                await self._on_media_event(ev)
            except Exception:
                log.exception("media event %s failed", ev.kind)

    async def _on_media_event(self, ev: MediaEvent) -> None:
        lesson_id = lesson_of_room(ev.room_id)
        live = self.lessons.get(lesson_id) if lesson_id is not None else None
        if ev.kind in RECORDING_EVENTS and lesson_id is not None:
            # a recording is finalised after its room closed: catalogued whether the lesson is live or not
            if self.recordings is not None:
                await self.recordings.on_event(lesson_id, ev)
            if live is not None and ev.kind == EventKind.RECORDING_FAILED:
                live.recording = False
                await self._broadcast(live, protocol.event("recording", on=False, error=ev.detail.get("error")))
                error = str(ev.detail.get("error") or "unknown error")
                self._recording_alerts[live.lesson_id] = recording_stopped_condition(
                    live.lesson_id, live.facts.lesson.subject, live.names.get(live.facts.lesson.lead_classroom_id, ""),
                    error, live.counties, live.regions)
                self._push_recording_alerts()
            return
        if live is None:
            return
        if ev.kind == EventKind.REPLAY_ENDED:
            if self.replays is not None:
                self.replays.on_ended(live.lesson_id)
            return
        if ev.kind == EventKind.ROOM_LOST:
            # the worker that held the room died: open it again and have everyone reconnect to it
            async with self._lock:
                self.lessons.pop(live.lesson_id, None)
            for s in list(live.sessions.values()):
                await s.send(protocol.event("restart", reason="media_lost"))
                await self._close(s, CLOSE_RESTART, "media lost")
            with contextlib.suppress(MediaError):
                await self.ensure_room(live.facts)
            return
        is_lead = ev.participant_id is not None and ev.participant_id.startswith("lead-")
        publisher = ev.kind in (EventKind.PUBLISHER_UP, EventKind.PUBLISHER_DOWN) and ev.track is not None
        if is_lead and publisher:
            was = live.lead_on_air
            track = str(ev.track)
            if ev.kind == EventKind.PUBLISHER_UP:
                live.picture.lead_live.add(track)
                live.picture.lead_started.add(track)
                live.picture.lead_was_on_air = True
            else:
                live.picture.lead_live.discard(track)
                if ev.detail.get("reason") != "idle":
                    live.picture.lead_started.discard(track)  # that connection is gone
            if was != live.lead_on_air:
                await self._broadcast(live, protocol.event("lead", on_air=live.lead_on_air))
                self.attendance.lead(live.lesson_id, live.lead_on_air)
            await self._send_layouts(live)
        elif publisher and ev.participant_id is not None:
            tracks = live.picture.live.setdefault(ev.participant_id, set())
            if ev.kind == EventKind.PUBLISHER_UP:
                tracks.add(str(ev.track))
            else:
                tracks.discard(str(ev.track))
            if ev.participant_id == live.picture.talkback:
                await self._send_layouts(live)
        elif ev.kind == EventKind.TALKBACK:
            if ev.detail.get("ended") is not None and ev.detail.get("ended") == live.talkback:
                live.set_talkback(None)  # the called classroom's media went away
                await self._broadcast(live, protocol.event("talkback", participant_id=None, name="", to_all=False))
                await self._send_layouts(live)
            await self._send_roster(live)
        elif ev.kind == EventKind.SUBSCRIBER_DOWN and ev.detail.get("reason") in ("worker_lost", "node_lost"):
            # the worker or edge node carrying this classroom's copy of the room died (the room goes on at
            # its owner): have it reconnect, and its join lands on a live worker or node
            session = live.sessions.get(ev.participant_id or "")
            if session is not None:
                await session.send(protocol.event("restart", reason="media_lost"))
                await self._close(session, CLOSE_RESTART, "media lost")
            await self._send_roster(live)
        elif ev.kind in (EventKind.SUBSCRIBER_UP, EventKind.SUBSCRIBER_DOWN):
            await self._send_roster(live)
        elif ev.kind == EventKind.PREVIEW and ev.participant_id is not None:
            await self._send_preview(live, ev.participant_id, ev.detail.get("slots") or [])

    async def _send_preview(self, live: LiveLesson, lead_id: str, slots: list[dict[str, Any]]) -> None:
        """Which receiving classroom each of the lead's preview slots (thumbnails) shows, by mid."""
        lead = live.sessions.get(lead_id)
        if lead is None or lead.role != Role.LEAD:
            return
        shown = []
        for slot in slots:
            pid = slot.get("participant_id")
            shown.append({"mid": slot.get("mid"), "participant_id": pid, "name": self._name_of(live, pid)})
        await lead.send(protocol.event("preview", slots=shown))

    def _name_of(self, live: LiveLesson, pid: str | None) -> str:
        if pid is None:
            return ""
        session = live.sessions.get(pid)
        if session is not None:
            return session.name
        tail = pid.partition("-")[2]
        return live.names.get(int(tail), "") if tail.isdigit() else ""

    async def _broadcast(self, live: LiveLesson, message: dict[str, Any]) -> None:
        await asyncio.gather(*(s.send(message) for s in list(live.sessions.values())))

    def roster(self, live: LiveLesson) -> list[dict[str, Any]]:
        """Every receiving classroom of the lesson (joined or not) and every observer, in name order."""
        now = time.monotonic()
        out = []
        for pid, s in live.sessions.items():
            if s.role == Role.LEAD:
                continue
            quality = shown_quality(s.link, live.quality.get(pid, {}), now - live.quality_at,
                                    _client_quality(s.client_stats), now - s.stats_at)
            out.append(
                {
                    "participant_id": pid,
                    "role": s.role.value if s.role else "",
                    "name": s.name,
                    "classroom_id": s.claims.classroom_id if s.claims else None,
                    "link": str(s.link),
                    "hand_up": s.hand_up,
                    "talkback_requested": s.talkback_requested,
                    "talkback": live.talkback == pid,
                    "quality": quality,
                }
            )
        for cid in live.facts.lesson.receiving_classroom_ids:
            pid = f"classroom-{cid}"
            if pid in live.sessions:
                continue
            link = live.departed.get(pid, LinkState.ABSENT)
            out.append({"participant_id": pid, "role": "receiver", "name": live.names.get(cid, pid),
                        "classroom_id": cid, "link": str(link), "hand_up": False, "talkback_requested": False,
                        "talkback": False, "quality": {"state": str(link)}})
        out.sort(key=lambda p: (_natural(p["name"]), _natural(p["participant_id"])))
        return out

    async def _send_roster(self, live: LiveLesson) -> None:
        """Show the leads the roster after a change: at once when the last went out ROSTER_EVERY_S ago or
        more, else once at the end of that interval with the state then. A burst (the 200 classrooms of a
        dead edge rejoining) is a roster every ROSTER_EVERY_S, not one of 200 rows per join, link and quality
        change; a change on its own still shows at once, and the last state always goes out."""
        if live.roster_due or not live.leads():
            return
        wait = live.roster_sent_at + ROSTER_EVERY_S - time.monotonic()
        if wait <= 0:
            await self._roster_now(live)
            return
        live.roster_due = True
        self._spawn(self._roster_later(live, wait))

    async def _roster_later(self, live: LiveLesson, wait: float) -> None:
        try:
            await asyncio.sleep(wait)
        finally:
            live.roster_due = False
        if self.lessons.get(live.lesson_id) is live:
            try:
                await self._roster_now(live)
            except Exception:
                log.exception("roster of lesson %d failed", live.lesson_id)

    async def _roster_now(self, live: LiveLesson) -> None:
        leads = live.leads()
        if leads:
            live.roster_sent_at = time.monotonic()
            message = protocol.event("roster", participants=self.roster(live), lead_on_air=live.lead_on_air)
            await asyncio.gather(*(lead.send(message) for lead in leads))

    async def _send_layouts(self, live: LiveLesson) -> None:
        """Send each participant its layout where it changed (one new `seq` for the change)."""
        changed = []
        for session in live.sessions.values():
            lay = live.layout_of(session)
            if session.layout is None or {k: v for k, v in session.layout.items() if k != "seq"} != lay:
                changed.append((session, lay))
        if not changed:
            return
        live.layout_seq += 1
        for session, lay in changed:
            session.layout = {"seq": live.layout_seq, **lay}
        await asyncio.gather(*(s.send(protocol.event("layout", **(s.layout or {}))) for s, _ in changed))

    async def _liveness_loop(self) -> None:
        """Four times a second: who has gone silent (a pulled cable closes no socket); the lead is told."""
        while True:
            await asyncio.sleep(LIVENESS_INTERVAL_S)
            now = time.monotonic()
            for live in list(self.lessons.values()):
                changed = False
                for pid, session in list(live.sessions.items()):
                    heard_ago, at = live.heard.get(pid, (None, now))
                    media_silent = None if heard_ago is None else heard_ago + (now - at)
                    state = link_state(now - session.last_seen, media_silent if session.in_media else None)
                    if state != session.link:
                        if LinkState.LOST in (state, session.link):
                            log.info("lesson %d: %s link %s", live.lesson_id, pid, state)
                            self._presence(live, session, Mark.LOST if state == LinkState.LOST else Mark.BACK)
                        session.link = state
                        changed = True
                if changed:
                    try:
                        await self._send_roster(live)
                    except Exception:
                        log.exception("roster of lesson %d failed", live.lesson_id)

    async def _stats_loop(self) -> None:
        interval = self.config.stats_interval_s
        while True:
            await asyncio.sleep(interval)
            for live in list(self.lessons.values()):
                try:
                    snapshot = await self.plane.stats(live.room_id)
                except MediaError:
                    continue
                except Exception:
                    log.exception("stats of lesson %d failed", live.lesson_id)
                    continue
                for listener in self.stats_listeners:
                    try:
                        listener(live.room_id, live.facts.lesson, snapshot)
                    except Exception:
                        log.exception("a stats listener failed on lesson %d", live.lesson_id)
                self._refresh_quality(live, snapshot)
                scores: dict[str, float | None] = {}
                if self.monitor is not None:
                    try:
                        shown = self.monitor.sample(self.sample_of(live, snapshot, time.monotonic()))
                        live.quality.update(shown)
                        scores = {pid: q.get("score") for pid, q in shown.items()}
                    except Exception:
                        log.exception("monitoring lesson %d failed", live.lesson_id)
                self.attendance.tick(live.lesson_id, snapshot, live.sessions, quality=scores)
                await self._send_roster(live)

    def sample_of(self, live: LiveLesson, snapshot: dict[str, Any], now: float) -> LessonSample:
        """What monitoring is handed of one lesson at one stats tick."""
        media = snapshot.get("participants") or {}
        participants = []
        lesson = live.facts.lesson
        for pid, session in live.sessions.items():
            client = session.client_stats if now - session.stats_at < STALE_AFTER_S else {}
            classroom = session.claims.classroom_id if session.claims else None
            if session.role == Role.LEAD:
                classroom = lesson.lead_classroom_id  # the lead school's uplink carries it
            participants.append(ParticipantSample(
                pid, session.role.value if session.role else "", session.name, classroom, str(session.link),
                media.get(pid) or {}, client))
        receivers = {f"classroom-{c}": live.names.get(c, f"classroom-{c}") for c in lesson.receiving_classroom_ids}
        absent = {pid: str(live.departed.get(pid, LinkState.ABSENT)) for pid in receivers if pid not in live.sessions}
        picture = live.picture
        declared = picture.lead_declared or {}
        # the camera should send once it has sent on this connection, unless the page said it stopped; a
        # still slide of courseware may send nothing for seconds, so courseware is not expected to flow
        expected = frozenset(t for t in ("camera",) if t in picture.lead_started and declared.get(t) is not False)
        pids = getattr(self.plane, "worker_pids", None)
        return LessonSample(
            lesson_id=live.lesson_id, kind=str(lesson.kind), subject=lesson.subject,
            lead_name=live.names.get(lesson.lead_classroom_id, ""), county_ids=live.counties,
            region_ids=live.regions, starts_at=lesson.start.timestamp(), ends_at=lesson.end.timestamp(),
            wall=self.clock(), mono=now, lead_state=picture.lead_state, lead_expected=expected,
            lead_live=frozenset(picture.lead_live), talkback=picture.talkback, receivers=receivers, absent=absent,
            participants=tuple(participants), worker_pid=pids().get(live.room_id) if callable(pids) else None,
            snapshot=snapshot,
        )

    def _refresh_quality(self, live: LiveLesson, snapshot: dict[str, Any]) -> None:
        """What the roster shows of each participant's link, and when the SFU last heard it."""
        now = time.monotonic()
        live.quality_at = now
        for pid, p in (snapshot.get("participants") or {}).items():
            if self.monitor is None:
                live.quality[pid] = _media_quality(p)
            live.heard[pid] = (p.get("heard_ago_s"), now)

    def _presence(self, live: LiveLesson, session: Session, what: Mark) -> None:
        claims = session.claims
        if claims is not None:
            self.attendance.presence(live.lesson_id, claims.role.value, claims.classroom_id, claims.teacher_id, what)


def _media_quality(p: dict[str, Any]) -> dict[str, Any]:
    """A classroom's link as the SFU sees it: worst loss and RTT over its slots, and a 0-100 score."""
    losses = [s.get("fraction_lost") or 0.0 for s in (p.get("slots") or {}).values()]
    rtts = [s.get("rtt_ms") for s in (p.get("slots") or {}).values() if s.get("rtt_ms") is not None]
    loss = max(losses, default=0.0)
    rtt = max(rtts, default=None)
    score = 100.0 - min(60.0, loss * 600.0) - (min(40.0, max(0.0, rtt - 100.0) / 10.0) if rtt is not None else 0.0)
    return {"connection": p.get("connection"), "loss": round(loss, 4), "rtt_ms": rtt, "score": round(score)}


def _natural(text: str) -> list[Any]:
    """A sort key that puts classroom-8 before classroom-22 and 二年级2班 before 二年级10班."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def _client_quality(stats: dict[str, float | None]) -> dict[str, Any]:
    keep = ("fps", "frames_decoded", "width", "height", "jitter_ms", "packets_lost", "freeze_count", "bitrate_kbps")
    return {k: stats[k] for k in keep if k in stats}
