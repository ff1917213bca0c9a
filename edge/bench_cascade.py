"""`classroom bench cascade`: lessons carried over a control node and two edges on this machine, measured.

    unshare -n sh -c 'ip link set lo up && exec classroom bench cascade --json'

What runs, each a real process on loopback: a `redis-server`, the control node (`classroom serve
--media local --redis`, registered with no capacity of its own so every receiving classroom goes to an
edge) and two edges (`classroom edge --media local`). `--lessons` lessons on air at once, each a lead
publishing aiortc's test picture and sound, with `--classrooms` receiving classrooms each (aiortc peers
in this process), placed on the edges by load. `--big N` adds one lesson of N classrooms. The sizes are
flags because the issue's (40 × 6 plus one of 400) need more cores than a 2-core machine has: this
process decodes every classroom's picture. Printed (JSON with `--json`):

- `edges`, `classrooms`, `lessons`, what was run;
- `origin_streams_per_edge_per_track`: over `--window` seconds, packets the control node sent on each
  link to an edge for each lead track, divided by the packets of that track it received (1: each track
  crosses to an edge once, however many classrooms it has there); the largest over lessons, edges and
  tracks, and the mean;
- `loss`: the classrooms' RTP loss over the window (their receivers' packetsLost over lost + received);
- `cpu_cores`: each process's CPU over the window (control, each edge, redis, this process);
- `failover_p50_s`, `failover_p95_s`: one edge is killed with SIGKILL; for each of its classrooms, the
  seconds from the kill until it decodes a frame again, having been told to reconnect (`restart`) and
  rejoined as the kiosk page does (target p95 under 5 s); `failover_classrooms`, how many;
- `relay_added_latency_p99_ms`, `relay_added_latency_p50_ms`: how much later an edge's classroom gets
  each of the lead's camera packets than an observer of the same lesson on the control node (which the
  lead publishes to), the same packet recognised by its payload, both timed in this process as they
  arrive (`relay_packets_paired` pairs; target p99 under 5 ms); `same_path_spread_p99_ms`, `..._p50_ms`:
  the same between two observers on the control node, the noise of this measurement (the bench
  process's own scheduling), in the same run. Observers are added to the first 10 lessons.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from media.bench import cpu_seconds
from signaling.bench_join import free_port, percentile, stop_process
from signaling.client import Peer, ProtocolClient, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone

ARRIVALS_MAX = 200_000  # camera packets timed per peer (a bound on the bench's memory)
REFERENCES = 2  # observers per lesson on the control node: the direct path, and its spread (the noise)
REFERENCE_LESSONS = 10  # lessons that get them


class _Process:
    """A child process with its log in the bench's folder, stopped at the end."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.path = folder / f"{name}.log"
        with open(self.path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1", **env})

    @property
    def log(self) -> str:
        return self.path.read_text(errors="replace")

    def wait_for(self, ready: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {what} not in {timeout}s:\n{self.log[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.proc)


def _answers(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
        return bool(r.status == 200)
    return False


class _Arrivals:
    """When each of the camera's RTP packets reached a peer (this process's monotonic clock), by its
    payload past the VP8 descriptor (at most 6 bytes, whose picture id a node may rewrite): the VP8 data,
    which no node changes, so the same packet is recognised on every path (the test picture's bar moves,
    so no two frames are alike). Recorded while `on`, at most ARRIVALS_MAX packets."""

    def __init__(self) -> None:
        self.on = False
        self.times: dict[bytes, float] = {}

    def attach(self, peer: Peer) -> None:
        receiver = peer.pc.getTransceivers()[0].receiver  # the camera slot (as_classroom's first)
        handle = receiver._handle_rtp_packet

        async def timed(packet: Any, arrival_time_ms: int) -> None:
            if self.on and len(packet.payload) >= 24 and len(self.times) < ARRIVALS_MAX:
                self.times.setdefault(bytes(packet.payload[6:]), time.monotonic())
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = timed  # type: ignore[method-assign]


def _delays_ms(seen: dict[bytes, float], reference: dict[bytes, float]) -> list[float]:
    """For each packet both saw: how much later `seen` got it than `reference`, in ms."""
    return [(seen[k] - reference[k]) * 1000 for k in seen.keys() & reference.keys()]


class _Seat:
    """A receiving classroom (or, with `observer`, an observer, which joins the control node): its peer
    and its WebSocket, rejoining as the kiosk does when told to."""

    def __init__(self, lesson: int, classroom: int | None, observer: int = 0) -> None:
        self.lesson, self.classroom = lesson, classroom
        self.participant = f"classroom-{classroom}" if classroom is not None else f"observer-{observer}"
        self.peer = Peer()
        self.client: ProtocolClient | None = None
        self.arrivals = _Arrivals()

    async def join(self, api: AdminApi, ws_url: str) -> None:
        if self.classroom is None:
            token = await join_token(api, self.lesson, "observer")
        else:
            token = await join_token(api, self.lesson, "receiver", self.classroom)
        fields = self.peer.as_classroom()
        self.arrivals.attach(self.peer)
        self.client = await join_with_media(ws_url, token, self.peer, fields)

    async def rejoin(self, api: AdminApi, ws_url: str, killed: float, timeout: float) -> float | None:
        """After its edge died: wait for `restart`, join again with a fresh peer; seconds from the kill
        to its first decoded frame (None: not within `timeout`)."""
        assert self.client is not None
        try:
            await self.client.expect("restart", timeout=timeout)
        except Exception:
            return None
        await self.close()
        self.peer = Peer()
        try:
            await self.join(api, ws_url)
            await asyncio.wait_for(self.peer.first_frame.wait(), max(0.1, timeout - (time.monotonic() - killed)))
        except Exception:
            return None
        return time.monotonic() - killed

    async def loss(self) -> tuple[int, int]:
        lost = received = 0
        for report in (await self.peer.pc.getStats()).values():
            if getattr(report, "type", "") == "inbound-rtp":
                lost += max(0, int(getattr(report, "packetsLost", 0) or 0))
                received += int(getattr(report, "packetsReceived", 0) or 0)
        return lost, received

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        await self.peer.close()


@contextlib.contextmanager
def bench_folder(logs: Path | None) -> Iterator[Path]:
    """Where the nodes keep their data and logs: `logs` when given (kept, to read after the run), else a
    temporary folder removed at the end."""
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
        yield logs
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-cascade-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Nodes:
    """redis-server, the control node and two edges, each a process with its log in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[_Process] = []
        self.edges: list[_Process] = []
        self.base = ""
        self.api: AdminApi | None = None
        self.tz = lesson_now_timezone()

    @property
    def ws_url(self) -> str:
        return self.base.replace("http", "ws") + "/ws"

    def pids(self) -> dict[str, int]:
        return {p.name: p.proc.pid for p in self.procs}

    async def start(self, total: int, big: int, edge_env: dict[str, str] | None = None) -> AdminApi:
        """Start everything for `total` classrooms (one lesson of `big`); the admin's API of the control node."""
        redis_bin = shutil.which("redis-server")
        if redis_bin is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        folder = self.folder
        redis_port = free_port()
        self.procs.append(_Process("redis", [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save",
                                             "", "--appendonly", "no", "--dir", str(folder)], {}, folder))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        common = {"CLASSROOM_CLUSTER__NODE_SECRET": secrets.token_urlsafe(24), "CLASSROOM_CLUSTER__HEARTBEAT_S": "1",
                  "CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1", "CLASSROOM_SCHEDULER__TIMEZONE": self.tz,
                  "CLASSROOM_SIGNALING__STATS_INTERVAL_S": "1"}
        port = free_port()
        control = _Process("control", [sys.executable, "-m", "classroom.cli", "serve", "--host", "127.0.0.1",
                                       "--port", str(port), "--data-dir", str(folder / "control"), "--media",
                                       "local", "--redis", redis_url],
                           {**common, "CLASSROOM_CLUSTER__NODE_ID": "control", "CLASSROOM_CLUSTER__CAPACITY": "0",
                            "CLASSROOM_SCHEDULER__MAX_RECEIVERS_FAMOUS_SCHOOL": str(max(100, big)),
                            "CLASSROOM_SCHEDULER__MEDIA_CAPACITY_STREAMS": str(max(600, total * 4)),
                            "CLASSROOM_SIGNALING__JOIN_BURST": str(total * 4 + 50),
                            "CLASSROOM_SIGNALING__JOIN_PER_MINUTE": str(total * 240 + 600),
                            "CLASSROOM_SIGNALING__WS_MAX_UNJOINED_PER_ADDRESS": str(total * 2 + 50)}, folder)
        self.procs.append(control)
        self.base = f"http://127.0.0.1:{port}"
        control.wait_for(lambda: _answers(self.base + "/healthz"), "/healthz")
        for i, name in enumerate(("edge-1", "edge-2")):
            edge_port = free_port()
            edge = _Process(name, [sys.executable, "-m", "classroom.cli", "edge", "--control", self.base, "--redis",
                                   redis_url, "--region", "bench", "--county", name, "--host", "127.0.0.1",
                                   "--port", str(edge_port), "--data-dir", str(folder / name), "--node-id", name,
                                   "--media", "local"],
                            {**common, "CLASSROOM_MEDIA__UDP_PORT_MIN": str(40000 + 5000 * i),
                             "CLASSROOM_MEDIA__UDP_PORT_MAX": str(44999 + 5000 * i), **(edge_env or {})}, folder)
            self.procs.append(edge)
            self.edges.append(edge)
        for edge in self.edges:
            edge.wait_for(lambda e=edge: "control API on" in e.log, "its control API")
        api = self.api = AdminApi(self.base, (folder / "control" / "admin-token").read_text().strip())
        deadline = time.monotonic() + 30
        while {"edge-1", "edge-2"} - {n["node"]["id"] for n in (await api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]}:
            if time.monotonic() > deadline:
                raise RuntimeError("the edges did not register")
            await asyncio.sleep(0.3)
        return api

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


async def lesson_media(api: AdminApi) -> dict[int, dict[str, Any]]:
    """Every lesson on air's media (participants with their node, the links), by lesson id."""
    return {x["lesson_id"]: dict(x["media"]) for x in (await api.ok("GET", "/api/v1/live?detail=1"))["lessons"]}


async def link_counts(api: AdminApi, lesson_ids: list[int]) -> dict[tuple[int, str, str], tuple[int, int]]:
    """(lesson, link, track) -> (packets the control node sent on the link, packets of it the lead sent)."""
    out = {}
    media = await lesson_media(api)
    for lesson in lesson_ids:
        m = media[lesson]
        lead_id = next(p for p, v in m["participants"].items() if v["role"] == "lead")
        received = {k: v["packets"] for k, v in m["participants"][lead_id]["published"].items()}
        for link in m.get("links", []):
            for s in link["sent"]:
                if s["participant_id"] == lead_id:
                    sent = int(s["packets_sent"])
                    out[(lesson, link["link_id"], s["track"])] = (sent, int(received.get(s["track"], 0)))
    return out


def stream_ratios(before: dict[tuple[int, str, str], tuple[int, int]],
                  after: dict[tuple[int, str, str], tuple[int, int]]) -> list[float]:
    """Per link and track: packets sent on the link over packets the lead sent, between two counts."""
    out = []
    for key, (sent, received) in after.items():
        if key in before and received - before[key][1] > 0:
            out.append((sent - before[key][0]) / (received - before[key][1]))
    return out


def latency_figures(relayed: list[float], spread: list[float]) -> dict[str, Any]:
    """The relay's added latency (an edge's classroom against an observer on the control node) and the same
    between two observers there (the measurement's noise), in ms."""
    return {"relay_added_latency_p99_ms": percentile(relayed, 99, digits=2),
            "relay_added_latency_p50_ms": percentile(relayed, 50, digits=2),
            "relay_packets_paired": len(relayed),
            "same_path_spread_p99_ms": percentile(spread, 99, digits=2),
            "same_path_spread_p50_ms": percentile(spread, 50, digits=2)}


def streams_figures(ratios: list[float]) -> dict[str, Any]:
    return {"origin_streams_per_edge_per_track": round(max(ratios), 3) if ratios else None,
            "origin_streams_per_edge_per_track_mean": round(statistics.fmean(ratios), 3) if ratios else None,
            "links_measured": len(ratios)}


async def run(folder: Path, lessons: int, classrooms: int, big: int, window: float, timeout: float) -> dict[str, Any]:
    nodes = Nodes(folder)
    seats: list[_Seat] = []
    references: dict[int, list[_Seat]] = {}  # lesson -> its observers on the control node
    leads: list[tuple[Peer, ProtocolClient]] = []
    try:
        api = await nodes.start(lessons * classrooms + big, big)
        edges, tz, ws_url = nodes.edges, nodes.tz, nodes.ws_url
        sizes = [classrooms] * lessons + ([big] if big else [])
        worlds = [await build_world(api, tz, receivers=n) for n in sizes]
        for world in worlds:
            lead = Peer()
            leads.append((lead, await join_with_media(ws_url, await join_token(api, world.lesson_ids[0], "lead"),
                                                      lead, lead.as_lead())))
            for classroom in world.receiving_classroom_ids:
                seat = _Seat(world.lesson_ids[0], classroom)
                await seat.join(api, ws_url)
                seats.append(seat)
            if len(references) < REFERENCE_LESSONS:
                references[world.lesson_ids[0]] = [_Seat(world.lesson_ids[0], None, i) for i in range(REFERENCES)]
                for ref in references[world.lesson_ids[0]]:
                    await ref.join(api, ws_url)
        watchers = [*seats, *(r for refs in references.values() for r in refs)]
        await asyncio.wait_for(asyncio.gather(*(s.peer.first_frame.wait() for s in watchers)), timeout)

        lesson_ids = [world.lesson_ids[0] for world in worlds]
        before_loss = [await s.loss() for s in seats]
        before_links = await link_counts(api, lesson_ids)
        pids = nodes.pids() | {"bench": os.getpid()}
        cpu_before = {n: cpu_seconds([pid]) for n, pid in pids.items()}
        for w in watchers:
            w.arrivals.on = True
        started = time.monotonic()
        await asyncio.sleep(window)
        elapsed = time.monotonic() - started
        for w in watchers:
            w.arrivals.on = False
        cpu = {n: round((cpu_seconds([pid]) - cpu_before[n]) / elapsed, 3) for n, pid in pids.items()}
        ratios = stream_ratios(before_links, await link_counts(api, lesson_ids))
        after_loss = [await s.loss() for s in seats]
        lost = sum(a[0] - b[0] for a, b in zip(after_loss, before_loss, strict=True))
        got = sum(a[1] - b[1] for a, b in zip(after_loss, before_loss, strict=True))
        media_now = await lesson_media(api)
        placed = {s.participant: media_now[s.lesson]["participants"].get(s.participant, {}).get("node")
                  for s in seats}
        per_edge = {e.name: sum(1 for n in placed.values() if n == e.name) for e in edges}
        relayed: list[float] = []  # an edge's classroom against the lesson's first observer (control node)
        spread: list[float] = []  # the second observer against the first: the same path, this process's noise
        for lesson, refs in references.items():
            first = refs[0].arrivals.times
            for other in refs[1:]:
                spread += _delays_ms(other.arrivals.times, first)
            for s in seats:
                if s.lesson == lesson and placed[s.participant] is not None:
                    relayed += _delays_ms(s.arrivals.times, first)
        for w in watchers:
            w.arrivals.times.clear()

        # failover: the edge with the most classrooms is killed
        victim = max(edges, key=lambda e: per_edge[e.name])
        moved = [s for s in seats if placed[s.participant] == victim.name]
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        times = await asyncio.gather(*(s.rejoin(api, ws_url, killed, timeout) for s in moved))
        back = [t for t in times if t is not None]
        return {
            "edges": len(edges), "lessons": len(worlds), "classrooms": len(seats), "big": big,
            "window_s": round(elapsed, 1), "classrooms_per_edge": per_edge,
            **streams_figures(ratios),
            "loss": round(lost / (lost + got), 5) if lost + got else None,
            "cpu_cores": cpu,
            "failover_killed": victim.name, "failover_classrooms": len(moved),
            "failover_back": len(back),
            "failover_p50_s": percentile(back, 50, digits=2), "failover_p95_s": percentile(back, 95, digits=2),
            **latency_figures(relayed, spread),
            "cores": os.cpu_count(),
        }
    finally:
        for s in [*seats, *(r for refs in references.values() for r in refs)]:
            with contextlib.suppress(Exception):
                await s.close()
        for peer, client in leads:
            with contextlib.suppress(Exception):
                await client.close()
            await peer.close()
        nodes.stop()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="classroom bench cascade", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lessons", type=int, default=4, help="lessons on air at once (default 4; the issue's 40)")
    ap.add_argument("--classrooms", type=int, default=2, help="receiving classrooms per lesson (default 2; 6)")
    ap.add_argument("--big", type=int, default=0, help="one more lesson of this many classrooms (the issue's 400)")
    ap.add_argument("--window", type=float, default=8.0, help="seconds measured (default 8)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for joins and each failover (default 60)")
    ap.add_argument("--peers", choices=("decoding", "counting"), default="decoding",
                    help="classrooms that decode every frame in this process (default), or that count packets "
                         "in processes of their own, as the issue's sizes need (edge/bench_cascade_counting.py)")
    ap.add_argument("--peer-procs", type=int, default=2, help="with --peers counting: classroom processes (2)")
    ap.add_argument("--video-kbps", type=int, default=500, help="with --peers counting: the clip's video (500)")
    ap.add_argument("--logs", type=Path, help="keep the nodes' logs and data in this folder (default: a temporary "
                                              "one, removed)")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING)  # progress on stderr
    logging.getLogger("edge").setLevel(logging.INFO)
    for noisy in ("aioice", "aiortc"):  # a line per ICE check of every classroom: the figures are what counts
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.lessons < 1 or args.classrooms < 1 or args.big < 0 or args.window <= 0 or args.peer_procs < 1:
        ap.error("--lessons, --classrooms and --peer-procs are at least 1, --big at least 0, --window positive")
    with bench_folder(args.logs) as folder:
        if args.peers == "counting":
            from edge.bench_cascade_counting import run as run_counting

            result = asyncio.run(run_counting(folder, args.lessons, args.classrooms, args.big, args.window,
                                              args.timeout, args.peer_procs, args.video_kbps))
        else:
            result = asyncio.run(run(folder, args.lessons, args.classrooms, args.big, args.window, args.timeout))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
