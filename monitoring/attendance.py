"""The attendance timeline of one lesson: pure rules over what the hub hands on, no I/O.

Each stats tick says which participants are attending (the crediting rule is `credited_key`: a
receiving classroom of the lesson whose media is connected and whose link is not lost; a member of
the lesson's research community watching on their own device; the lead while on air). A run of ticks
in which a participant is attending is one *segment*; a tick in which it is not ends the segment, and
the presence marks the hub hands on (joined, link lost, back, left) say why it ended and are kept as
the timeline's events.

Time: durations come from the monotonic clock only. A tick credits the monotonic time since the
previous tick, at most `max_step_s` (two stats intervals: a stall never inflates attendance). Where a
segment lies is a *position*: the wall clock at the timeline's first tick in this process plus
monotonic time since, so a wall clock that steps back or forward moves no segment and credits
nothing twice; after a restart positions start again from the wall clock, never before the last one
recorded. A segment therefore never credits more seconds than it spans, and no two segments of a
participant overlap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

LEAD = "lead"


class Opened(StrEnum):
    JOINED = "joined"  # a participant's first segment
    REJOINED = "rejoined"  # a later one: it was here, went, and is back
    ON_AIR = "on_air"  # the lead's segments


class Closed(StrEnum):
    DROPPED = "dropped"  # its link was lost or its media went away
    LEFT = "left"  # it left on purpose
    OFF_AIR = "off_air"  # the lead stopped broadcasting
    CLOSED = "closed"  # the lesson's window closed (settlement)
    INTERRUPTED = "interrupted"  # the server stopped or restarted


class Mark(StrEnum):
    """Presence changes the hub hands on, kept as the timeline's events."""

    JOINED = "joined"
    LOST = "lost"  # its link dropped (silent on socket and media)
    BACK = "back"  # its link is back
    LEFT = "left"
    DEPARTED = "departed"  # its socket closed without a goodbye
    ON_AIR = "on_air"
    OFF_AIR = "off_air"


def classroom_key(classroom_id: int) -> str:
    return f"classroom-{classroom_id}"


def teacher_key(teacher_id: int) -> str:
    return f"teacher-{teacher_id}"


def parse_key(key: str) -> tuple[str, int | None]:
    """`classroom-12` -> ("classroom", 12); `lead` -> ("lead", None). Raises ValueError on anything else."""
    if key == LEAD:
        return LEAD, None
    kind, _, tail = key.partition("-")
    if kind in ("classroom", "teacher") and tail.isdigit():
        return kind, int(tail)
    raise ValueError(f"not an attendance participant: {key!r}")


@dataclass(frozen=True)
class LessonRule:
    """What crediting needs to know about the lesson."""

    lesson_id: int
    receivers: frozenset[int]
    community_members: frozenset[int] = frozenset()  # empty: the lesson has no research community
    scheduled_s: float = 0.0  # the lesson's scheduled duration (end - start)


@dataclass(frozen=True)
class Sample:
    """One participant in one stats tick, as the SFU and the signaling side see it."""

    participant_id: str  # the hub's id: classroom-3, observer-ab12…, lead-7
    role: str  # receiver, observer, lead
    connection: str | None  # the SFU's connection state ("connected", …)
    link: str | None  # signaling's LinkState value (ok, unknown, lost); None: no session
    classroom_id: int | None = None
    teacher_id: int | None = None
    quality: float | None = None  # 1-5, from monitoring.quality; None: not known


def credited_key(rule: LessonRule, s: Sample) -> str | None:
    """Whose attendance this sample credits, or None: the rule the settlement has always used."""
    if s.connection != "connected" or s.link == "lost":
        return None  # a classroom whose cable is out is not attending, whatever ICE still believes
    if s.role == "observer":
        # a research-community member watching a master lesson on their own device
        if s.teacher_id is not None and s.teacher_id in rule.community_members:
            return teacher_key(s.teacher_id)
        return None
    if s.role != "receiver" or not s.participant_id.startswith("classroom-"):
        return None
    tail = s.participant_id.split("-", 1)[1]
    if tail.isdigit() and int(tail) in rule.receivers:
        return classroom_key(int(tail))
    return None


def valid_quality(q: object) -> float | None:
    """A quality score 1-5, or None when it is not one (the caller reports it)."""
    if isinstance(q, bool) or not isinstance(q, int | float) or not math.isfinite(q) or not 1.0 <= q <= 5.0:
        return None
    return float(q)


@dataclass
class Segment:
    participant: str
    seq: int
    start: float  # position, epoch seconds
    end: float
    seconds: float = 0.0  # credited (monotonic) seconds, never more than end - start
    opened_by: Opened = Opened.JOINED
    closed_by: Closed | None = None  # None: still going
    quality_min: float | None = None
    quality_sum: float = 0.0
    quality_n: int = 0

    @property
    def quality_mean(self) -> float | None:
        return self.quality_sum / self.quality_n if self.quality_n else None


@dataclass(frozen=True)
class Event:
    seq: int
    at: float  # position, epoch seconds
    participant: str
    what: Mark


@dataclass
class Timeline:
    rule: LessonRule
    max_step_s: float  # the most one tick credits (two stats intervals)
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    last_at: float | None = None  # the latest position of a tick or an event
    closed: bool = False
    version: int = 0  # moves on every change: what storage has written is compared with it
    floor: float | None = None  # the latest position recorded before this process (a restart)
    _anchor: tuple[float, float] | None = None  # (position, monotonic time) of the first in this process
    _tick_mono: float | None = None  # monotonic time of the previous tick in this process
    _attending: set[str] = field(default_factory=set)  # credited at the previous tick
    _gone: dict[str, Closed] = field(default_factory=dict)  # why a participant's segment would end

    # ---- positions -----------------------------------------------------------------------------
    def _position(self, wall: float, mono: float) -> float:
        """Where `now` lies: the wall clock at the first position in this process (never before what was
        recorded before it), then monotonic time since."""
        if self._anchor is None:
            self._anchor = (wall if self.floor is None else max(wall, self.floor), mono)
        at = self._anchor[0] + max(0.0, mono - self._anchor[1])
        self.last_at = at if self.last_at is None else max(self.last_at, at)
        return at

    # ---- what the hub hands on -----------------------------------------------------------------
    def mark(self, participant: str, what: Mark, wall: float, mono: float) -> Event | None:
        """A presence change; it decides how the participant's current segment, if it ends, is closed."""
        if self.closed:
            return None
        at = self._position(wall, mono)
        if what == Mark.LEFT:
            self._gone[participant] = Closed.LEFT
        elif what in (Mark.LOST, Mark.DEPARTED):
            self._gone[participant] = Closed.DROPPED
        elif what in (Mark.JOINED, Mark.BACK):
            self._gone.pop(participant, None)
        event = Event(len(self.events), at, participant, what)
        self.events.append(event)
        self.version += 1
        return event

    def tick(
        self, wall: float, mono: float, lead_on_air: bool, attending: Mapping[str, float | None]
    ) -> float:
        """One stats tick: `attending` maps each credited participant key to its quality (or None).

        Returns the seconds this tick credited to each attending participant."""
        if self.closed:
            return 0.0
        at = self._position(wall, mono)
        if self._tick_mono is None:
            # the first tick in this process stands for one interval before it, never before what was recorded
            credit = self.max_step_s / 2 if self.floor is None else min(self.max_step_s / 2, at - self.floor)
        else:
            credit = min(mono - self._tick_mono, self.max_step_s)
        credit = max(0.0, credit)
        self._tick_mono = mono
        now = dict(attending)
        if lead_on_air:
            now[LEAD] = None
        for key in self._attending - set(now):
            self._end(key, Closed.OFF_AIR if key == LEAD else self._gone.get(key, Closed.DROPPED))
        for key, quality in now.items():
            segs = self.segments.setdefault(key, [])
            current = segs[-1] if segs and segs[-1].closed_by is None else None
            if current is None:
                opened = Opened.ON_AIR if key == LEAD else Opened.REJOINED if segs else Opened.JOINED
                current = Segment(key, len(segs), at - credit, at, opened_by=opened)
                segs.append(current)
            current.end = at
            current.seconds += credit
            q = valid_quality(quality)
            if q is not None:
                current.quality_min = q if current.quality_min is None else min(current.quality_min, q)
                current.quality_sum += q
                current.quality_n += 1
        self._attending = set(now)
        self.version += 1
        return credit

    def _end(self, key: str, why: Closed) -> None:
        segs = self.segments.get(key)
        if segs and segs[-1].closed_by is None:
            segs[-1].closed_by = why

    def close(self, why: Closed = Closed.CLOSED) -> None:
        """The lesson's window closed (or the server stops): every segment still going ends here."""
        if self.closed:
            return
        for key in list(self.segments):
            self._end(key, why)
        self._attending.clear()
        self.closed = why == Closed.CLOSED
        self.version += 1

    # ---- what it adds up to ----------------------------------------------------------------------
    def seconds(self, key: str) -> float:
        return sum(s.seconds for s in self.segments.get(key, ()))

    def minutes(self) -> tuple[float, dict[int, float], dict[int, float]]:
        """The evidence: lead broadcast minutes, classroom id -> minutes, community teacher id -> minutes."""
        rooms: dict[int, float] = {}
        teachers: dict[int, float] = {}
        for key in self.segments:
            if key == LEAD:
                continue
            kind, ref = parse_key(key)
            assert ref is not None
            (rooms if kind == "classroom" else teachers)[ref] = round(self.seconds(key) / 60.0, 4)
        return round(self.seconds(LEAD) / 60.0, 4), rooms, teachers

    def share(self, key: str) -> float:
        """Minutes present as a share of the scheduled duration, at most 1 (the window is longer)."""
        if self.rule.scheduled_s <= 0:
            return 0.0
        return round(min(1.0, self.seconds(key) / self.rule.scheduled_s), 4)


def restored(rule: LessonRule, max_step_s: float, segments: Iterable[Segment], events: Iterable[Event],
             last_at: float | None, closed: bool, continuing: bool = True) -> Timeline:
    """A timeline from storage. To continue it in this process (`continuing`), segments that were going
    when the last process stopped end as interrupted (the next attending tick starts a new one); read
    back only, they are shown as going."""
    t = Timeline(rule, max_step_s, last_at=last_at, closed=closed)
    for seg in sorted(segments, key=lambda s: (s.participant, s.seq)):
        t.segments.setdefault(seg.participant, []).append(seg)
    t.events = sorted(events, key=lambda e: e.seq)
    for segs in t.segments.values():
        if continuing and segs[-1].closed_by is None:
            segs[-1].closed_by = Closed.INTERRUPTED
    ends = [s.end for segs in t.segments.values() for s in segs] + [e.at for e in t.events]
    ends += [last_at] if last_at is not None else []
    t.last_at = t.floor = max(ends) if ends else None
    return t
