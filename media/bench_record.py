"""`classroom bench record`: what recording and replay cost, beside forwarding, in one invocation.

Four runs of the fan-out bench's room (`media/bench.py`: a real server process, the pre-encoded 2 Mbit/s
720p VP8 clip with Opus, real aiortc subscribers on loopback), recording off then on, first with one
subscriber, then with `--subs` (default 100):

- `cpu_pct_per_stream`: the server's extra CPU with recording on, in percent of one core, for the one
  stream recorded (camera + sound), at one subscriber, where forwarding itself costs little and the
  difference is not lost in its noise; `cpu_pct_per_stream_at_subs` is the same difference at `--subs`.
- `cpu_pct_per_stream_inside`: the same cost measured from inside, free of that noise: the run's own
  packets fed again through the recorder's writer (the per-packet record and the writer thread's file
  appends), timed with the process's CPU clock, at the stream's packet rate (`sink_us_per_packet`,
  `stream_packets_per_s`).
- `recording_latency_p99_delta_ms`: forwarding latency p99 at `--subs` with recording on minus off.
- `finalise_cpu_pct_of_lesson`: the remux of the dump into its file once the lesson closes (done in a
  low-priority process of its own), its CPU as a share of the recording's duration.
- `replay_cpu_pct_per_stream`: the file the one-subscriber run recorded, published back into a room by a
  `ReplayPublisher` in a process of its own (as `classroom serve` does in its control process), its
  CPU over the replay in percent of one core.

The recorded file's facts are printed (PyAV: duration, video packets, keyframes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av

from media.api import ParticipantRole, SlotKind, TrackKind
from media.bench import FanoutOptions, _spawn, cpu_seconds, machine_description, run_fanout
from media.bench_clip import ClipSpec, load_clip
from media.bench_link import ChildHandle, ChildLink, stop_children
from media.bench_net import RpcClient, use_loopback_ice
from media.recording import finalise
from media.replay import ReplayFiles, ReplayPublisher
from media.rtpdump import DumpWriter, read_dump

REPLAY_ROOM = "bench-replay"


class RpcPlane:
    """The bench server's media plane seen over its RPC port: enough for a replay to join."""

    def __init__(self, port: int) -> None:
        self.rpc = RpcClient(port)

    async def join(self, room_id: str, participant_id: str, role: ParticipantRole, offer_sdp: str,
                   tracks: Mapping[str, TrackKind] | None = None, slots: Mapping[str, SlotKind] | None = None) -> str:
        return str(await self.rpc.call("join", room=room_id, participant=participant_id, role=role.value,
                                       offer=offer_sdp, tracks={k: str(v) for k, v in (tracks or {}).items()},
                                       timeout=30))


def replay_main(conn: Connection, port: int, camera: str, max_seconds: float) -> None:
    """Entry point of the replay process: publish the file, then say what it cost."""

    async def run() -> None:
        link = ChildLink(conn)
        use_loopback_ice()
        plane = RpcPlane(port)
        publisher = ReplayPublisher(plane, REPLAY_ROOM, ReplayFiles(Path(camera)))
        try:
            await publisher.start()
            cpu0, wall0 = time.process_time(), time.monotonic()
            link.send("started")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(publisher.ended.wait(), max_seconds)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            link.send("done", cpu_s=cpu, wall_s=wall, packets=publisher.packets_sent,
                      ended=publisher.ended.is_set())
        except Exception:
            link.send("error", message=traceback.format_exc(limit=8))
        finally:
            await publisher.stop()
            await plane.rpc.close()
            link.close()

    asyncio.run(run())


def measure_replay(camera: Path, seconds: float, log: Any) -> dict[str, Any]:
    """Replay `camera` into a bench server's room from a process of its own; its CPU over the replay."""
    from media.bench_server import server_main

    ctx = multiprocessing.get_context("spawn")
    children: list[ChildHandle] = []
    try:
        config = {"announced_addresses": ("127.0.0.1",), "udp_port_min": 47000, "udp_port_max": 47099}
        server = _spawn(ctx, "replay-server", server_main, "local", REPLAY_ROOM, config, False, "")
        children.append(server)
        port = int(server.expect("ready", 60)["port"])
        replay = _spawn(ctx, "replay", replay_main, port, str(camera), seconds + 30)
        children.append(replay)
        replay.expect("started", 60)
        server_cpu0 = cpu_seconds([server.pid])
        done = replay.expect("done", seconds + 60)
        server_cpu = cpu_seconds([server.pid]) - server_cpu0
        log(f"replay: {done['packets']} packets in {done['wall_s']:.1f} s, {done['cpu_s']:.2f} s of CPU")
        return {"replay_cpu_s": round(done["cpu_s"], 3), "replay_wall_s": round(done["wall_s"], 2),
                "replay_packets": done["packets"], "replay_reached_end": done["ended"],
                "replay_cpu_pct_per_stream": round(done["cpu_s"] / done["wall_s"] * 100, 2) if done["wall_s"] else None,
                "replay_sfu_cpu_pct": round(server_cpu / done["wall_s"] * 100, 2) if done["wall_s"] else None}
    finally:
        stop_children(children)


def check_file(folder: Path) -> dict[str, Any]:
    """The recording the run left: size, duration, video packets and keyframes (demuxed with PyAV).

    Not decoded: the bench's clip answers a keyframe request with an intra-coded version of the frame
    that is due, and its following inter frames were coded against another picture, so a decoder refuses
    them until the clip loops. That the recorder keeps every frame decodable is shown by the tests with
    real encoders (tests/media/test_recording_live.py, tests/browser/test_replay_in_chromium.py)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".webm", ".mp4") and ".screen." not in p.name)
    if not files:
        return {"file": None, "problem": f"no recording in {folder}"}
    path = files[0]
    with av.open(str(path)) as c:
        duration = float(c.duration or 0) / 1e6
        packets = keyframes = 0
        for packet in c.demux(video=0):
            if packet.size:
                packets += 1
                keyframes += int(packet.is_keyframe)
    return {"file": path.name, "size_bytes": path.stat().st_size, "duration_s": round(duration, 2),
            "video_packets": packets, "keyframes": keyframes, "path": str(path)}


def measure_sink(folder: Path, scratch: Path) -> dict[str, Any]:
    """Recording's cost measured from inside, free of the run-to-run noise of the differences: the run's
    own packets (from its dump) fed again through a `DumpWriter` (the per-packet record and the writer
    thread's appends to a file), timed with the process's CPU clock (every thread), at the stream's rate."""
    dumps = sorted(folder.rglob("*.rtpdump"))
    if not dumps:
        return {}
    _tracks, records = read_dump(dumps[0])
    packets = [r for r in records if r.type == b"P"]
    if len(packets) < 2:
        return {}
    seconds = packets[-1].arrival - packets[0].arrival
    scratch.mkdir(parents=True, exist_ok=True)
    writer = DumpWriter(scratch / "sink.rtpdump")
    bodies = [(r.track, r.body) for r in packets]
    cpu0 = time.process_time()
    for track, body in bodies:
        ssrc, seq, ts = 1, (body[2] << 8) | body[3], int.from_bytes(body[4:8], "big")
        writer.rtp(track, ssrc, seq, ts, body[1] & 0x80, body[1] & 0x7F, body[12:])
    writer.close()
    cpu = time.process_time() - cpu0
    per_packet_us = cpu / len(bodies) * 1e6
    rate = len(bodies) / seconds if seconds > 0 else 0.0
    return {"sink_us_per_packet": round(per_packet_us, 2), "stream_packets_per_s": round(rate, 1),
            "cpu_pct_per_stream_inside": round(per_packet_us * rate / 1e6 * 100, 3)}


def measure_finalise(folder: Path, scratch: Path) -> dict[str, Any]:
    """The remux of the run's dump into its file, again, timed: the CPU recording costs once a lesson closes
    (in a low-priority process of its own in `classroom serve`), as a share of the lesson's duration."""
    dumps = sorted(folder.rglob("*.rtpdump"))
    if not dumps:
        return {}
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / dumps[0].name
    shutil.copyfile(dumps[0], copy)
    cpu0 = time.process_time()
    info = finalise(copy)
    cpu = time.process_time() - cpu0
    return {"finalise_cpu_s": round(cpu, 3),
            "finalise_cpu_pct_of_lesson": round(cpu / info.duration_s * 100, 2) if info.duration_s else None}


def record_bench(subs: int, duration: float, log: Any) -> dict[str, Any]:
    spec = ClipSpec()
    load_clip(spec)
    base = FanoutOptions(subs=1, duration=duration, log=log)
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        folder = Path(tmp)
        log("one subscriber, recording off")
        one_off = run_fanout(base, spec)
        log("one subscriber, recording on")
        one_on = run_fanout(replace(base, recording_folder=str(folder / "one")), spec)
        recorded = check_file(folder / "one")
        finalising = measure_finalise(folder / "one", folder / "again")
        inside = measure_sink(folder / "one", folder / "sink")
        log(f"recorded: {recorded}")
        log(f"{subs} subscribers, recording off")
        many_off = run_fanout(replace(base, subs=subs), spec)
        log(f"{subs} subscribers, recording on")
        many_on = run_fanout(replace(base, subs=subs, recording_folder=str(folder / "many")), spec)
        replay = measure_replay(Path(recorded["path"]), recorded["duration_s"], log) if recorded.get("path") else {}
    keys = ("sfu_cpu_cores", "cpu_ms_per_sub_s", "loss", "forward_latency_p99_ms", "machine_other_cores", "valid")

    def cores(run: dict[str, Any]) -> float | None:
        return run.get("sfu_cpu_cores")

    def diff_pct(on: dict[str, Any], off: dict[str, Any]) -> float | None:
        a, b = cores(on), cores(off)
        return round((a - b) * 100, 2) if a is not None and b is not None else None

    a, b = many_on.get("forward_latency_p99_ms"), many_off.get("forward_latency_p99_ms")
    recorded.pop("path", None)
    return {
        "streams": 1,
        "subs": subs,
        "cpu_pct_per_stream": diff_pct(one_on, one_off),
        "cpu_pct_per_stream_at_subs": diff_pct(many_on, many_off),
        "replay_cpu_pct_per_stream": replay.get("replay_cpu_pct_per_stream"),
        "recording_latency_p99_delta_ms": round(a - b, 2) if a is not None and b is not None else None,
        **finalising,
        **inside,
        "recorded": recorded,
        "replay": replay,
        "runs": {name: {k: run.get(k) for k in keys} for name, run in
                 (("one_off", one_off), ("one_on", one_on), ("subs_off", many_off), ("subs_on", many_on))},
        "valid": all(r.get("valid") for r in (one_off, one_on, many_off, many_on)),
        "machine": machine_description(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="classroom bench record", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subs", type=int, default=100, help="subscribers of the latency runs (default 100)")
    parser.add_argument("--duration", type=float, default=15.0, help="measurement window of each run (default 15)")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    if args.subs < 1 or args.duration <= 0:
        print("bench record: --subs >= 1 and --duration > 0", file=sys.stderr)
        return 2
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    try:
        result = record_bench(args.subs, args.duration, log)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"bench record: {exc}", file=sys.stderr)
        return 1
    result["command"] = " ".join(["classroom bench record", *argv])
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
