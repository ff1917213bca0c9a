"""One connection-quality score per classroom and per lead, from the SFU's view and the browser's.

The score is a mean opinion score from 1 (unusable) to 5 (excellent), in the style of LiveKit's
connection quality: an E-model (ITU-T G.107) transmission rating R from the network's delay and loss,
mapped to a MOS, then capped by what the picture itself shows (a freeze, a low frame rate, a picture
waiting for a keyframe), because a classroom whose network is clean but whose video is stuck is not
"excellent". The inputs, all over the last stats interval:

- from the SFU (RTCP receiver reports of the subscriber, the publisher's receive statistics): fraction
  of packets lost, interarrival jitter, round-trip time, NACKs, keyframe requests (PLI/FIR), whether
  the picture waits for a keyframe;
- from the page (`stats` reports: `getStats` summaries): frames decoded and dropped, frame rate,
  freezes, jitter-buffer delay, available bandwidth.

`score()` is a pure function of one `QualityInputs`; `QualityTracker` turns cumulative counters of
successive snapshots into the per-interval inputs. `clean_client_report()` is the gate for what a
page sends: unknown names dropped, numbers clamped to what a browser can report, reports that come too
often refused, so a malformed or hostile report can never corrupt attendance or the score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Levels shown on the pages (and used by the alert on poor quality)
EXCELLENT = 4.0
GOOD = 3.5
FAIR = 2.5

# what a page may report, and the range each value is clamped to; anything else is dropped
CLIENT_FIELDS: dict[str, tuple[float, float]] = {
    "frames_decoded": (0, 1e10),
    "frames_dropped": (0, 1e10),
    "fps": (0, 240),
    "width": (0, 16384),
    "height": (0, 16384),
    "packets_lost": (-1e10, 1e10),  # RTCP's cumulative lost may go negative with duplicates
    "jitter_ms": (0, 60_000),
    "freeze_count": (0, 1e9),
    "freeze_s": (0, 1e9),  # total freezes duration
    "jitter_buffer_ms": (0, 60_000),
    "bitrate_kbps": (0, 1_000_000),
    "available_kbps": (0, 10_000_000),
    "rtt_ms": (0, 60_000),
}
MIN_REPORT_INTERVAL_S = 0.5  # pages report every 2 s; faster than this is refused
FREEZE_MEMORY_S = 10.0  # a freeze caps the score for this long after it was seen


class ReportRefused(ValueError):
    """A client report that is not used, with why (logged and counted by the caller)."""


def clean_client_report(report: Mapping[str, Any], since_last_s: float | None) -> dict[str, float]:
    """The usable part of one page report, or ReportRefused.

    `since_last_s` is the time since the last accepted report of the same session (None: first)."""
    if since_last_s is not None and since_last_s < MIN_REPORT_INTERVAL_S:
        raise ReportRefused(f"reports come too often ({since_last_s:.2f} s apart; at most one per "
                            f"{MIN_REPORT_INTERVAL_S} s)")
    out: dict[str, float] = {}
    for name, (low, high) in CLIENT_FIELDS.items():
        value = report.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        number = float(value)
        if not math.isfinite(number):
            continue
        out[name] = min(high, max(low, number))
    return out


@dataclass(frozen=True, slots=True)
class QualityInputs:
    """One participant over one interval. None: not known (that input does not count)."""

    loss: float | None = None  # fraction 0..1
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    jitter_buffer_ms: float | None = None
    fps: float | None = None
    expected_fps: float | None = None  # what the source sends, when known
    frozen: bool = False  # a freeze was seen recently, or the picture is stuck
    waiting_for_keyframe: bool = False
    silent: bool = False  # nothing heard from the participant: the link is gone


@dataclass(frozen=True, slots=True)
class Quality:
    score: float  # 1..5
    level: str  # excellent | good | fair | poor | lost
    reasons: tuple[str, ...]  # what pulled the score down, worst first

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "level": self.level, "reasons": list(self.reasons)}


def r_to_mos(r: float) -> float:
    """ITU-T G.107's mapping of the transmission rating R to a mean opinion score."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def level_of(score: float) -> str:
    if score >= EXCELLENT:
        return "excellent"
    if score >= GOOD:
        return "good"
    if score >= FAIR:
        return "fair"
    return "poor"


def score(q: QualityInputs) -> Quality:
    """The score of one participant over one interval (documented in docs/monitoring.md)."""
    if q.silent:
        return Quality(1.0, "lost", ("link_lost",))
    penalties: list[tuple[float, str]] = []
    # one-way delay: half the round trip plus what the jitter buffer holds (or twice the jitter)
    buffer = q.jitter_buffer_ms if q.jitter_buffer_ms is not None else 2 * (q.jitter_ms or 0.0)
    delay = (q.rtt_ms or 0.0) / 2 + buffer + 10.0
    i_delay = 0.024 * delay + (0.11 * (delay - 177.3) if delay > 177.3 else 0.0)
    loss_pct = 100.0 * max(0.0, min(1.0, q.loss or 0.0))
    # effective equipment impairment for a codec with packet-loss robustness Bpl = 10 (Opus, VP8 with NACK)
    i_loss = 95.0 * loss_pct / (loss_pct + 10.0)
    r = 93.2 - i_delay - i_loss
    mos = r_to_mos(r)
    if i_loss >= 5:
        penalties.append((i_loss, "loss"))
    if i_delay >= 5:
        penalties.append((i_delay, "delay"))
    # the picture caps what the network earns
    if q.waiting_for_keyframe:
        mos = min(mos, 2.0)
        penalties.append((100.0, "waiting_for_keyframe"))
    if q.frozen:
        mos = min(mos, 2.0)
        penalties.append((90.0, "freeze"))
    if q.fps is not None and q.expected_fps:
        ratio = q.fps / q.expected_fps
        if ratio < 0.5:
            mos = min(mos, 1.5 + 2.0 * ratio)  # 0 fps -> 1.5, half the rate -> 2.5
            penalties.append((80.0 * (1 - ratio), "low_fps"))
        elif ratio < 0.8:
            mos = min(mos, 3.5)
            penalties.append((20.0, "low_fps"))
    mos = round(max(1.0, min(5.0, mos)), 2)
    reasons = tuple(name for _, name in sorted(penalties, key=lambda p: -p[0]))
    return Quality(mos, level_of(mos), reasons)


@dataclass
class _Counters:
    freeze_count: float | None = None
    freeze_seen: float | None = None  # monotonic time a freeze last showed
    frames_decoded: float | None = None
    frames_at: float | None = None
    lead_packets: dict[str, tuple[float, float]] = field(default_factory=dict)  # mid -> (packets, lost)


class QualityTracker:
    """Per-participant memory across snapshots: counter deltas, the last freeze."""

    def __init__(self) -> None:
        self._seen: dict[str, _Counters] = {}

    def forget(self, participant_id: str) -> None:
        self._seen.pop(participant_id, None)

    def retain(self, participant_ids: set[str]) -> None:
        for pid in set(self._seen) - participant_ids:
            del self._seen[pid]

    def subscriber(self, pid: str, media: Mapping[str, Any], client: Mapping[str, float], silent: bool,
                   now: float, expected_fps: float | None = None) -> tuple[Quality, dict[str, Any]]:
        """A receiving classroom's (or an observer's) quality, and the figures it was computed from."""
        c = self._seen.setdefault(pid, _Counters())
        slots = list((media.get("slots") or {}).values())
        video = [s for s in slots if s.get("kind") == "video" and s.get("source") is not None]
        losses = [float(s.get("fraction_lost") or 0.0) for s in slots if s.get("source") is not None]
        jitters = [float(s["jitter_ms"]) for s in video if s.get("jitter_ms") is not None]
        rtts = [float(s["rtt_ms"]) for s in slots if s.get("rtt_ms") is not None]
        video_live = any(bool(s.get("source_on_air")) for s in video)
        frozen = self._freeze(c, client, now, video_live)
        q = QualityInputs(
            loss=max(losses, default=None),
            jitter_ms=max(jitters, default=None) if "jitter_ms" not in client else client["jitter_ms"],
            rtt_ms=max(rtts, default=None),
            jitter_buffer_ms=client.get("jitter_buffer_ms"),
            fps=client.get("fps") if video_live else None,
            expected_fps=expected_fps,
            frozen=frozen,
            waiting_for_keyframe=any(bool(s.get("waiting_for_keyframe")) for s in video),
            silent=silent,
        )
        figures = {
            "loss": None if q.loss is None else round(q.loss, 4),
            "jitter_ms": None if q.jitter_ms is None else round(q.jitter_ms, 1),
            "rtt_ms": None if q.rtt_ms is None else round(q.rtt_ms, 1),
            "fps": client.get("fps"),
            "freezes": int(client.get("freeze_count", 0)),
            "nacks": sum(int(s.get("nacks_received") or 0) for s in slots),
            "keyframe_requests": sum(int(s.get("keyframe_requests_received") or 0) for s in slots),
            "waiting_for_keyframe": q.waiting_for_keyframe,
            "available_kbps": client.get("available_kbps"),
        }
        return score(q), figures

    def publisher(self, pid: str, media: Mapping[str, Any], silent: bool) -> tuple[Quality, dict[str, Any]]:
        """The lead's uplink as the SFU receives it: loss over the interval and jitter of each track."""
        c = self._seen.setdefault(pid, _Counters())
        published = media.get("published") or {}
        losses: list[float] = []
        jitters: list[float] = []
        for name, t in published.items():
            if not t.get("on_air"):
                continue
            packets, lost = float(t.get("packets") or 0), float(t.get("packets_lost") or 0)
            before = c.lead_packets.get(name)
            c.lead_packets[name] = (packets, lost)
            if before is not None and packets >= before[0] and lost >= before[1]:
                got, missed = packets - before[0], lost - before[1]
                if got + missed > 0:
                    losses.append(missed / (got + missed))
            if t.get("jitter_ms") is not None:
                jitters.append(float(t["jitter_ms"]))
        q = QualityInputs(loss=max(losses, default=None), jitter_ms=max(jitters, default=None),
                          silent=silent)
        figures = {"loss": None if q.loss is None else round(q.loss, 4),
                   "jitter_ms": None if q.jitter_ms is None else round(q.jitter_ms, 1)}
        return score(q), figures

    @staticmethod
    def _freeze(c: _Counters, client: Mapping[str, float], now: float, video_live: bool) -> bool:
        count = client.get("freeze_count")
        if count is not None:
            if c.freeze_count is not None and count > c.freeze_count:
                c.freeze_seen = now
            c.freeze_count = count  # a lower count is a reloaded page: a new baseline, not a freeze
        frames = client.get("frames_decoded")
        if frames is not None:
            stuck = c.frames_decoded is not None and frames == c.frames_decoded and client.get("fps") == 0
            if stuck and video_live:
                c.freeze_seen = now  # the teacher's camera is on air, and not one new frame since the last report
            c.frames_decoded = frames
        return c.freeze_seen is not None and now - c.freeze_seen < FREEZE_MEMORY_S
