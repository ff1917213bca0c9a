"""An edge's load for its heartbeats, read off its media plane's stats (the edge has no signaling or metrics)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from edge.registry import Load


def subscriptions_of(stats: Mapping[str, Any]) -> int:
    """Participants connected to the plane's rooms that are not a lesson's lead (receiving classrooms, observers)."""
    return sum(1 for room in dict(stats.get("rooms", {})).values()
               for p in dict(room.get("participants", {})).values() if p.get("role") != "lead")


def bytes_sent_of(stats: Mapping[str, Any]) -> int:
    """Bytes the plane's slots have sent, in all (each slot's `bytes_sent`)."""
    return sum(int(slot.get("bytes_sent", 0)) for room in dict(stats.get("rooms", {})).values()
               for p in dict(room.get("participants", {})).values() for slot in dict(p.get("slots", {})).values())


class LoadSampler:
    """The load an edge heartbeats: its subscriptions, the box's CPU (one-minute load average over its
    cores, 0..1) and its egress over the last sample, from the media plane's stats."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = max(1, cores or os.cpu_count() or 1)
        self.load = Load()
        self._bytes = 0
        self._at = 0.0

    def sample(self, stats: Mapping[str, Any], now: float | None = None) -> Load:
        now = time.monotonic() if now is None else now
        sent = bytes_sent_of(stats)
        egress = 0.0
        if self._at and now > self._at and sent >= self._bytes:
            egress = (sent - self._bytes) * 8 / (now - self._at) / 1e6
        self._bytes, self._at = sent, now
        cpu = min(1.0, os.getloadavg()[0] / self.cores)
        self.load = Load(subscriptions=subscriptions_of(stats), cpu=round(cpu, 3), egress_mbps=round(egress, 3))
        return self.load
