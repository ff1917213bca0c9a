"""What monitoring costs: the load it adds to the SFU (`classroom bench fanout --monitoring on|both`) and
one `/metrics` scrape with many live lessons (`classroom bench metrics`). Programs that print figures;
see docs/benchmarks.md.

    classroom bench metrics --lessons 40 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from media.api import MediaPlane
from monitoring.alerts import AlertConfig
from monitoring.config import MonitoringConfig
from monitoring.metrics import Metrics, RoomFacts
from monitoring.monitor import Monitor
from monitoring.observation import LessonSample, ParticipantSample
from scheduler.db import Database
from scheduler.model import Kind

STATS_S = 1.0  # the hub's stats interval
SCRAPE_S = 5.0  # a Prometheus that scrapes every 5 s (the shipped config scrapes every 15 s)


def sample_of_snapshot(lesson_id: int, kind: str, snapshot: Mapping[str, Any], starts_at: float,
                       ends_at: float) -> LessonSample:
    """What the hub would hand monitoring for a room whose every participant's link is fine."""
    parts = tuple(
        ParticipantSample(pid, str(p.get("role", "")), pid, None, "ok", p, {})
        for pid, p in (snapshot.get("participants") or {}).items()
    )
    live = frozenset({"camera"}) if snapshot.get("lead_on_air") else frozenset()
    return LessonSample(
        lesson_id=lesson_id, kind=kind, subject="bench", lead_name="lead", county_ids=frozenset(),
        region_ids=frozenset(), starts_at=starts_at, ends_at=ends_at, wall=time.time(), mono=time.monotonic(),
        lead_state="on_air" if live else "off_air", lead_expected=live, lead_live=live, talkback=None,
        receivers={}, absent={}, participants=parts, snapshot=snapshot,
    )


class MonitoringLoad:
    """The monitoring work of one room, as `classroom serve` does it: the room's stats snapshot every
    second, handed to `monitoring_tick`, and a /metrics scrape every few seconds. `monitoring_tick` is
    the one place to add what else monitoring does per snapshot (quality, attendance)."""

    def __init__(self, room_id: str, kind: str = Kind.SPECIALISED.value) -> None:
        self.room_id = room_id
        now = time.time()
        self.facts = RoomFacts(kind, now, now + 3600)
        self.metrics = Metrics(MonitoringConfig(node_name="bench"))
        # quality, live charts and alert rules as the server runs them (the alert log is not written here)
        self.monitor = Monitor(AlertConfig(), Database(":memory:"), Path("."), "bench")
        self.cpu_s = 0.0  # this thread's CPU spent on monitoring (snapshots included)
        self.ticks = 0
        self.scrapes = 0
        self.scrape_bytes = 0
        self.started = time.monotonic()

    def monitoring_tick(self, snapshot: Mapping[str, Any]) -> None:
        self.metrics.observe(self.room_id, self.facts, snapshot)
        self.monitor.sample(sample_of_snapshot(1, self.facts.kind, snapshot, self.facts.start, self.facts.end))
        self.monitor.evaluate_now()

    def scrape(self) -> int:
        return len(self.metrics.render())

    async def run(self, plane: MediaPlane) -> None:
        next_scrape = time.monotonic() + SCRAPE_S
        while True:
            await asyncio.sleep(STATS_S)
            t0 = time.thread_time()
            snapshot = await plane.stats(self.room_id)
            self.monitoring_tick(snapshot)
            self.ticks += 1
            if time.monotonic() >= next_scrape:
                next_scrape += SCRAPE_S
                self.scrape_bytes = self.scrape()
                self.scrapes += 1
            self.cpu_s += time.thread_time() - t0

    def figures(self) -> dict[str, Any]:
        elapsed = max(1e-9, time.monotonic() - self.started)
        return {"monitoring_cpu_cores": round(self.cpu_s / elapsed, 6), "ticks": self.ticks,
                "scrapes": self.scrapes, "scrape_bytes": self.scrape_bytes}


# -- classroom bench metrics -------------------------------------------------------------------------

RECEIVERS = {Kind.SPECIALISED.value: 4, Kind.MASTER.value: 6, Kind.FAMOUS_SCHOOL.value: 20}
OBSERVERS = {Kind.SPECIALISED.value: 0, Kind.MASTER.value: 10, Kind.FAMOUS_SCHOOL.value: 2}


def _track(n: int, ssrc: int) -> dict[str, Any]:
    return {"mid": "0", "ssrc": ssrc, "on_air": True, "packets": 200 * n, "bytes": 200_000 * n,
            "packets_lost": n, "jitter_ms": 3.2, "nacks_sent": n, "retransmissions_received": n // 2,
            "keyframes": 1 + n // 10, "keyframe_requests": 2, "dropped": 0, "oversized": 0, "restarts": 0,
            "subscribers": 20, "fanout_us_per_packet": 14.0, "keyframe_packets": 40}


def _slot(slot: str, n: int, ssrc: int, bound: bool = True) -> dict[str, Any]:
    return {"slot": slot, "kind": "audio" if "audio" in slot else "video", "ssrc": ssrc,
            "source": {"participant_id": "lead-1", "track": "camera"} if bound else None,
            "source_on_air": bound, "waiting_for_keyframe": False, "codec_mismatch": False,
            "packets_sent": 200 * n if bound else 0, "bytes_sent": 200_000 * n if bound else 0, "switches": 1,
            "nacks_received": n, "retransmitted": n, "unrepairable": 0, "over_budget": 0,
            "keyframe_requests_received": 1, "fraction_lost": 0.01, "packets_lost": n, "jitter_ms": 4.1,
            "rtt_ms": 35.0, "remb_bps": 2_500_000}


def synthetic_snapshot(lesson: int, kind: str, tick: int) -> dict[str, Any]:
    """A room snapshot of the size a live lesson of `kind` has (every key `Room.snapshot` gives)."""
    base = lesson * 10_000

    def peer(role: str, published: dict[str, Any], slots: dict[str, Any]) -> dict[str, Any]:
        return {"role": role, "connection": "connected", "published": published, "slots": slots,
                "rtcp_packets": 50 * tick, "transport_feedback": 0, "bad_rtp": 0, "unknown_rtp": 0, "errors": 0,
                "heard_ago_s": 0.2, "rate_limited": 0, "malformed_stun": 0, "bad_size_datagrams": 0}

    lead_slots = {"3": _slot("talkback_camera", tick, base + 3, False), "4": _slot("talkback_audio", tick, base + 4,
                                                                                    False)}
    lead_slots.update({str(5 + i): _slot("preview", tick, base + 5 + i) for i in range(6)})
    participants = {"lead-1": peer("lead", {"camera": _track(tick, base + 1), "audio": _track(tick, base + 2),
                                            "screen": _track(tick, base + 3)}, lead_slots)}
    names = ("camera", "audio", "screen", "talkback_camera", "talkback_audio")
    for i in range(RECEIVERS[kind]):
        slots = {str(m): _slot(name, tick, base + 100 + 10 * i + m, m < 3) for m, name in enumerate(names)}
        participants[f"classroom-{base + i}"] = peer("receiver", {"camera": _track(tick, base + 500 + i)}, slots)
    for i in range(OBSERVERS[kind]):
        slots = {str(m): _slot(name, tick, base + 1000 + 10 * i + m, m < 3) for m, name in enumerate(names)}
        participants[f"observer-{base + i}"] = peer("observer", {}, slots)
    return {"room_id": f"lesson-{lesson}", "lead_id": "lead-1", "lead_on_air": True,
            "talkback": {"participant_id": None, "to_all": False}, "preview": [], "refused_joins": 0,
            "participants": participants}


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3)}


async def bench_metrics(lessons: int, scrapes: int) -> dict[str, Any]:
    kinds = [k.value for k in Kind]
    metrics = Metrics(MonitoringConfig(node_name="bench"))
    now = time.time()
    rooms = [(f"lesson-{i}", RoomFacts(kinds[i % 3], now - 600, now + 1800, tuple(range(i * 10_000, i * 10_000 + 3))))
             for i in range(lessons)]
    snapshots = {room: [synthetic_snapshot(i, facts.kind, t) for t in range(1, 4)]
                 for i, (room, facts) in enumerate(rooms)}
    tick_s = []
    for t in range(3):  # three seconds of stats: counters grow, bit rates are known
        t0 = time.perf_counter()
        for room, facts in rooms:
            metrics.observe(room, facts, snapshots[room][t])
        tick_s.append(time.perf_counter() - t0)
    render_s = []
    for _ in range(scrapes):
        t0 = time.perf_counter()
        metrics.render()
        render_s.append(time.perf_counter() - t0)

    async def trivial(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics.handle)
    app.router.add_get("/trivial", trivial)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    http: dict[str, list[float]] = {"/metrics": [], "/trivial": []}
    size = 0
    try:
        async with ClientSession() as session:
            for _ in range(scrapes):
                for path in http:
                    t0 = time.perf_counter()
                    async with session.get(f"http://127.0.0.1:{port}{path}") as r:
                        body = await r.read()
                    http[path].append(time.perf_counter() - t0)
                    if path == "/metrics":
                        assert r.status == 200, body[:200]
                        size = len(body)
    finally:
        await runner.cleanup()
    subscribers = sum(len(s[0]["participants"]) - 1 for s in snapshots.values())
    return {
        "lessons": lessons,
        "subscribers": subscribers,
        "scrape_bytes": size,
        "scrape_lines": metrics.render().count(b"\n"),
        "scrape_http": _ms(http["/metrics"]),
        "baseline_trivial_http": _ms(http["/trivial"]),
        "render_in_process": _ms(render_s),
        "observe_all_rooms_per_second": _ms(tick_s),
        "scrapes": scrapes,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="classroom bench metrics",
                                     description="time and size of one /metrics scrape with many live lessons")
    parser.add_argument("--lessons", type=int, default=40, help="live lessons (default 40)")
    parser.add_argument("--scrapes", type=int, default=50, help="scrapes to time (default 50)")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    if args.lessons < 1 or args.scrapes < 1:
        print("bench metrics: --lessons and --scrapes must be at least 1", file=sys.stderr)
        return 2
    result = asyncio.run(bench_metrics(args.lessons, args.scrapes))
    result["command"] = " ".join(["classroom bench metrics", *argv])
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
