"""An edge's load for its heartbeats, read off its media plane's stats (the edge has no signaling or metrics)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from edge.registry import Load
from media.workers import LoopLag


def subscriptions_of(stats: Mapping[str, Any]) -> int:
    """Participants connected to the plane's rooms that are not a lesson's lead (receiving classrooms, observers)."""
    return sum(1 for room in dict(stats.get("rooms", {})).values()
               for p in dict(room.get("participants", {})).values() if p.get("role") != "lead")


def lessons_of(stats: Mapping[str, Any]) -> tuple[int, ...]:
    """The lessons whose rooms (or copies of them) are on the plane, from the rooms' ids (`lesson-<id>`, as
    signaling names them; a replay's room is its lesson's too)."""
    ids = set()
    for room_id in dict(stats.get("rooms", {})):
        head, _, tail = str(room_id).partition("-")
        if head == "lesson" and tail.isdigit():
            ids.add(int(tail))
    return tuple(sorted(ids))


def bytes_sent_of(stats: Mapping[str, Any]) -> int:
    """Bytes the plane's slots have sent, in all (each slot's `bytes_sent`)."""
    return sum(int(slot.get("bytes_sent", 0)) for room in dict(stats.get("rooms", {})).values()
               for p in dict(room.get("participants", {})).values() for slot in dict(p.get("slots", {})).values())


def cpu_seconds_of(stats: Mapping[str, Any]) -> float:
    """CPU seconds of this process and of the plane's worker processes (their `cpu_seconds`)."""
    workers = stats.get("workers") or []
    return time.process_time() + sum(float(w.get("cpu_seconds") or 0.0) for w in workers)


def loop_lag_s_of(stats: Mapping[str, Any]) -> float:
    """The worst recent event-loop lag of the plane's worker processes (their `loop_lag_s`), 0 without any."""
    return max((float(w.get("loop_lag_s") or 0.0) for w in stats.get("workers") or []), default=0.0)


class LoadSampler:
    """The load an edge heartbeats, from its media plane's stats: its subscriptions, the CPU of its own
    processes (this one and its workers) over the last sample as a share of the box's cores (0..1; not
    the box's load average, which other programs on the box would fill), its egress, and the worst recent
    event-loop lag of this process (`lag`, when given) and its workers."""

    def __init__(self, cores: int | None = None, lag: LoopLag | None = None) -> None:
        self.cores = max(1, cores or os.cpu_count() or 1)
        self.lag = lag
        self.load = Load()
        self._bytes = 0
        self._cpu = 0.0
        self._at = 0.0

    def sample(self, stats: Mapping[str, Any], now: float | None = None) -> Load:
        now = time.monotonic() if now is None else now
        sent, cpu_s = bytes_sent_of(stats), cpu_seconds_of(stats)
        egress = cpu = 0.0
        if self._at and now > self._at:
            elapsed = now - self._at
            egress = max(0, sent - self._bytes) * 8 / elapsed / 1e6
            cpu = min(1.0, max(0.0, cpu_s - self._cpu) / elapsed / self.cores)
        self._bytes, self._cpu, self._at = sent, cpu_s, now
        lag_s = max(self.lag.worst() if self.lag is not None else 0.0, loop_lag_s_of(stats))
        self.load = Load(subscriptions=subscriptions_of(stats), cpu=round(cpu, 3), egress_mbps=round(egress, 3),
                         lessons=lessons_of(stats), loop_lag_ms=round(lag_s * 1000.0, 1))
        return self.load
