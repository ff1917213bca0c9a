"""`classroom bench cascade --peers counting`: the cascade at the issue's sizes, with peers that count.

The nodes are the same as in `edge.bench_cascade` (redis-server, a control node with no capacity of its
own, two edges, each a process). The leads publish the cached pre-encoded clip (`--video-kbps`, 640×360
at 15 frames a second) and the classrooms count their packets without decoding (`edge.bench_seats`), in
child processes of their own: one for the leads, `--peer-procs` for the classrooms and observers
(nice 10, so the apparatus gives the nodes it measures the CPU first). Every peer joins with a join
token over the control node's WebSocket and pings as the pages do.

What changes against the decoding peers, so that figures of the two are not mixed up:
- the failover times run from the kill to the first keyframe packet of the rejoined classroom's new
  peer (not to a decoded frame);
- latency is timed on kernel receive timestamps (`SO_TIMESTAMPNS`), so the classrooms' own scheduling
  is not in it: `relay_added_latency_*` pairs each camera packet's arrival at an edge's classroom with
  its arrival at an observer of the same lesson on the control node; `same_path_spread_*` two observers;
- `loss` is over the window's sequence numbers of camera and sound (what was never received, after
  NACKs), and `udp_receive_errors` says how many datagrams the kernel dropped at full sockets meanwhile
  (nodes and peers alike: on two cores it tells the apparatus falling behind from the nodes losing).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

from edge.bench_cascade import (
    REFERENCE_LESSONS,
    REFERENCES,
    Nodes,
    latency_figures,
    lesson_media,
    link_counts,
    stream_ratios,
    streams_figures,
)
from edge.bench_seats import SeatSpec, seats_main
from media.bench import _spawn, cpu_seconds
from media.bench_clip import ClipSpec
from media.bench_link import ChildHandle, stop_children
from signaling.bench_join import percentile
from signaling.trial import AdminApi, build_world

log = logging.getLogger(__name__)

PAIR_WITHIN_S = 0.5  # the clip loops every 10 s: the same packet seen twice within this is one sending
JOINS_AT_ONCE = 8  # joins in flight per peer process
LEAD_SECONDS = 3600.0  # a lead stops sending after this (a bound; the bench ends long before)


def udp_receive_errors() -> int:
    """Datagrams this network namespace's kernel dropped at full receive buffers so far."""
    with open("/proc/net/snmp") as fh:
        rows = [line.split() for line in fh if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")]) if len(rows) >= 2 else 0


def paired_ms(seen: list[tuple[bytes, float]], reference: list[tuple[bytes, float]]) -> list[float]:
    """For each packet both saw (its payload key, arrivals within PAIR_WITHIN_S): how much later `seen`
    got it, in ms."""
    by_key: dict[bytes, list[float]] = {}
    for key, at in reference:
        by_key.setdefault(key, []).append(at)
    for times in by_key.values():
        times.sort()
    out = []
    for key, at in seen:
        times = by_key.get(key)
        if not times:
            continue
        i = bisect.bisect_left(times, at)
        nearest = min((times[j] for j in (i - 1, i) if 0 <= j < len(times)), key=lambda t: abs(t - at))
        if abs(nearest - at) < PAIR_WITHIN_S:
            out.append((at - nearest) * 1000)
    return out


class NodeLag:
    """The worst event-loop lag each node heartbeated (its `loop_lag_ms`, the worst of its processes over
    5 s), read off the technicians' nodes list every second, kept per phase of the run (`take`)."""

    def __init__(self, api: AdminApi) -> None:
        self.api = api
        self.worst: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._watch())

    async def _read(self) -> None:
        try:
            for n in (await self.api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]:
                name = "control" if n["node"]["role"] == "origin" else n["node"]["id"]
                self.worst[name] = max(self.worst.get(name, 0.0), float(n["load"].get("loop_lag_ms") or 0.0))
        except Exception as exc:  # a node list that does not come is a figure missing, not a failed run
            log.warning("reading the nodes' loop lag failed: %s", exc)

    async def _watch(self) -> None:
        while True:
            await self._read()
            await asyncio.sleep(1.0)

    async def take(self) -> dict[str, float]:
        """The phase's worst, read once more at its end (a phase can be shorter than a second)."""
        await self._read()
        worst, self.worst = self.worst, {}
        return {k: round(v) for k, v in sorted(worst.items())}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def phase_lag(nodes: NodeLag, answers: list[dict[str, Any]]) -> dict[str, float]:
    """One phase's worst loop lags in ms: each node's, and the classrooms' processes' (the apparatus)."""
    apparatus = max((float(a.get("lag_s") or 0) for a in answers), default=0.0)
    return {**await nodes.take(), "classrooms": round(1000 * apparatus)}


async def _all(children: list[ChildHandle], cmd: str, want: str, timeout: float,
               **payload: Any) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(asyncio.to_thread(c.request, cmd, want, timeout, **payload)
                                       for c in children)))


async def run(folder: Path, lessons: int, classrooms: int, big: int, window: float, timeout: float, peer_procs: int,
              video_kbps: int) -> dict[str, Any]:
    nodes = Nodes(folder)
    children: list[ChildHandle] = []
    lag: NodeLag | None = None
    try:
        total = lessons * classrooms + big
        # an edge is one process here (`--media local`): it admits every classroom it is given
        api = await nodes.start(total, big, {"CLASSROOM_MEDIA__MAX_SUBSCRIPTIONS_PER_WORKER": str(total + 50)})
        sizes = [classrooms] * lessons + ([big] if big else [])
        worlds = [await build_world(api, nodes.tz, receivers=n) for n in sizes]
        log.info("%d lessons of %d classrooms made", len(worlds), total)
        lag = NodeLag(api)
        lag.start()
        lesson_ids = [w.lesson_ids[0] for w in worlds]
        timed = set(lesson_ids[:REFERENCE_LESSONS])
        receivers = [SeatSpec(f"classroom-{c}", w.lesson_ids[0], "receiver", c, w.lesson_ids[0] in timed)
                     for w in worlds for c in w.receiving_classroom_ids]
        observers = [SeatSpec(f"observer-{lesson}-{i}", lesson, "observer", None, True)
                     for lesson in sorted(timed) for i in range(REFERENCES)]
        ctx = multiprocessing.get_context("spawn")
        spec = ClipSpec(width=640, height=360, fps=15, video_bitrate=video_kbps * 1000)
        common = (nodes.ws_url, nodes.base, api.headers["Authorization"].removeprefix("Bearer "))
        leads = _spawn(ctx, "leads", seats_main, *common, [SeatSpec(f"lead-{x}", x, "lead") for x in lesson_ids], spec,
                       LEAD_SECONDS, JOINS_AT_ONCE, 0)
        children.append(leads)
        joined = await asyncio.to_thread(leads.request, "join", "joined", timeout + 120)  # + encoding the clip once
        log.info("%d leads on air", len(lesson_ids))
        if joined["errors"]:
            raise RuntimeError(f"leads did not join: {joined['errors']}")
        watchers = receivers + observers
        groups = [watchers[i::peer_procs] for i in range(peer_procs) if watchers[i::peer_procs]]
        peers = [_spawn(ctx, f"classrooms-{i}", seats_main, *common, group, spec, LEAD_SECONDS, JOINS_AT_ONCE, 10)
                 for i, group in enumerate(groups)]
        children += peers
        join_started = time.monotonic()
        joined_all = await _all(peers, "join", "joined", timeout * 4)
        errors = {k: v for r in joined_all for k, v in r["errors"].items()}
        if errors:
            raise RuntimeError(f"{len(errors)} peers did not join, e.g. {sorted(errors.items())[:3]}")
        deadline = time.monotonic() + timeout
        log.info("%d peers joined in %.1f s", len(watchers), time.monotonic() - join_started)
        while True:
            status = await _all(peers, "status", "status", 30)
            if (keyframes := sum(r["keyframe"] for r in status)) >= len(watchers):
                break
            if time.monotonic() > deadline:
                dropped = {k: v for r in status for k, v in r["dropped"].items()}
                log.warning("%d peers dropped by the far side (e.g. %s); worst loop lag so far, ms: %s", len(dropped),
                            sorted(dropped.items())[:3], await phase_lag(lag, joined_all + status))
                raise RuntimeError(f"{keyframes} of {len(watchers)} classrooms and observers received a keyframe "
                                   f"within {timeout:.0f} s of joining")
            await asyncio.sleep(0.5)
        joins_s = time.monotonic() - join_started
        log.info("every peer has a keyframe %.1f s after the first join", joins_s)
        lags = {"joins": await phase_lag(lag, joined_all + status)}

        before_links = await link_counts(api, lesson_ids)
        pids = nodes.pids() | {"leads": leads.pid, "bench": os.getpid()}
        cpu_before = {n: cpu_seconds([pid]) for n, pid in pids.items()}
        peers_cpu_before = cpu_seconds([c.pid for c in peers])
        drops_before = udp_receive_errors()
        await _all(peers, "window", "window", 30, on=True)
        started = time.monotonic()
        await asyncio.sleep(window)
        lags["window"] = await phase_lag(lag, await _all(peers, "window", "window", 30, on=False))
        elapsed = time.monotonic() - started
        cpu = {n: round((cpu_seconds([pid]) - cpu_before[n]) / elapsed, 3) for n, pid in pids.items()}
        cpu["classrooms"] = round((cpu_seconds([c.pid for c in peers]) - peers_cpu_before) / elapsed, 3)
        drops = udp_receive_errors() - drops_before
        ratios = stream_ratios(before_links, await link_counts(api, lesson_ids))
        reports = {s["seat"]: s for r in await _all(peers, "report", "report", 60) for s in r["seats"]}
        dropped = {k: v["dropped"] for k, v in reports.items() if v.get("dropped")}
        expected = sum(r["expected"] for r in reports.values())
        missing = sum(r["expected"] - r["received"] for r in reports.values())

        media = await lesson_media(api)
        placed = {s.seat: media[s.lesson]["participants"].get(s.seat, {}).get("node") for s in receivers}
        per_edge = {e.name: sum(1 for n in placed.values() if n == e.name) for e in nodes.edges}
        relayed: list[float] = []
        spread: list[float] = []
        for lesson in timed:
            first, *others = [reports[o.seat].get("arrivals", []) for o in observers if o.lesson == lesson]
            for other in others:
                spread += paired_ms(other, first)
            for s in receivers:
                if s.lesson == lesson and placed[s.seat] is not None:
                    relayed += paired_ms(reports[s.seat].get("arrivals", []), first)

        victim = max(nodes.edges, key=lambda e: per_edge[e.name])
        moved = [s.seat for s in receivers if placed[s.seat] == victim.name]
        survivors = [p for n, p in nodes.pids().items() if n != victim.name]
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        nodes_cpu_at_kill, peers_cpu_at_kill = cpu_seconds(survivors), cpu_seconds([c.pid for c in peers])
        answers = await _all(peers, "failover", "failover", timeout + 60, seats=moved, within=timeout)
        rejoin_cpu = {"nodes": cpu_seconds(survivors) - nodes_cpu_at_kill,
                      "classrooms": cpu_seconds([c.pid for c in peers]) - peers_cpu_at_kill}
        lags["failover"] = await phase_lag(lag, answers)
        back = [t - killed for a in answers for t in a["back"].values() if t is not None]
        failed = {k: v for a in answers for k, v in a["errors"].items()}
        return {
            "peers": "counting", "edges": len(nodes.edges), "lessons": len(worlds), "classrooms": len(receivers),
            "big": big, "video_kbps": video_kbps, "window_s": round(elapsed, 1), "joins_s": round(joins_s, 1),
            "classrooms_per_edge": per_edge, **streams_figures(ratios),
            "loss": round(missing / expected, 5) if expected else None, "udp_receive_errors": drops,
            # peers whose connection the far side ended before the kill (an edge's ICE consent check unanswered
            # for 30 s): not counted as placed, a sign the apparatus or a node fell behind
            "classrooms_dropped": len(dropped), "dropped_e_g": dict(sorted(dropped.items())[:3]),
            # the worst event-loop lag of each node and of the classrooms' processes, per phase (ms): over
            # 500 ms, ICE consent checks start failing and the phase's figures are the apparatus's, not the nodes'
            "loop_lag_max_ms": lags,
            "cpu_cores": cpu,
            "failover_killed": victim.name, "failover_classrooms": len(moved), "failover_back": len(back),
            "failover_until": "first keyframe packet",
            "failover_p50_s": percentile(back, 50, digits=2), "failover_p95_s": percentile(back, 95, digits=2),
            "failover_errors": dict(sorted(failed.items())[:3]),
            # CPU seconds per rejoined classroom from the kill until the last was back: the nodes left (control,
            # the other edge, redis) and the classrooms' processes (a kiosk's own machine, in a school)
            "failover_cpu_ms_per_rejoin": {k: round(1000 * v / max(1, len(back)), 1) for k, v in rejoin_cpu.items()},
            **latency_figures(relayed, spread),
            "cores": os.cpu_count(),
        }
    finally:
        if lag is not None:
            await lag.stop()
        await asyncio.to_thread(stop_children, children)
        nodes.stop()
