"""The last ten minutes of each participant's figures, for the technician's small live charts.

Pure bookkeeping: cumulative byte counters of successive room snapshots become bitrates; one point
per `step_s` (the mean of the samples inside it) is kept for `window_s`. A counter that goes down (a
peer that reconnected and started again from zero) starts a new baseline instead of a negative rate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("kbps_in", "kbps_out", "loss", "rtt_ms", "fps", "score")


def bytes_in(media: Mapping[str, Any]) -> int:
    """What the SFU received from this participant (its published tracks)."""
    return sum(int(t.get("bytes") or 0) for t in (media.get("published") or {}).values())


def bytes_out(media: Mapping[str, Any]) -> int:
    """What the SFU sent this participant (its slots)."""
    return sum(int(s.get("bytes_sent") or 0) for s in (media.get("slots") or {}).values())


@dataclass
class _Rate:
    total: int | None = None
    at: float | None = None

    def update(self, total: int, mono: float) -> float | None:
        """kbit/s since the last call (None on the first call or after a reset)."""
        before, at = self.total, self.at
        self.total, self.at = total, mono
        if before is None or at is None or total < before or mono <= at:
            return None
        return (total - before) * 8 / 1000 / (mono - at)


@dataclass
class Series:
    step_s: float = 5.0
    window_s: float = 600.0
    points: deque[tuple[float, dict[str, float | None]]] = field(default_factory=deque)
    _bucket: float | None = None
    _sums: dict[str, tuple[float, int]] = field(default_factory=dict)
    _rate_in: _Rate = field(default_factory=_Rate)
    _rate_out: _Rate = field(default_factory=_Rate)

    def rates(self, media: Mapping[str, Any], mono: float) -> tuple[float | None, float | None]:
        return self._rate_in.update(bytes_in(media), mono), self._rate_out.update(bytes_out(media), mono)

    def add(self, wall: float, figures: Mapping[str, float | None]) -> bool:
        """Add one sample; True when a new point was completed."""
        bucket = wall - wall % self.step_s
        completed = False
        if self._bucket is not None and bucket != self._bucket:
            self._close()
            completed = True
        self._bucket = bucket
        for name in FIELDS:
            value = figures.get(name)
            if value is None:
                continue
            total, count = self._sums.get(name, (0.0, 0))
            self._sums[name] = (total + float(value), count + 1)
        return completed

    def _close(self) -> None:
        if self._bucket is None:
            return
        point = {name: round(t / n, 3) if n else None for name, (t, n) in self._sums.items()}
        self.points.append((self._bucket, {name: point.get(name) for name in FIELDS}))
        self._sums = {}
        while self.points and (self.points[-1][0] - self.points[0][0] >= self.window_s
                               or self.points[0][0] > self.points[-1][0]):
            self.points.popleft()  # the window, and a wall clock that stepped back

    def to_json(self) -> dict[str, Any]:
        return {"step_s": self.step_s, "t": [p[0] for p in self.points],
                **{name: [p[1].get(name) for p in self.points] for name in FIELDS}}

    def last(self) -> dict[str, Any] | None:
        if not self.points:
            return None
        t, values = self.points[-1]
        return {"t": t, **values}
