"""Prometheus metrics of the node at `GET /metrics`: per node and per lesson kind, never per subscriber.

Where the figures come from, without calling into the media workers at scrape time:
- the hub's stats loop hands every room's snapshot (`MediaPlane.stats(room_id)`, once a second) to
  `Metrics.observe`; counters are advanced there from the snapshot's own counters (their deltas, so a
  classroom that leaves or a room that closes never makes a total go down), and the room's gauges are
  kept until the next snapshot;
- the media plane's events give the keyframe waits, join-to-first-frame times and room closes;
- a sampler (every `SAMPLE_S`) asks the workers for their CPU seconds and event-loop lag, and reads
  refused joins from the audit trail;
- a scrape only adds up what is kept (`MetricsCollector.collect`).

The rules are pure functions over plain data (`room_sources`, `room_gauges`, `CounterBook`); `Metrics`
is the thin shell with the tasks. Every metric is described in docs/monitoring.md, "Metrics".
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from media.api import EventKind, MediaEvent
from media.workers import LoopLag, process_figures
from monitoring.alerts import AlertConfig, ProcessHealth
from monitoring.config import MonitoringConfig
from scheduler.model import Kind, Lesson

log = logging.getLogger(__name__)

KINDS = tuple(k.value for k in Kind)
UNKNOWN_KIND = "unknown"
SAMPLE_S = 1.0  # worker load and refused joins
MAX_REASONS = 64  # distinct refusal reasons kept as label values; more become "other"
AlertsFiring = Callable[[], Mapping[tuple[str, str], int]]  # (rule, severity) -> alerts firing

# A snapshot counter -> the counter it feeds. Inbound tracks are what publishers send the SFU ("in"),
# slots what the SFU sends each subscriber ("out").
IN_COUNTERS = {
    "packets": "packets_in",
    "bytes": "bytes_in",
    "packets_lost": "lost_in",
    "nacks_sent": "nacks_sent",
    "retransmissions_received": "retransmissions_in",
    "keyframes": "keyframes_in",
    "keyframe_requests": "keyframe_requests_sent",
}
OUT_COUNTERS = {
    "packets_sent": "packets_out",
    "bytes_sent": "bytes_out",
    "packets_lost": "lost_out",
    "nacks_received": "nacks_received",
    "retransmitted": "retransmissions_out",
    "unrepairable": "unrepairable_out",
    "keyframe_requests_received": "keyframe_requests_received",
}
ROOM_COUNTERS = {"refused_joins": "refused_capacity"}

JOIN_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
KEYFRAME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


# -- pure: what one snapshot says -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomFacts:
    """What the gauges need to know about the lesson behind a room (times as epoch seconds)."""

    kind: str
    start: float
    end: float
    receiving_classroom_ids: tuple[int, ...] = ()

    @classmethod
    def of(cls, lesson: Lesson) -> RoomFacts:
        return cls(lesson.kind.value, lesson.start.timestamp(), lesson.end.timestamp(),
                   tuple(lesson.receiving_classroom_ids))


SourceKey = tuple[str, str, str, int]  # (participant id, "in" | "out", mid or track, ssrc)


@dataclass(frozen=True, slots=True)
class Source:
    """One stream's counters in a snapshot, and whether it counts for freeze detection."""

    counts: Mapping[str, int]
    watch: str = ""  # "" or the `side` label of a camera stream expected to flow: lead, classroom, subscriber


def _int(value: Any) -> int:
    if type(value) is int and value >= 0:  # the usual case, first: this runs for every counter every second
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, int(value))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        return None
    return float(value)


def _dict(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} is {type(value).__name__}, not an object")
    return value


def room_sources(snapshot: Mapping[str, Any]) -> dict[SourceKey, Source]:
    """Every stream of a room snapshot with its counters, keyed so that a reconnect is a new stream."""
    out: dict[SourceKey, Source] = {}
    for pid, p in _dict(snapshot.get("participants"), "participants").items():
        p = _dict(p, f"participant {pid}")
        connected = p.get("connection") == "connected"
        lead = p.get("role") == "lead"
        for track, t in _dict(p.get("published"), f"{pid} published").items():
            t = _dict(t, f"{pid} track {track}")
            counts = {name: v if type(v := t.get(key)) is int and v >= 0 else _int(v)
                      for key, name in IN_COUNTERS.items()}
            watch = ("lead" if lead else "classroom") if track == "camera" and connected else ""
            out[(str(pid), "in", str(track), _int(t.get("ssrc")))] = Source(counts, watch)
        for mid, s in _dict(p.get("slots"), f"{pid} slots").items():
            s = _dict(s, f"{pid} slot {mid}")
            counts = {name: v if type(v := s.get(key)) is int and v >= 0 else _int(v)
                      for key, name in OUT_COUNTERS.items()}
            flowing = connected and s.get("slot") == "camera" and bool(s.get("source_on_air"))
            out[(str(pid), "out", str(mid), _int(s.get("ssrc")))] = Source(counts, "subscriber" if flowing else "")
    out[("", "room", "", 0)] = Source({name: _int(snapshot.get(key)) for key, name in ROOM_COUNTERS.items()})
    return out


@dataclass(slots=True)
class RoomGauges:
    """A room's gauges as of its last snapshot; `collect` adds rooms of the same kind together."""

    kind: str
    at: float = 0.0  # monotonic time of the snapshot
    rooms: int = 1
    lead_on_air: int = 0
    lead_missing: int = 0
    receivers_absent: int = 0
    talkback: int = 0
    publishers: dict[str, int] = field(default_factory=dict)  # track -> tracks on air
    subscriptions: dict[str, int] = field(default_factory=dict)  # role -> connected participants
    waiting_for_keyframe: int = 0
    frozen: dict[str, int] = field(default_factory=dict)  # side -> camera streams frozen
    bitrate_in: float = 0.0
    bitrate_out: float = 0.0
    # per subscriber (its worst slot), kept as sums and maxima: (sum, count, max)
    loss: tuple[float, int, float] = (0.0, 0, 0.0)
    jitter: tuple[float, int, float] = (0.0, 0, 0.0)
    rtt: tuple[float, int, float] = (0.0, 0, 0.0)
    publisher_jitter_max: float = 0.0
    fanout: tuple[float, int, float] = (0.0, 0, 0.0)


def _spread(values: Iterable[float]) -> tuple[float, int, float]:
    total, n, top = 0.0, 0, 0.0
    for v in values:
        total, n, top = total + v, n + 1, max(top, v)
    return total, n, top


def room_gauges(
    snapshot: Mapping[str, Any],
    facts: RoomFacts,
    now: float,
    lead_after: float = AlertConfig.lead_absent_after_s,
    absent_after: float = AlertConfig.classroom_absent_after_s,
) -> RoomGauges:
    """The gauges of one room from its snapshot; `now` is epoch seconds (for the lesson's start), the
    thresholds are seconds after the start."""
    g = RoomGauges(facts.kind)
    participants = _dict(snapshot.get("participants"), "participants")
    g.lead_on_air = int(bool(snapshot.get("lead_on_air")))
    in_lesson = facts.start <= now < facts.end
    g.lead_missing = int(in_lesson and not g.lead_on_air and now >= facts.start + lead_after)
    if in_lesson and now >= facts.start + absent_after:
        g.receivers_absent = sum(
            1 for c in facts.receiving_classroom_ids
            if _dict(participants.get(f"classroom-{c}"), "participant").get("connection") != "connected"
        )
    talkback = _dict(snapshot.get("talkback"), "talkback")
    g.talkback = int(talkback.get("participant_id") is not None)
    losses, jitters, rtts, pub_jitters, fanouts = [], [], [], [], []
    for pid, p in participants.items():
        p = _dict(p, f"participant {pid}")
        connected = p.get("connection") == "connected"
        role = str(p.get("role") or "")
        if role != "lead" and connected:
            g.subscriptions[role] = g.subscriptions.get(role, 0) + 1
        for track, t in _dict(p.get("published"), f"{pid} published").items():
            t = _dict(t, f"{pid} track {track}")
            if t.get("on_air"):
                g.publishers[str(track)] = g.publishers.get(str(track), 0) + 1
                jitter = _num(t.get("jitter_ms"))
                if jitter is not None:
                    pub_jitters.append(jitter / 1000.0)
                fanout = _num(t.get("fanout_us_per_packet"))
                if fanout is not None and _int(t.get("subscribers")):
                    fanouts.append(fanout / 1e6)
        loss = jitter_s = rtt = None
        for mid, s in _dict(p.get("slots"), f"{pid} slots").items():
            s = _dict(s, f"{pid} slot {mid}")
            if s.get("waiting_for_keyframe"):
                g.waiting_for_keyframe += 1
            if not connected or s.get("source") is None:
                continue
            if (v := _num(s.get("fraction_lost"))) is not None:
                loss = max(loss or 0.0, min(v, 1.0))
            if (v := _num(s.get("jitter_ms"))) is not None:
                jitter_s = max(jitter_s or 0.0, v / 1000.0)
            if (v := _num(s.get("rtt_ms"))) is not None:
                rtt = max(rtt or 0.0, v / 1000.0)
        for value, into in ((loss, losses), (jitter_s, jitters), (rtt, rtts)):
            if value is not None:
                into.append(value)
    g.loss, g.jitter, g.rtt, g.fanout = _spread(losses), _spread(jitters), _spread(rtts), _spread(fanouts)
    g.publisher_jitter_max = max(pub_jitters, default=0.0)
    return g


@dataclass(slots=True)
class _RoomBook:
    kind: str
    last: dict[SourceKey, Mapping[str, int]] = field(default_factory=dict)
    moved: dict[SourceKey, float] = field(default_factory=dict)  # monotonic time packets last grew
    at: float = 0.0


class CounterBook:
    """Totals per (kind, counter) that only grow: each snapshot adds what its streams' counters grew
    by since the previous one. A stream that vanishes (a classroom left, a room closed) keeps what it
    contributed; a reconnect is a new stream (new SSRC) that starts from zero. Pure: no I/O, no clock."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str], int] = {}
        self._rooms: dict[str, _RoomBook] = {}

    def update(
        self, room_id: str, kind: str, sources: Mapping[SourceKey, Source], now: float, freeze_after: float
    ) -> tuple[dict[str, int], dict[str, int], float]:
        """Advance the totals; returns this room's growth per counter, the frozen camera streams by side,
        and the seconds since the room's previous snapshot (0 for the first)."""
        book = self._rooms.get(room_id)
        if book is None or book.kind != kind:
            book = self._rooms[room_id] = _RoomBook(kind)
        grown: dict[str, int] = {}
        frozen: dict[str, int] = {}
        last, moved = book.last, book.moved
        for key, source in sources.items():
            before = last.get(key)
            packets = source.counts.get("packets_in", source.counts.get("packets_out", 0))
            for name, value in source.counts.items():
                delta = value - (before.get(name, 0) if before is not None else 0)
                if delta > 0:
                    grown[name] = grown.get(name, 0) + delta
            if before is None or packets > before.get("packets_in", before.get("packets_out", 0)):
                moved[key] = now
            elif source.watch and now - moved.get(key, now) >= freeze_after:
                frozen[source.watch] = frozen.get(source.watch, 0) + 1
        for key in [k for k in moved if k not in sources]:
            del moved[key]
        book.last = {k: s.counts for k, s in sources.items()}
        for name, delta in grown.items():
            self.totals[(kind, name)] = self.totals.get((kind, name), 0) + delta
        dt = now - book.at if book.at else 0.0
        book.at = now
        return grown, frozen, dt

    def forget(self, room_id: str) -> None:
        """The room closed: its streams' last values go (the totals keep what they added)."""
        self._rooms.pop(room_id, None)


_REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def refusal_reason(reason: str | None) -> str:
    """A refusal's reason as a label value: the code the access rules gave, or "other" for anything else."""
    text = (reason or "").strip()
    return text if _REASON.match(text) else "other"


def address_allowed(address: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    nets = list(networks)
    if not nets:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in nets)


# -- the shell ----------------------------------------------------------------------------------------


@runtime_checkable
class HasWorkers(Protocol):
    async def worker_stats(self) -> list[dict[str, Any]]: ...


class EventSource(Protocol):
    def events(self) -> AsyncIterator[MediaEvent]: ...


@dataclass(slots=True)
class _Process:
    cpu_seconds: float
    loop_lag_s: float
    responding: bool = True
    rooms: int = 0


class Metrics:
    """The node's metrics: fed by the hub (`observe`), the media events and a sampler; read by scrapes."""

    def __init__(
        self,
        config: MonitoringConfig,
        *,
        data_dir: Path | None = None,
        db: Any = None,  # scheduler.db.Database: refused joins come from its audit table
        kind_of: Callable[[int], str | None] = lambda _lesson_id: None,
        joined_at: Callable[[str, str], float | None] = lambda _room, _pid: None,
        room_kind: Callable[[str], str | None] = lambda _room: None,
        alerts_firing: AlertsFiring | None = None,
        thresholds: AlertConfig | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.node = config.node_name
        self.data_dir = data_dir
        self.db = db
        self.kind_of = kind_of
        self.joined_at = joined_at  # monotonic time a participant's connection opened (join-to-first-frame)
        self.room_kind = room_kind  # a room's lesson kind before its first snapshot arrived
        self.alerts_firing = alerts_firing
        self.thresholds = thresholds or AlertConfig()  # the alerts' thresholds: one place for both
        self.clock = clock
        self.monotonic = monotonic
        self.networks = [ipaddress.ip_network(n, strict=False) for n in config.metrics_allow]
        self.book = CounterBook()
        self.rooms: dict[str, RoomGauges] = {}
        self.room_kinds: dict[str, str] = {}
        self.lead_up: dict[str, float] = {}  # room -> monotonic time the lead's camera last went on air
        self.first_frame_done: dict[tuple[str, str], float] = {}  # (room, participant) -> join time counted
        self.processes: dict[str, _Process] = {}
        self._cpu_before: dict[str, tuple[float, float]] = {}  # name -> (cpu seconds, monotonic) one sample ago
        self._cpu_percent: dict[str, float] = {}
        self._sampled_at = 0.0
        self.refused: dict[tuple[str, str, str], int] = {}  # (kind, reason, stage) -> refusals
        self.bad_snapshots = 0
        self._audit_after: int | None = None
        self._kinds_cache: dict[int, str] = {}
        self._logged_bad: dict[str, float] = {}
        self.loop_lag = LoopLag()
        self._tasks: list[asyncio.Task[None]] = []
        self.registry = CollectorRegistry(auto_describe=True)
        self.join_to_first_frame = Histogram(
            "classroom_join_to_first_frame_seconds",
            "From a participant's connection opening (or the lead's camera going on air, if later) to the "
            "first video keyframe the SFU sent it",
            ["node", "kind"], buckets=JOIN_BUCKETS, registry=self.registry,
        )
        self.keyframe_wait = Histogram(
            "classroom_keyframe_wait_seconds",
            "From the SFU's keyframe request for a waiting subscriber slot to the keyframe it forwarded",
            ["node", "kind"], buckets=KEYFRAME_BUCKETS, registry=self.registry,
        )
        self.registry.register(MetricsCollector(self))

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self, plane: EventSource) -> None:
        self.loop_lag.start()
        self._init_audit()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume(plane.events())), loop.create_task(self._sample(plane))]

    async def stop(self) -> None:
        self.loop_lag.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # -- inputs ---------------------------------------------------------------------------------------

    def observe(self, room_id: str, lesson: Lesson | RoomFacts, snapshot: Mapping[str, Any]) -> None:
        """One room's stats snapshot, as the hub took it. A malformed snapshot is logged and counted and
        leaves the room's previous figures as they were; it never raises into the hub's loop."""
        facts = lesson if isinstance(lesson, RoomFacts) else RoomFacts.of(lesson)
        now = self.monotonic()
        try:
            if not isinstance(snapshot, Mapping):
                raise ValueError(f"the snapshot is {type(snapshot).__name__}, not an object")
            sources = room_sources(snapshot)
            gauges = room_gauges(snapshot, facts, self.clock(), self.thresholds.lead_absent_after_s,
                                 self.thresholds.classroom_absent_after_s)
        except (ValueError, TypeError, AttributeError) as exc:
            self.bad_snapshots += 1
            if now - self._logged_bad.get(room_id, -1e9) >= 60.0:
                self._logged_bad[room_id] = now
                log.warning("metrics: room %s sent a malformed stats snapshot (%s); kept its previous figures",
                            room_id, exc)
            return
        grown, frozen, dt = self.book.update(room_id, facts.kind, sources, now, self.thresholds.freeze_after_s)
        gauges.at = now
        gauges.frozen = frozen
        if dt > 0:
            gauges.bitrate_in = grown.get("bytes_in", 0) * 8 / dt
            gauges.bitrate_out = grown.get("bytes_out", 0) * 8 / dt
        self.rooms[room_id] = gauges
        self.room_kinds[room_id] = facts.kind
        if cap := grown.get("refused_capacity"):
            key = (facts.kind, "capacity", "media")
            self.refused[key] = self.refused.get(key, 0) + cap

    def room_closed(self, room_id: str) -> None:
        self.rooms.pop(room_id, None)
        self.room_kinds.pop(room_id, None)
        self.lead_up.pop(room_id, None)
        self.book.forget(room_id)
        self._logged_bad.pop(room_id, None)
        for key in [k for k in self.first_frame_done if k[0] == room_id]:
            del self.first_frame_done[key]

    def on_event(self, ev: MediaEvent) -> None:
        now = self.monotonic()
        if ev.kind in (EventKind.ROOM_CLOSED, EventKind.ROOM_LOST):
            self.room_closed(ev.room_id)
            return
        pid = ev.participant_id
        if ev.kind == EventKind.PUBLISHER_UP and pid is not None and pid.startswith("lead-") and ev.track == "camera":
            self.lead_up[ev.room_id] = now
            return
        if ev.kind != EventKind.FIRST_KEYFRAME or pid is None:
            return
        kind = self.room_kinds.get(ev.room_id) or self.room_kind(ev.room_id) or UNKNOWN_KIND
        wait_ms = _num(ev.detail.get("wait_ms"))
        if wait_ms is not None:
            self.keyframe_wait.labels(self.node, kind).observe(wait_ms / 1000.0)
        if ev.detail.get("slot") not in ("camera", "screen"):
            return
        joined = self.joined_at(ev.room_id, pid)
        if joined is None or self.first_frame_done.get((ev.room_id, pid)) == joined:
            return
        self.first_frame_done[(ev.room_id, pid)] = joined
        started = max(joined, self.lead_up.get(ev.room_id, joined))
        self.join_to_first_frame.labels(self.node, kind).observe(max(0.0, now - started))

    def process_health(self) -> list[ProcessHealth]:
        """Each process's CPU use (percent of one core since the sample before) and loop lag, for the alerts."""
        return [ProcessHealth(name, self._cpu_percent.get(name), p.loop_lag_s * 1000.0)
                for name, p in self.processes.items() if p.responding]

    def set_processes(self, workers: Iterable[Mapping[str, Any]]) -> None:
        """The control process's own load and each worker's, as the sampler read them."""
        now = self.monotonic()
        for name, p in self.processes.items():
            self._cpu_before[name] = (p.cpu_seconds, self._sampled_at)
        self._sampled_at = now
        self._set_processes(workers)
        for name, p in self.processes.items():
            before = self._cpu_before.get(name)
            if before is not None and now > before[1] and p.cpu_seconds >= before[0] and p.responding:
                self._cpu_percent[name] = 100.0 * (p.cpu_seconds - before[0]) / (now - before[1])

    def _set_processes(self, workers: Iterable[Mapping[str, Any]]) -> None:
        mine = process_figures(self.loop_lag)
        seen = {"control": _Process(mine["cpu_seconds"], mine["loop_lag_s"])}
        for w in workers:
            name = f"worker-{w.get('index')}"
            old = self.processes.get(name)
            cpu, lag = _num(w.get("cpu_seconds")), _num(w.get("loop_lag_s"))
            if w.get("responding") and cpu is not None:
                seen[name] = _Process(cpu, lag or 0.0, True, _int(w.get("rooms")))
            elif old is not None:  # not answering: its last CPU figure stays, marked down
                seen[name] = _Process(old.cpu_seconds, old.loop_lag_s, False, _int(w.get("rooms")))
            else:
                seen[name] = _Process(0.0, 0.0, False, _int(w.get("rooms")))
        self.processes = seen

    def _init_audit(self) -> None:
        if self.db is None:
            return
        with self.db.read() as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()
        self._audit_after = int(row[0])

    def read_refusals(self) -> int:
        """Refused joins written to the audit trail since the last read (a join token refused: stage
        `token`; a WebSocket join refused: stage `join`); returns how many were new."""
        if self.db is None or self._audit_after is None:
            return 0
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT id, action, lesson_id, reason FROM audit WHERE id > ? AND outcome = 'refused' "
                "AND action IN ('join', 'join_token') ORDER BY id LIMIT 10000",
                (self._audit_after,),
            ).fetchall()
        for audit_id, action, lesson_id, reason in rows:
            self._audit_after = max(self._audit_after, int(audit_id))
            reason = refusal_reason(reason)
            if reason not in {k[1] for k in self.refused} and len({k[1] for k in self.refused}) >= MAX_REASONS:
                reason = "other"
            key = (self._kind(lesson_id), reason, "token" if action == "join_token" else "join")
            self.refused[key] = self.refused.get(key, 0) + 1
        return len(rows)

    def _kind(self, lesson_id: Any) -> str:
        if not isinstance(lesson_id, int):
            return UNKNOWN_KIND
        kind = self._kinds_cache.get(lesson_id)
        if kind is None:
            kind = self.kind_of(lesson_id) or UNKNOWN_KIND
            if len(self._kinds_cache) >= 10000:
                self._kinds_cache.clear()
            self._kinds_cache[lesson_id] = kind
        return kind

    async def _consume(self, events: AsyncIterator[MediaEvent]) -> None:
        async for ev in events:
            try:
                self.on_event(ev)
            except Exception:
                log.exception("metrics: media event %s failed", ev.kind)

    async def _sample(self, plane: object) -> None:
        while True:
            try:
                workers = await plane.worker_stats() if isinstance(plane, HasWorkers) else []
                self.set_processes(workers)
                self.read_refusals()
            except Exception:
                log.exception("metrics: sampling worker load or refused joins failed")
            await asyncio.sleep(SAMPLE_S)

    # -- output ---------------------------------------------------------------------------------------

    def scrape_allowed(self, address: str, authorization: str) -> str | None:
        """None when this caller may read /metrics, else why not."""
        if not self.config.metrics_enabled:
            return "metrics are switched off ([monitoring] metrics_enabled)"
        if not address_allowed(address, self.networks):
            return f"{address} is not in [monitoring] metrics_allow"
        token = self.config.metrics_token
        if token:
            given = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return "this needs the metrics token (Authorization: Bearer ...)"
        return None

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def handle(self, request: web.Request) -> web.Response:
        """GET /metrics: the text format Prometheus reads, for callers `scrape_allowed` lets in."""
        address = request.remote or ""
        refusal = self.scrape_allowed(address, request.headers.get("Authorization", ""))
        if refusal is not None:
            log.warning("refused a /metrics scrape from %s: %s", address, refusal)
            status = 404 if not self.config.metrics_enabled else 401 if "token" in refusal else 403
            return web.json_response({"error": refusal, "code": "metrics_refused"}, status=status)
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST,
                                                         "Cache-Control": "no-store"})


def _sum_kind(rooms: Iterable[RoomGauges]) -> dict[str, list[RoomGauges]]:
    by: dict[str, list[RoomGauges]] = {k: [] for k in KINDS}
    for g in rooms:
        by.setdefault(g.kind, []).append(g)
    return by


class MetricsCollector(Collector):
    """Turns what `Metrics` keeps into metric families at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # families vary with what is live; the registry then calls collect() when it needs names

    def collect(self) -> Iterator[Metric]:
        m = self.m
        node = m.node
        now = m.monotonic()
        fresh = [g for g in m.rooms.values() if now - g.at <= m.config.stale_after_s]
        by_kind = _sum_kind(fresh)
        kinds = sorted(set(by_kind) | {k for k, _ in m.book.totals})
        nk = ["node", "kind"]

        def gauge(name: str, doc: str, value: Callable[[list[RoomGauges]], float], unit: str = "") -> Metric:
            fam = GaugeMetricFamily(name, doc, labels=nk, unit=unit)
            for kind in kinds:
                fam.add_metric([node, kind], value(by_kind.get(kind, [])))
            return fam

        def counter(name: str, doc: str, counter_name: str) -> Metric:
            fam = CounterMetricFamily(name, doc, labels=nk)
            for kind in kinds:
                fam.add_metric([node, kind], m.book.totals.get((kind, counter_name), 0))
            return fam

        def mean(rs: list[RoomGauges], attr: str) -> float:
            total = sum(getattr(g, attr)[0] for g in rs)
            n = sum(getattr(g, attr)[1] for g in rs)
            return total / n if n else 0.0

        def top(rs: list[RoomGauges], attr: str) -> float:
            return max((getattr(g, attr)[2] for g in rs), default=0.0)

        yield gauge("classroom_lessons_live", "Live lessons (rooms open) on this node", lambda rs: len(rs))
        yield gauge("classroom_lessons_lead_on_air", "Live lessons whose lead is on air",
                    lambda rs: sum(g.lead_on_air for g in rs))
        yield gauge("classroom_lessons_lead_missing",
                    "Live lessons past their start plus [alerts] lead_absent_after_s with the lead not on air",
                    lambda rs: sum(g.lead_missing for g in rs))
        yield gauge("classroom_receivers_absent",
                    "Receiving classrooms not connected, in lessons past start plus [alerts] classroom_absent_after_s",
                    lambda rs: sum(g.receivers_absent for g in rs))
        yield gauge("classroom_talkback_active", "Live lessons with a receiving classroom called on (talk-back)",
                    lambda rs: sum(g.talkback for g in rs))
        yield gauge("classroom_slots_waiting_for_keyframe", "Subscriber video slots waiting for a keyframe",
                    lambda rs: sum(g.waiting_for_keyframe for g in rs))

        pubs = GaugeMetricFamily("classroom_publishers", "Published tracks on air", labels=[*nk, "track"])
        subs = GaugeMetricFamily("classroom_subscriptions", "Connected participants other than the lead",
                                 labels=[*nk, "role"])
        frozen = GaugeMetricFamily("classroom_streams_frozen",
                                   "Camera streams that forwarded no packet for [alerts] freeze_after_s while "
                                   "expected to flow", labels=[*nk, "side"])
        rate = GaugeMetricFamily("classroom_bitrate_bits_per_second",
                                 "Media bit rate over the last stats interval (SRTP payload bytes)",
                                 labels=[*nk, "direction"])
        for kind in kinds:
            rs = by_kind.get(kind, [])
            for track in ("camera", "audio", "screen"):
                pubs.add_metric([node, kind, track], sum(g.publishers.get(track, 0) for g in rs))
            for role in ("receiver", "observer"):
                subs.add_metric([node, kind, role], sum(g.subscriptions.get(role, 0) for g in rs))
            for side in ("lead", "classroom", "subscriber"):
                frozen.add_metric([node, kind, side], sum(g.frozen.get(side, 0) for g in rs))
            rate.add_metric([node, kind, "in"], sum(g.bitrate_in for g in rs))
            rate.add_metric([node, kind, "out"], sum(g.bitrate_out for g in rs))
        yield from (pubs, subs, frozen, rate)

        yield gauge("classroom_subscriber_loss_ratio_mean",
                    "Mean over connected subscribers of their worst slot's fraction lost (RTCP receiver reports)",
                    lambda rs: mean(rs, "loss"))
        yield gauge("classroom_subscriber_loss_ratio_max", "Worst subscriber's fraction lost",
                    lambda rs: top(rs, "loss"))
        yield gauge("classroom_subscriber_jitter_seconds_mean", "Mean over subscribers of their worst slot's jitter",
                    lambda rs: mean(rs, "jitter"))
        yield gauge("classroom_subscriber_jitter_seconds_max", "Worst subscriber's jitter",
                    lambda rs: top(rs, "jitter"))
        yield gauge("classroom_subscriber_rtt_seconds_mean",
                    "Mean over subscribers of their worst slot's round-trip time",
                    lambda rs: mean(rs, "rtt"))
        yield gauge("classroom_subscriber_rtt_seconds_max", "Worst subscriber's round-trip time",
                    lambda rs: top(rs, "rtt"))
        yield gauge("classroom_publisher_jitter_seconds_max", "Worst inbound jitter of a published track on air",
                    lambda rs: max((g.publisher_jitter_max for g in rs), default=0.0))
        yield gauge("classroom_fanout_seconds_per_packet_mean",
                    "Mean over tracks with subscribers of the SFU's time to fan one packet out",
                    lambda rs: mean(rs, "fanout"))
        yield gauge("classroom_fanout_seconds_per_packet_max", "Slowest track's time to fan one packet out",
                    lambda rs: top(rs, "fanout"))

        yield counter("classroom_received_packets", "RTP packets received from publishers", "packets_in")
        yield counter("classroom_received_bytes", "RTP payload bytes received from publishers", "bytes_in")
        yield counter("classroom_sent_packets", "RTP packets sent to subscribers", "packets_out")
        yield counter("classroom_sent_bytes", "RTP payload bytes sent to subscribers", "bytes_out")
        yield counter("classroom_received_packets_lost", "Packets lost between publishers and the SFU", "lost_in")
        yield counter("classroom_sent_packets_lost",
                      "Packets subscribers reported lost (RTCP receiver reports)", "lost_out")
        yield counter("classroom_nacks_received", "NACK requests subscribers sent the SFU", "nacks_received")
        yield counter("classroom_nacks_sent", "NACK requests the SFU sent publishers", "nacks_sent")
        yield counter("classroom_retransmissions_sent", "Packets the SFU retransmitted to subscribers",
                      "retransmissions_out")
        yield counter("classroom_retransmissions_received", "Retransmitted packets received from publishers",
                      "retransmissions_in")
        yield counter("classroom_unrepairable", "NACKed packets the SFU could not retransmit", "unrepairable_out")
        yield counter("classroom_keyframe_requests_received", "PLI/FIR keyframe requests from subscribers",
                      "keyframe_requests_received")
        yield counter("classroom_keyframe_requests_sent", "Keyframe requests the SFU sent publishers",
                      "keyframe_requests_sent")
        yield counter("classroom_keyframes_received", "Keyframes received from publishers", "keyframes_in")

        refused = CounterMetricFamily("classroom_refused_joins", "Joins refused, by reason and stage",
                                      labels=[*nk, "reason", "stage"])
        for (kind, reason, stage), n in sorted(m.refused.items()):
            refused.add_metric([node, kind, reason, stage], n)
        yield refused

        cpu = CounterMetricFamily("classroom_process_cpu_seconds", "CPU time (user + system) of the control "
                                  "process and each media worker", labels=["node", "process"])
        lag = GaugeMetricFamily("classroom_event_loop_lag_seconds", "Worst lateness of a 0.25 s timer over the "
                                "last 5 s, per process", labels=["node", "process"])
        up = GaugeMetricFamily("classroom_process_up", "1 when the process answered the last load sample",
                               labels=["node", "process"])
        worker_rooms = GaugeMetricFamily("classroom_worker_rooms", "Rooms each media worker owns",
                                         labels=["node", "process"])
        for name, p in sorted(m.processes.items()):
            cpu.add_metric([node, name], p.cpu_seconds)
            lag.add_metric([node, name], p.loop_lag_s)
            up.add_metric([node, name], int(p.responding))
            if name != "control":
                worker_rooms.add_metric([node, name], p.rooms)
        yield from (cpu, lag, up, worker_rooms)

        if m.data_dir is not None:
            with contextlib.suppress(OSError):
                usage = shutil.disk_usage(m.data_dir)
                free = GaugeMetricFamily("classroom_data_disk_free_bytes", "Free bytes on the data folder's disk",
                                         labels=["node"])
                free.add_metric([node], usage.free)
                size = GaugeMetricFamily("classroom_data_disk_size_bytes", "Size of the data folder's disk",
                                         labels=["node"])
                size.add_metric([node], usage.total)
                yield from (free, size)

        alerts = GaugeMetricFamily("classroom_alerts_firing", "Alerts firing in the product, by rule and severity",
                                   labels=["node", "rule", "severity"])
        if m.alerts_firing is not None:
            try:
                firing = dict(m.alerts_firing())
            except Exception:
                log.exception("metrics: reading the alerts firing failed")
                firing = {}
            for (rule, severity), n in sorted(firing.items()):
                alerts.add_metric([node, str(rule), str(severity)], n)
        yield alerts
        bad = CounterMetricFamily("classroom_monitoring_bad_snapshots", "Room stats snapshots refused as malformed",
                                  labels=["node"])
        bad.add_metric([node], m.bad_snapshots)
        yield bad
