"""`classroom bench fanout`: one publisher, N counting subscribers, our SFU against the MediaRelay baseline.

    python -m media.bench fanout --subs 100 --json

Every peer is an aiortc peer in its own process (subscribers are spread over a few processes), all on
127.0.0.1. The server under test runs in its own process tree, and only its CPU time (utime + stime
from /proc, over the measurement window) and memory are charged to it. The same run then repeats the
measurement through the MediaRelay relay of `media.baseline` at the largest subscriber count it
sustains, and prints one JSON object. See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from media.bench_clip import ClipSpec, load_clip
from media.bench_link import ChildHandle, stop_children

ROOM = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SUSTAINED_MAX_LOSS = 0.01  # the baseline "sustains" N subscribers below this loss...
SUSTAINED_MIN_FPS = 0.8  # ...and when they get at least this share of the source's frames
KEYFRAME_WAIT = 30.0
SETTLE_SECONDS = 1.0
REPAIR_GRACE = 1.5
DRAIN_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class FanoutOptions:
    subs: int
    duration: float = 10.0
    loss_percent: float = 0.0
    plane: str = "local"
    sub_procs: int = 0  # 0: about one process per 25 subscribers, at least 2, at most 8
    join_concurrency: int = 8
    subscriber_nice: int = 10
    seed: int = 1
    port_min: int = 45000
    port_max: int = 46999
    capacity: int = 0  # the SFU's max_subscriptions_per_worker; 0: no limit
    pacing: float = 0.0  # publisher pacing as a multiple of the video bitrate; 0: each frame at once
    profile_dir: Path | None = None
    profile_rate: int = 100
    # Of `subs`, this many are hostile (`--hostile K`): they NACK, PLI and send junk RTCP at the
    # highest rate the SFU accepts and beyond; the figures are the well-behaved subscribers'.
    hostile: int = 0
    # "on": the server also does what monitoring does in `classroom serve` (monitoring/bench.py);
    # "both": the same room without, then with it, in one invocation (monitoring_overhead_pct)
    monitoring: str = "off"
    # non-empty: the room records its publisher into this folder (`classroom bench record`)
    recording_folder: str = ""
    workers: int = 0  # plane "workers": worker processes (0: one per core)
    # keep what the figures are made of (`classroom bench relay` splits them by worker): each
    # subscriber's report, the room's stats at the window's start and end, each server process's CPU
    raw: bool = False
    log: Callable[[str], None] = field(default=lambda _msg: None)


# --------------------------------------------------------------------------------------------------
# /proc readings


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes (all their threads), in seconds."""
    return sum(cpu_split(pids))


def cpu_split(pids: Sequence[int]) -> tuple[float, float]:
    """(utime, stime) of these processes, in seconds: time in Python/C code, and in the kernel."""
    user = system = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            user += int(fields[11])
            system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def udp_drops(pids: Sequence[int]) -> int:
    """Datagrams the kernel dropped at these processes' UDP sockets (full receive buffers)."""
    return _udp_column(pids, 12)


def udp_backlog(pids: Sequence[int]) -> int:
    """Bytes waiting in these processes' UDP receive queues (what they have not read yet)."""
    return _udp_column(pids, 4)


def _udp_column(pids: Sequence[int], column: int) -> int:
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh)
            for line in fh:
                cols = line.split()
                if len(cols) > 12 and cols[9] in inodes:
                    value = cols[column]
                    # tx_queue:rx_queue is hexadecimal; drops is decimal
                    total += int(value.split(":")[1], 16) if ":" in value else int(value)
    return total


def wait_drained(pids: Sequence[int], timeout: float, limit: int = 64 * 1024) -> tuple[bool, int]:
    """Wait (bounded) until the server has read what is queued for it: a backlog left by the joins'
    keyframe bursts would otherwise be charged to the window as latency. Returns (drained, backlog)."""
    deadline = time.monotonic() + timeout
    calm = 0
    backlog = udp_backlog(pids)
    while time.monotonic() < deadline:
        backlog = udp_backlog(pids)
        calm = calm + 1 if backlog < limit else 0
        if calm >= 5:
            return True, backlog
        time.sleep(0.2)
    return False, backlog


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


# --------------------------------------------------------------------------------------------------
# one measured run against one server


def _spawn(ctx: Any, name: str, target: Callable[..., None], *args: Any) -> ChildHandle:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, name=name, args=(child, *args), daemon=False)
    process.start()
    child.close()
    return ChildHandle(name, process, parent)


def _split(names: list[str], parts: int) -> Iterator[list[str]]:
    size = math.ceil(len(names) / parts)
    for i in range(0, len(names), size):
        yield names[i : i + size]


class _Profiler:
    """py-spy record --native on the server's processes over the measurement window."""

    def __init__(self, directory: Path, pids: Sequence[int], seconds: float, rate: int) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("--profile needs py-spy on PATH (pip install py-spy)")
        directory.mkdir(parents=True, exist_ok=True)
        self.outputs: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        for pid in pids:
            out = directory / f"sfu-{pid}.txt"
            self.outputs.append(out)
            cmd = [exe, "record", "--native", "--format", "raw", "--rate", str(rate)]
            cmd += ["--duration", str(max(1, round(seconds))), "--pid", str(pid), "--output", str(out)]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    def finish(self, timeout: float) -> dict[str, Any]:
        errors = []
        for proc in self.procs:
            try:
                _out, err = proc.communicate(timeout=timeout)
                if proc.returncode:
                    errors.append(err.decode(errors="replace")[-500:])
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                errors.append("py-spy did not finish in time")
        summary = summarize_profile(self.outputs)
        if errors:
            summary["errors"] = errors
        return summary

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def summarize_profile(files: Sequence[Path], top: int = 15) -> dict[str, Any]:
    """Top functions by own samples and by inclusive samples from py-spy's raw (collapsed) output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            own[frames[-1]] = own.get(frames[-1], 0) + n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n

    by_module: dict[str, int] = {}
    for function, n in own.items():
        where = function.rpartition("(")[2].rstrip(")")
        module = where.rsplit(":", 1)[0] if ":" in where else where
        by_module[module] = by_module.get(module, 0) + n

    def ranked(table: dict[str, int]) -> list[dict[str, Any]]:
        rows = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [{"function": f, "percent": round(100 * n / total, 1)} for f, n in rows]

    return {
        "files": [str(p) for p in files],
        "samples": total,
        "own": ranked(own),
        "own_by_module": ranked(by_module),
        "inclusive": ranked(inclusive),
    }


def run_fanout(options: FanoutOptions, spec: ClipSpec) -> dict[str, Any]:
    """Run one server under N subscribers and return its figures (see docs/benchmarks.md)."""
    from media.bench_peers import publisher_main, subscribers_main
    from media.bench_server import server_main

    n = options.subs
    log = options.log
    ctx = multiprocessing.get_context("spawn")
    children: list[ChildHandle] = []
    profiler: _Profiler | None = None
    join_budget = 60.0 + 1.0 * n
    max_seconds = join_budget + KEYFRAME_WAIT + options.duration + 120.0
    try:
        config = {"announced_addresses": ("127.0.0.1",), "udp_port_min": options.port_min}
        config["udp_port_max"] = options.port_max
        config["max_subscriptions_per_worker"] = options.capacity
        if options.workers:
            config["workers"] = options.workers
        server = _spawn(ctx, f"{options.plane}-server", server_main, options.plane, ROOM, config,
                        options.monitoring == "on", options.recording_folder)
        children.append(server)
        ready = server.expect("ready", 60)
        port = int(ready["port"])
        log(f"{options.plane}: server pid {server.pid} on RPC port {port}")

        publisher = _spawn(ctx, "publisher", publisher_main, port, ROOM, spec, max_seconds, options.pacing)
        children.append(publisher)
        publisher.expect("joined", 60)
        deadline = time.monotonic() + 30
        while True:
            status = publisher.request("status", "status", 10)
            if status["connection"] == "connected" and status["video_frames"] > 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"publisher never started sending: {status}")
            time.sleep(0.2)
        time.sleep(SETTLE_SECONDS)
        server_pids = [server.pid, *server.remember_descendants()]
        rss_before = rss_kib(server_pids)

        hostile = max(0, min(options.hostile, n - 1))
        n -= hostile  # the figures are the well-behaved subscribers'
        procs = options.sub_procs or min(8, max(2, math.ceil(n / 25)))
        procs = max(1, min(procs, n))
        names = [f"sub-{i:04d}" for i in range(n)]
        loss = options.loss_percent / 100
        t_join = time.monotonic()
        for i, group in enumerate(_split(names, procs)):
            handle = _spawn(
                ctx,
                f"subscribers-{i}",
                subscribers_main,
                port,
                ROOM,
                group,
                loss,
                options.seed * 1000 + i,
                options.join_concurrency,
                options.subscriber_nice,
            )
            children.append(handle)
        sub_handles = children[2:]
        join_errors: list[str] = []
        for handle in sub_handles:
            join_errors += handle.expect("joined", join_budget)["errors"]
        hostile_handle = None
        if hostile:
            hostile_handle = _spawn(
                ctx,
                "hostile-subscribers",
                subscribers_main,
                port,
                ROOM,
                [f"hostile-{i:03d}" for i in range(hostile)],
                0.0,
                options.seed * 1000 + 999,
                options.join_concurrency,
                options.subscriber_nice,
                max_seconds,
            )
            children.append(hostile_handle)
            hostile_errors = hostile_handle.expect("joined", join_budget)["errors"]
            log(f"{options.plane}: {hostile - len(hostile_errors)}/{hostile} hostile subscribers harassing")
        log(f"{options.plane}: {n - len(join_errors)}/{n} joined in {time.monotonic() - t_join:.1f} s")

        deadline = time.monotonic() + KEYFRAME_WAIT
        while True:
            totals = {"connected": 0, "keyframe": 0, "audio": 0, "failed": 0}
            for handle in sub_handles:
                for key, value in handle.request("status", "status", 10).items():
                    totals[key] += value
            ok = n - len(join_errors)
            if totals["keyframe"] >= ok and totals["audio"] >= ok:
                log(f"{options.plane}: every subscriber has a keyframe and audio")
                break
            if time.monotonic() > deadline:
                log(f"{options.plane}: not every subscriber is receiving: {totals}")
                break
            time.sleep(0.25)
        time.sleep(SETTLE_SECONDS)

        server_pids = [server.pid, *server.remember_descendants()]
        drained, backlog_start = wait_drained(server_pids, DRAIN_WAIT)
        log(f"{options.plane}: measuring for {options.duration:.0f} s")
        if not drained:
            log(f"{options.plane}: the server still has {backlog_start // 1024} KiB unread after {DRAIN_WAIT:.0f} s")
        client_pids = [h.pid for h in children[1:] if h is not hostile_handle]
        if options.profile_dir is not None and options.plane != "baseline":
            profiler = _Profiler(options.profile_dir, server_pids, options.duration, options.profile_rate)
        pub_status = publisher.request("status", "status", 10)
        frames0 = pub_status["video_frames"]
        for handle in sub_handles:
            handle.request("start_window", "started", 10)
        stats_at_start = server.request("stats", "stats", 15).get("stats") if options.raw else None
        drops0 = udp_drops(server_pids), udp_drops(client_pids)
        busy0 = machine_busy()
        per_pid0 = {pid: cpu_seconds([pid]) for pid in server_pids}
        hostile_pids = [hostile_handle.pid] if hostile_handle is not None else []
        hostile0 = cpu_seconds(hostile_pids)
        split0, client0, t0 = cpu_split(server_pids), cpu_seconds(client_pids), time.monotonic()
        wall0 = time.time()  # latency samples are stamped with CLOCK_REALTIME (kernel timestamps)
        time.sleep(options.duration)
        split1, client1, t1 = cpu_split(server_pids), cpu_seconds(client_pids), time.monotonic()
        per_pid1 = {pid: cpu_seconds([pid]) for pid in per_pid0}
        hostile1 = cpu_seconds(hostile_pids)
        busy1 = machine_busy()
        drops1 = udp_drops(server_pids), udp_drops(client_pids)
        server_pids = [server.pid, *server.remember_descendants()]
        rss_after = rss_kib(server_pids)
        for handle in sub_handles:
            handle.request("stop_window", "stopped", 10)
        frames1 = publisher.request("status", "status", 10)["video_frames"]
        time.sleep(REPAIR_GRACE)
        profile = profiler.finish(timeout=options.duration + 30) if profiler is not None else None
        pub = publisher.request("report", "report", 30)
        reports: list[dict[str, Any]] = []
        for handle in sub_handles:
            reports += handle.request("report", "report", 60, log=pub["log"])["subscribers"]
        server_reply = server.request("stats", "stats", 15)
        server_stats = server_reply.get("stats")
        hostile_stats = _hostile_stats(server_stats) if hostile else None
    finally:
        if profiler is not None:
            profiler.kill()
        stop_children(children)

    window = t1 - t0
    cpu = sum(split1) - sum(split0)
    kernel = split1[1] - split0[1]
    busy_fraction = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    result = _figures(n, window, cpu, rss_after - rss_before, reports, join_errors)
    # the server, the well-behaved subscribers and the hostile ones
    peers_cores = (cpu + client1 - client0 + hostile1 - hostile0) / window
    # Loss counts gaps in what arrived; if the server stopped forwarding altogether there is no gap.
    # This compares frames delivered with frames the publisher sent in the window instead.
    sent_frames = frames1 - frames0
    received_frames = sum(rep["video"]["frames"] for rep in reports)
    result["delivered_fraction"] = round(received_frames / (n * sent_frames), 4) if sent_frames else None
    result["forward_latency_p99_by_second_ms"] = _latency_by_second(reports, wall0, window)
    result.update(
        {
            "plane": options.plane,
            "publisher_pacing": options.pacing,
            "server_processes": len(server_pids),
            # Share of the server's CPU spent in the kernel (stime): mostly sendto, which on loopback
            # also carries the delivery into the subscriber's socket.
            "sfu_kernel_share": round(kernel / cpu, 3) if cpu > 0 else None,
            "client_cpu_cores": round((client1 - client0) / window, 3),
            "machine_busy_fraction": round(busy_fraction, 3),
            # CPU that neither the server nor the bench's peers used: other work on the machine,
            # which competes with the server and inflates latency (not CPU per subscriber).
            "machine_other_cores": round(max(0.0, busy_fraction * (os.cpu_count() or 1) - peers_cores), 3),
            "server_backlog_kib_at_start": backlog_start // 1024,
            "udp_drops_server": drops1[0] - drops0[0],
            "udp_drops_subscribers": drops1[1] - drops0[1],
            "publisher_keyframe_requests": pub["keyframe_requests"],
            "source_video_mbps": round(pub["video_mbps"], 3),
        }
    )
    if options.loss_percent:
        result["injected_loss_percent"] = options.loss_percent
    if hostile:
        result["hostile_subscribers"] = hostile
        result["hostile_server_view"] = hostile_stats
        # the hostile subscribers' own process: it competes with the server for the machine too
        result["hostile_cpu_cores"] = round((hostile1 - hostile0) / window, 3)
    result["publisher_states"] = [
        {"at_s": round(at - wall0, 3), "what": what, "state": state} for at, what, state in pub["states"]
    ]
    problems = []
    if pub_status["connection"] != "connected":
        problems.append(f"publisher {pub_status['connection']} when the window started")
    if result["subs_receiving"] < n:
        problems.append(f"{n - result['subs_receiving']} subscribers received no media in the window")
    if not drained:
        problems.append(f"server backlog of {backlog_start // 1024} KiB not drained before the window")
    if result["delivered_fraction"] is not None and result["delivered_fraction"] < SUSTAINED_MIN_FPS:
        problems.append("subscribers got less than 80 % of the frames the publisher sent")
    # A run with problems still prints its figures (they show what broke), flagged as not valid.
    result["valid"] = not problems
    result["problems"] = problems
    if profile is not None:
        result["profile"] = profile
    if isinstance(server_stats, dict) and "error" in server_stats:
        result["server_stats_error"] = server_stats["error"]
    # The plane's events over the whole run (joins, first keyframes...), and the first few that ended
    # something: a publisher or subscriber the server dropped explains a window without media.
    result["server_events"] = server_reply.get("events", {})
    result["monitoring"] = options.monitoring
    if server_reply.get("monitoring"):
        result["monitoring_load"] = server_reply["monitoring"]
    if server_reply.get("notable"):
        result["server_events_notable"] = server_reply["notable"]
    if options.raw:
        result["raw"] = {
            "reports": reports,
            "stats_at_start": stats_at_start,
            "stats_at_end": server_stats,
            "control_pid": server.pid,
            "cpu_cores_by_pid": {pid: round((per_pid1[pid] - per_pid0[pid]) / window, 3) for pid in per_pid0},
        }
    return result


def _hostile_stats(stats: Any) -> dict[str, Any] | None:
    """What the SFU's snapshot says about the hostile subscribers: limited, refused, dropped."""
    if not isinstance(stats, dict):
        return None
    rooms = stats["rooms"] if isinstance(stats.get("rooms"), dict) else {ROOM: stats}
    out = {
        "present": 0,
        "rate_limited": 0,
        "rtcp_rate_limited": 0,
        "wrong_address_datagrams": 0,
        "nacks_over_budget": 0,
        "rtcp_penalties": 0,
        "retransmitted": 0,
        "over_budget": 0,
    }
    for room in rooms.values():
        for pid, p in (room.get("participants") or {}).items():
            if not str(pid).startswith("hostile-"):
                continue
            out["present"] += 1
            for key in (
                "rate_limited", "rtcp_rate_limited", "wrong_address_datagrams", "nacks_over_budget", "rtcp_penalties"
            ):
                out[key] += int(p.get(key, 0))
            for slot in (p.get("slots") or {}).values():
                out["retransmitted"] += int(slot.get("retransmitted", 0))
                out["over_budget"] += int(slot.get("over_budget", 0))
    return out


def _figures(
    n: int, window: float, cpu: float, rss_delta_kib: int, reports: list[dict[str, Any]], errors: list[str]
) -> dict[str, Any]:
    expected = received = dropped = repaired = 0
    video_expected = video_received = audio_expected = audio_received = 0
    total_bytes = frames = rtx = unmatched = 0
    latencies: list[float] = []
    handled: list[float] = []
    frame_latencies: list[float] = []
    keyframe: list[float] = []
    keyframe_from_offer: list[float] = []
    receiving = 0
    for rep in reports:
        v, a = rep["video"], rep["audio"]
        for part in (v, a):
            expected += part["expected"]
            received += part["received"]
            total_bytes += part["bytes"]
            latencies += part["latencies_ms"]
            handled += part["handled_latencies_ms"]
            frame_latencies += part["frame_latencies_ms"]
            unmatched += part["unmatched"]
        video_expected += v["expected"]
        video_received += v["received"]
        audio_expected += a["expected"]
        audio_received += a["received"]
        dropped += v["dropped"]
        repaired += v["repaired"]
        frames += v["frames"]
        rtx += v["rtx"]
        if v["packets"] and a["packets"]:
            receiving += 1
        if rep["first_keyframe_ms"] is not None:
            keyframe.append(rep["first_keyframe_ms"])
        if rep["first_keyframe_from_offer_ms"] is not None:
            keyframe_from_offer.append(rep["first_keyframe_from_offer_ms"])

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 6) if b else None

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    sub_seconds = n * window
    return {
        "subs": n,
        "subs_receiving": receiving,
        "join_errors": errors[:5],
        "duration_s": round(window, 2),
        "sfu_cpu_cores": round(cpu / window, 3),
        "cpu_ms_per_sub_s": round(cpu * 1000 / sub_seconds, 3),
        "per_sub_mbps": round(total_bytes * 8 / sub_seconds / 1e6, 3),
        "video_fps": round(frames / sub_seconds, 2),
        "loss": ratio(expected - received, expected),
        "video_loss": ratio(video_expected - video_received, video_expected),
        "audio_loss": ratio(audio_expected - audio_received, audio_expected),
        "first_keyframe_p50_ms": ms(percentile(keyframe, 50)),
        "first_keyframe_p95_ms": ms(percentile(keyframe, 95)),
        "first_keyframe_max_ms": ms(max(keyframe, default=None)),
        "first_keyframe_from_offer_p95_ms": ms(percentile(keyframe_from_offer, 95)),
        "forward_latency_p50_ms": ms(percentile(latencies, 50)),
        "forward_latency_p99_ms": ms(percentile(latencies, 99)),
        "handled_latency_p99_ms": ms(percentile(handled, 99)),
        "frame_latency_p50_ms": ms(percentile(frame_latencies, 50)),
        "frame_latency_p99_ms": ms(percentile(frame_latencies, 99)),
        "latency_samples": len(latencies),
        "latency_unmatched": unmatched,
        "rss_per_sub_kib": round(rss_delta_kib / n, 1),
        "dropped_injected": dropped,
        "repaired_fraction": ratio(repaired, dropped),
        "retransmissions_received": rtx,
    }


def _latency_by_second(reports: list[dict[str, Any]], t0: float, window: float) -> list[float | None]:
    """p99 forwarding latency of each second of the window: shows stalls that one p99 hides."""
    seconds = max(1, int(window))
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for rep in reports:
        for part in (rep["video"], rep["audio"]):
            for at, latency in zip(part["arrivals"], part["latencies_ms"], strict=True):
                i = int(at - t0)
                if 0 <= i <= seconds:
                    buckets[min(i, seconds - 1)].append(latency)
    return [None if not b else round(percentile(b, 99) or 0.0, 1) for b in buckets]


def _sustained(figures: dict[str, Any], fps: int) -> bool:
    loss = figures["loss"]
    delivered = figures.get("delivered_fraction")
    return (
        figures["subs_receiving"] == figures["subs"]
        and loss is not None
        and loss <= SUSTAINED_MAX_LOSS
        and figures["video_fps"] >= SUSTAINED_MIN_FPS * fps
        and (delivered is None or delivered >= SUSTAINED_MIN_FPS)
    )


def run_baseline(options: FanoutOptions, spec: ClipSpec, start_subs: int, attempts: int = 4) -> dict[str, Any]:
    """The MediaRelay relay at the largest N it sustains, stepping down by a quarter from `start_subs`."""
    subs = start_subs
    tried: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for _ in range(attempts):
        opts = FanoutOptions(
            subs=subs,
            duration=options.duration,
            loss_percent=options.loss_percent,
            plane="baseline",
            sub_procs=min(subs, 2),
            join_concurrency=options.join_concurrency,
            subscriber_nice=options.subscriber_nice,
            seed=options.seed,
            port_min=options.port_min,
            port_max=options.port_max,
            log=options.log,
        )
        figures = run_fanout(opts, spec)
        ok = _sustained(figures, spec.fps)
        tried.append({"subs": subs, "sustained": ok, "loss": figures["loss"], "video_fps": figures["video_fps"]})
        best = figures
        if ok or subs == 1:
            break
        subs = max(1, min(subs - 1, int(subs * 0.75)))
    assert best is not None
    best["sustained"] = tried[-1]["sustained"]
    best["attempts"] = tried
    return best


def fanout(options: FanoutOptions, baseline_subs: int | None, spec: ClipSpec | None = None) -> dict[str, Any]:
    spec = spec or ClipSpec()
    t = time.monotonic()
    clip = load_clip(spec)  # encode once, before any child starts, so all of them read the cache
    options.log(f"clip ready ({clip.video_mbps:.2f} Mbit/s VP8) in {time.monotonic() - t:.1f} s")
    calm = None
    if options.monitoring == "both":
        return _monitoring_both(options, spec, baseline_subs)
    if options.hostile > 0:
        # The same room without the hostile subscribers first, in the same invocation.
        calm = run_fanout(replace(options, hostile=0, subs=options.subs - options.hostile), spec)
    ours = run_fanout(options, spec)
    ours["machine"] = machine_description()
    if calm is not None:
        keys = ("cpu_ms_per_sub_s", "loss", "forward_latency_p99_ms", "delivered_fraction", "valid")
        ours["without_hostile"] = {k: calm.get(k) for k in keys}
        a, b = ours.get("forward_latency_p99_ms"), calm.get("forward_latency_p99_ms")
        ours["hostile_latency_p99_delta_ms"] = round(a - b, 2) if a is not None and b is not None else None
    if baseline_subs is not None and baseline_subs > 0:
        base = run_baseline(options, spec, baseline_subs)
        ours["baseline"] = base
        if base["cpu_ms_per_sub_s"] and ours["cpu_ms_per_sub_s"] and base["valid"] and ours["valid"]:
            ours["speedup_vs_baseline"] = round(base["cpu_ms_per_sub_s"] / ours["cpu_ms_per_sub_s"], 1)
        else:
            ours["speedup_vs_baseline"] = None
    return ours


def _monitoring_both(options: FanoutOptions, spec: ClipSpec, baseline_subs: int | None) -> dict[str, Any]:
    """The same room without monitoring, then with it: the extra SFU CPU in percent (both runs in one
    invocation, so the machine's state is as close as it gets), and monitoring's own CPU measured inside."""
    off = fanout(replace(options, monitoring="off"), None, spec)
    ours = fanout(replace(options, monitoring="on"), baseline_subs, spec)
    keys = ("sfu_cpu_cores", "cpu_ms_per_sub_s", "loss", "forward_latency_p99_ms", "machine_other_cores", "valid")
    ours["monitoring_off"] = {k: off.get(k) for k in keys}
    a, b = ours.get("sfu_cpu_cores"), off.get("sfu_cpu_cores")
    ours["monitoring_overhead_pct"] = round((a - b) / b * 100, 2) if a and b else None
    load = ours.get("monitoring_load") or {}
    own = load.get("monitoring_cpu_cores")
    # monitoring's own CPU (thread time inside the snapshot, the metrics and the scrapes) over the SFU's:
    # the same cost measured from inside, free of the run-to-run noise of the difference above
    ours["monitoring_own_cpu_pct"] = round(own / a * 100, 3) if own is not None and a else None
    ours["monitoring"] = "both"
    return ours


def machine_description() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": sys.version.split()[0]}


# --------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="classroom bench", description="Media-plane benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True)
    fan = sub.add_parser("fanout", help="one publisher, N subscribers; our SFU against the MediaRelay baseline")
    fan.add_argument("--subs", type=int, default=10, help="subscribers (default 10)")
    fan.add_argument("--duration", type=float, default=10.0, help="measurement window in seconds (default 10)")
    fan.add_argument("--loss-percent", type=float, default=0.0, help="random loss on subscriber legs (video)")
    fan.add_argument("--baseline-subs", type=int, default=None, help="baseline subscribers (default min(N, 6))")
    fan.add_argument("--no-baseline", action="store_true", help="skip the MediaRelay baseline")
    fan.add_argument("--plane", choices=("local", "workers"), default="local", help="which media plane")
    fan.add_argument(
        "--capacity",
        type=int,
        default=0,
        help="the SFU's max_subscriptions_per_worker (default 0: no limit, so the bench finds where it breaks)",
    )
    fan.add_argument(
        "--publisher-pacing",
        type=float,
        default=0.0,
        help="pace the publisher's video at this multiple of its bitrate, as browsers do (2.5); "
        "default 0: every frame's packets back to back, as aiortc and many hardware encoders send",
    )
    fan.add_argument("--sub-procs", type=int, default=0, help="subscriber processes (default: N/25, 2..8)")
    fan.add_argument("--join-concurrency", type=int, default=8, help="joins in flight per subscriber process")
    fan.add_argument("--subscriber-nice", type=int, default=10, help="nice value of subscriber processes (default 10)")
    fan.add_argument("--seed", type=int, default=1, help="seed of the loss injection")
    fan.add_argument("--port-min", type=int, default=45000, help="lowest UDP port of the SFU")
    fan.add_argument("--port-max", type=int, default=46999, help="highest UDP port of the SFU")
    fan.add_argument("--profile", type=Path, default=None, help="py-spy the SFU over the window into DIR")
    fan.add_argument(
        "--hostile",
        type=int,
        default=0,
        help="of --subs, this many NACK, PLI and send junk RTCP as fast as the SFU accepts and beyond; "
        "runs the room without them first and reports hostile_latency_p99_delta_ms",
    )
    fan.add_argument(
        "--monitoring",
        choices=("off", "on", "both"),
        default="off",
        help="on: the server also takes the room's stats every second, feeds the metrics and answers a "
        "scrape every 5 s, as `classroom serve` does; both: without, then with, reporting monitoring_overhead_pct",
    )
    fan.add_argument("--json", action="store_true", help="print only the JSON object")
    return parser


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the bench runs, so its `finally` blocks stop every child;
    a second SIGTERM during that cleanup is ignored (the cleanup is bounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.subs < 1 or args.duration <= 0 or not 0 <= args.loss_percent < 100:
        print("bench: --subs >= 1, --duration > 0 and 0 <= --loss-percent < 100", file=sys.stderr)
        return 2

    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    options = FanoutOptions(
        subs=args.subs,
        duration=args.duration,
        loss_percent=args.loss_percent,
        plane=args.plane,
        sub_procs=args.sub_procs,
        join_concurrency=max(1, args.join_concurrency),
        subscriber_nice=max(0, min(19, args.subscriber_nice)),
        seed=args.seed,
        port_min=args.port_min,
        port_max=args.port_max,
        capacity=max(0, args.capacity),
        pacing=max(0.0, args.publisher_pacing),
        profile_dir=args.profile,
        hostile=max(0, min(args.hostile, args.subs - 1)),
        monitoring=args.monitoring,
        log=log,
    )
    baseline = None if args.no_baseline else (args.baseline_subs or min(args.subs, 6))
    try:
        with _terminate_as_exit():
            result = fanout(options, baseline)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    result["command"] = " ".join(["classroom bench", *argv])
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
