"""`classroom bench join --cut-links K`: K receiving classrooms lose their network for a while mid-lesson.

The K classrooms run in one client process inside a network namespace of their own (`signaling.netns`),
joined to the server's by a veth pair; the benchmark sets that veth down for `--cut-seconds` and up
again, as a pulled and replugged cable. Each classroom behaves as the web page does
(`signaling.client.ResilientClassroom`): it notices the outage from its heartbeat and reconnects by
itself. Measured per classroom: from the cut to the outage noticed (`outage_detected`), and from the
link back to its first decoded frame (`recovered`). Needs root in a namespace of the benchmark's own
(`unshare -n`); all traffic stays on loopback and the benchmark's veth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from signaling.client import ResilientClassroom

OURS, THEIRS = "10.213.9.1", "10.213.9.2"


async def worker(config: dict[str, Any]) -> None:
    """Inside the namespace: run the classrooms, report each first frame and recovery as a JSON line,
    and the whole record when standard input closes."""
    rooms = [ResilientClassroom(config["ws_url"], tok, config["lesson_id"], (THEIRS,)) for tok in config["tokens"]]
    tasks = [asyncio.ensure_future(r.run()) for r in rooms]
    reported: set[tuple[int, float]] = set()
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    eof = asyncio.ensure_future(reader.read())
    while not eof.done():
        for i, r in enumerate(rooms):
            for at in ([r.first_frame_at] if r.first_frame_at else []) + r.recoveries:
                if (i, at) not in reported:
                    reported.add((i, at))
                    print(json.dumps({"classroom": i, "frame_at": at}), flush=True)
        await asyncio.wait({eof}, timeout=0.1)
    for r in rooms:
        await r.stop()
    for t in tasks:
        t.cancel()
    print(json.dumps({"done": [{"first_frame_at": r.first_frame_at, "outages": r.outages, "marks": r.marks,
                                "recoveries": r.recoveries, "errors": r.errors[-3:]} for r in rooms]}), flush=True)


async def cut_links(ws_url: str, lesson_id: int, tokens: list[str], cut_seconds: float,
                    timeout: float = 30.0) -> dict[str, Any]:
    """Run len(tokens) classrooms behind one veth, cut it for `cut_seconds`, and measure (run as root)."""
    from signaling.netns import Host

    host = Host("lcv9", OURS, THEIRS)
    proc: asyncio.subprocess.Process | None = None
    try:
        proc = await asyncio.create_subprocess_exec(
            "nsenter", f"--net={host.netns}", sys.executable, "-m", "signaling.bench_cut",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"ws_url": ws_url.replace("127.0.0.1", OURS), "lesson_id": lesson_id,
                                     "tokens": tokens}).encode() + b"\n")
        await proc.stdin.drain()
        frames: dict[int, list[float]] = {}

        async def read_until(pred: Any, limit: float) -> None:
            deadline = time.monotonic() + limit
            while not pred() and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    line = await asyncio.wait_for(proc.stdout.readline(), max(0.05, deadline - time.monotonic()))
                    if not line:
                        return
                    msg = json.loads(line)
                    if "frame_at" in msg:
                        frames.setdefault(msg["classroom"], []).append(msg["frame_at"])

        await read_until(lambda: len(frames) == len(tokens), timeout)
        playing = len(frames)
        await asyncio.sleep(2.0)  # the lesson runs a little before the cable goes
        cut_at = time.time()
        host.cut()
        await asyncio.sleep(cut_seconds)
        back_at = time.time()
        host.restore()
        await read_until(lambda: all(any(t > back_at for t in frames.get(i, [])) for i in range(len(tokens))), timeout)
        proc.stdin.close()
        final: dict[str, Any] = {}
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            if not line:
                break
            msg = json.loads(line)
            if "done" in msg:
                final = msg
                break
    finally:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        host.close()
    detected, recovered, failures = [], [], 0
    for record in final.get("done", []):
        outages = [t - cut_at for t in record["outages"] if cut_at <= t <= back_at + 1]
        after = [t - back_at for t in record["recoveries"] if t > back_at]
        if outages:
            detected.append(outages[0] * 1000)
        if after:
            recovered.append(after[0] * 1000)
        else:
            failures += 1
    # where the recovery's time goes: each step of the reconnect, from the link coming back (median)
    steps: dict[str, float] = {}
    for step in ("ws_open", "joined", "answer", "first_frame"):
        times = sorted(r["marks"][step] - back_at for r in final.get("done", []) if step in r.get("marks", {}))
        if times:
            steps[f"{step}_ms"] = round(times[len(times) // 2] * 1000, 1)
    return {"cut_links": len(tokens), "playing_before_cut": playing, "cut_seconds": cut_seconds,
            "reconnect_steps_p50": steps,
            "outage_detected_ms": detected, "recovered_ms": recovered, "not_recovered": failures,
            "errors": sorted({e for r in final.get("done", []) for e in r["errors"]})[:5]}


def main() -> None:
    config = json.loads(sys.stdin.readline())
    import logging

    logging.getLogger("aiortc").setLevel(logging.ERROR)
    asyncio.run(worker(config))


if __name__ == "__main__":
    main()
