"""`classroom bench join`: N receiving classrooms join one live lesson within one second.

Starts `classroom serve` on 127.0.0.1 with a fresh data folder, builds a lesson whose window is open
(`signaling.trial`), puts an aiortc lead on air, then starts N aiortc classroom clients spread evenly
over one second. Each measures from opening its WebSocket to its first decoded video frame (join,
offer/answer, ICE, DTLS, the SFU's keyframe wait, decode). Prints one JSON object (or a text line).
All traffic stays on loopback; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from signaling.client import Peer, ProtocolClient, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float, digits: int = 1) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[k], digits)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class _Server:
    def __init__(self, classrooms: int, media: str, far: str = "") -> None:
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-join-")
        self.data = Path(self.tmp.name)
        self.tz = lesson_now_timezone()
        env = {
            **os.environ,
            "CLASSROOM_SCHEDULER__TIMEZONE": self.tz,
            "CLASSROOM_SCHEDULER__MAX_RECEIVERS_FAMOUS_SCHOOL": str(max(100, classrooms)),
            "CLASSROOM_SCHEDULER__MEDIA_CAPACITY_STREAMS": str(max(600, classrooms * 4)),
            "CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": ",".join(["127.0.0.1", *([far] if far else [])]),
            # one address joins everything here, which the per-address limit would rightly stop
            "CLASSROOM_SIGNALING__JOIN_BURST": str(classrooms * 4 + 50),
            "CLASSROOM_SIGNALING__JOIN_PER_MINUTE": str(classrooms * 240 + 600),
            "CLASSROOM_SIGNALING__WS_MAX_UNJOINED_PER_ADDRESS": str(classrooms * 2 + 50),
            "PYTHONUNBUFFERED": "1",
        }
        self.log = open(self.data / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "classroom.cli", "serve", "--host", "0.0.0.0" if far else "127.0.0.1",
             "--port", str(self.port),
             "--data-dir", str(self.data), "--media", media],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"classroom serve exited: {(self.data / 'serve.log').read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("classroom serve did not become ready")

    def tail(self) -> str:
        return (self.data / "serve.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
        self.tmp.cleanup()


async def _one(ws_url: str, token: str, lesson_id: int, delay: float, timeout: float) -> dict[str, Any]:
    await asyncio.sleep(delay)
    peer = Peer()
    fields = peer.as_classroom()
    t0 = time.monotonic()
    client: ProtocolClient | None = None
    try:
        client = await asyncio.wait_for(join_with_media(ws_url, token, peer, fields, lesson_id), timeout)
        answered = time.monotonic()
        await asyncio.wait_for(peer.first_frame.wait(), max(0.1, timeout - (answered - t0)))
        assert peer.first_frame_at is not None
        return {"ok": True, "answer_ms": (answered - t0) * 1000, "first_frame_ms": (peer.first_frame_at - t0) * 1000,
                "peer": peer, "client": client}
    except (TimeoutError, OSError, ConnectionError, RuntimeError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200], "peer": peer, "client": client}


async def run(classrooms: int, media: str, timeout: float, cut_links: int = 0, cut_seconds: float = 10.0
              ) -> dict[str, Any]:
    from signaling.bench_cut import OURS
    from signaling.bench_cut import cut_links as run_cuts

    server = _Server(classrooms, media, OURS if cut_links else "")
    cuts: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    lead_peer = Peer()
    lead: ProtocolClient | None = None
    try:
        await asyncio.to_thread(server.wait_ready)
        api = AdminApi(f"http://127.0.0.1:{server.port}", (server.data / "admin-token").read_text().strip())
        try:
            world = await build_world(api, server.tz, receivers=classrooms)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log:\n{server.tail()}") from None
        lesson_id = world.lesson_ids[0]
        ws_url = f"ws://127.0.0.1:{server.port}/ws"
        lead = await join_with_media(ws_url, await join_token(api, lesson_id, "lead"), lead_peer,
                                     lead_peer.as_lead(), lesson_id)
        await lead.expect("lead", timeout=15)  # on air: the classrooms measure joining, not the lead's start
        tokens = [await join_token(api, lesson_id, "receiver", c) for c in world.receiving_classroom_ids]
        # the last `cut_links` classrooms sit behind a cable of their own, in another network namespace
        tokens, far_tokens = tokens[: classrooms - cut_links], tokens[classrooms - cut_links :]
        started = time.monotonic()
        results = await asyncio.gather(
            *(_one(ws_url, tok, lesson_id, i / max(1, classrooms), timeout) for i, tok in enumerate(tokens))
        )
        wall = time.monotonic() - started
        if far_tokens:
            cuts = await run_cuts(ws_url, lesson_id, far_tokens, cut_seconds)
            # the classrooms that kept their cable kept playing
            playing = await asyncio.gather(*(_still_playing(r["peer"]) for r in results if r["ok"]))
            cuts["others_still_playing"] = sum(playing)
    finally:
        for r in results:
            with contextlib.suppress(Exception):
                if r.get("client") is not None:
                    await r["client"].close()
                await r["peer"].close()
        if lead is not None:
            await lead.close()
        await lead_peer.close()
        await asyncio.to_thread(server.stop)
    if cuts is not None:
        detected, recovered = cuts.pop("outage_detected_ms"), cuts.pop("recovered_ms")
        cuts.update({
            "outage_detected_p50_ms": percentile(detected, 50), "outage_detected_p95_ms": percentile(detected, 95),
            "recovered_p50_ms": percentile(recovered, 50), "recovered_p95_ms": percentile(recovered, 95),
            "recovered_max_ms": round(max(recovered), 1) if recovered else None,
        })
    firsts = [r["first_frame_ms"] for r in results if r["ok"]]
    answers = [r["answer_ms"] for r in results if r["ok"]]
    errors = sorted({r["error"] for r in results if not r["ok"]})
    return {
        "classrooms": classrooms,
        "join_to_first_frame_p50_ms": percentile(firsts, 50),
        "join_to_first_frame_p95_ms": percentile(firsts, 95),
        "join_to_first_frame_max_ms": round(max(firsts), 1) if firsts else None,
        "join_to_answer_p50_ms": percentile(answers, 50),
        "join_to_answer_p95_ms": percentile(answers, 95),
        "failures": len(tokens) - len(firsts),
        "errors": errors[:5],
        "joins_spread_over_s": 1.0,
        "wall_s": round(wall, 2),
        "media": media,
        **({"cut": cuts} if cuts is not None else {}),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


async def _still_playing(peer: Peer) -> bool:
    before = peer.frames
    await asyncio.sleep(0.5)
    return peer.frames > before


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="classroom bench join", description=__doc__.splitlines()[0])
    p.add_argument("--classrooms", type=int, default=50, help="receiving classrooms joining (default 50)")
    p.add_argument("--media", choices=("workers", "local"), default="workers")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds a classroom may take (then: failure)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--cut-links", type=int, default=0, metavar="K",
                   help="K of the classrooms lose their network for --cut-seconds mid-lesson (needs root, "
                        "run in `unshare -n`); reports outage_detected_p95_ms and recovered_p95_ms")
    p.add_argument("--cut-seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    # a client's decoder may start on a packet before the keyframe and says so; that is not a failure
    logging.getLogger("aiortc").setLevel(logging.ERROR)
    logging.getLogger("aioice").setLevel(logging.WARNING)  # every candidate check is news only when debugging
    if not 1 <= args.classrooms <= 500:
        p.error("--classrooms is 1 to 500")
    if not 0 <= args.cut_links <= args.classrooms:
        p.error("--cut-links is 0 to --classrooms")
    result = asyncio.run(run(args.classrooms, args.media, args.timeout, args.cut_links, args.cut_seconds))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['classrooms']} classrooms: join to first frame p50 {result['join_to_first_frame_p50_ms']} ms, "
            f"p95 {result['join_to_first_frame_p95_ms']} ms, {result['failures']} failures"
        )
        if "cut" in result:
            c = result["cut"]
            print(f"{c['cut_links']} cut links: outage noticed p95 {c['outage_detected_p95_ms']} ms, "
                  f"playing again p95 {c['recovered_p95_ms']} ms after the link came back, "
                  f"{c['not_recovered']} not recovered")
    return 0 if result["failures"] == 0 and not result.get("cut", {}).get("not_recovered") else 1
