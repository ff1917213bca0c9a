"""`classroom bench relay`: what the relay link between two workers adds, measured in one run.

    classroom bench relay --subs 40 --json

The fan-out bench's room (`media/bench.py`: a real server process, the pre-encoded 2 Mbit/s 720p VP8
clip with Opus, real aiortc subscribers on loopback) on the worker plane with two workers, each
admitting `--subs / 2` subscriptions: the first half of the subscribers join the worker that owns the
room, the rest spill into a linked copy of the room in the other worker. Printed:

- `relay_added_latency_p99_ms`: forwarding latency p99 (publisher's send to the subscriber's kernel
  receive timestamp) of the subscribers behind the link minus that of the subscribers at the origin,
  same run, same window (target under 5); `relay_added_latency_p50_ms` the same at the median;
- `origin_streams_per_link_per_track`: packets the origin sent on the link for each of the lead's
  tracks over the window, divided by the packets of that track it received (1: each track crosses
  once, however many subscribers the copy has), the largest over the tracks, with each track's figure;
- `loss` (all subscribers), `loss_origin`, `loss_copy`;
- `cpu_cores_by_worker`: each process's CPU over the window (cores): the control process, the origin
  worker and the copy worker.

`--auth-costs` prints instead what protecting one relay datagram costs in this process, per packet of
`--packet-bytes`, for the choice of the link's sealing (`media/relay_seal.py`): what the link does
(`link_seal_us`: AES-256-GCM with its header and counter, `LinkSeal.seal`; `link_open_us`: opening it,
`LinkSeal.open`), the encrypting alternatives (`aes256gcm_us`, `chacha20poly1305_us`: the bare AEAD
call; `srtp_protect_us`: pylibsrtp, AES-CM-128 + HMAC-SHA1-80, header included) and the tags that
only authenticate (`blake2b_128_us`, what the link used before it encrypted; `hmac_sha256_128_us`).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import struct
import sys
import time
import timeit
from typing import Any

import pylibsrtp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from media.bench import FanoutOptions, percentile, run_fanout
from media.bench_clip import ClipSpec
from media.relay import KIND_RTP
from media.relay_seal import LinkSeal


def _latency(reports: list[dict[str, Any]], q: float) -> float | None:
    samples: list[float] = []
    for rep in reports:
        samples += rep["video"]["latencies_ms"] + rep["audio"]["latencies_ms"]
    value = percentile(samples, q)
    return None if value is None else round(value, 2)


def _minus(a: float | None, b: float | None) -> float | None:
    return round(a - b, 2) if a is not None and b is not None else None


def _loss(reports: list[dict[str, Any]]) -> float | None:
    expected = sum(rep[k]["expected"] for rep in reports for k in ("video", "audio"))
    received = sum(rep[k]["received"] for rep in reports for k in ("video", "audio"))
    return round((expected - received) / expected, 6) if expected else None


def _sent_on_links(stats: dict[str, Any], lead: str) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for link in stats.get("links", []):
        for sender in link["sent"]:
            if sender["participant_id"] == lead:
                key = (link["link_id"], sender["track"])
                out[key] = out.get(key, 0) + sender["packets_sent"]
    return out


def relay_figures(result: dict[str, Any]) -> dict[str, Any]:
    """The relay's figures from a raw fan-out run on two workers."""
    raw = result["raw"]
    start, end = raw["stats_at_start"], raw["stats_at_end"]
    where = {pid: p.get("worker_pid") for pid, p in end["participants"].items()}
    origin_pid = end.get("worker_pid")
    lead = end.get("lead_id")
    reports = raw["reports"]
    at_origin = [r for r in reports if where.get(r["name"]) == origin_pid]
    behind = [r for r in reports if r["name"] in where and where[r["name"]] != origin_pid]
    p99_origin, p99_copy = _latency(at_origin, 99), _latency(behind, 99)
    p50_origin, p50_copy = _latency(at_origin, 50), _latency(behind, 50)
    published0 = start["participants"][lead]["published"]
    published1 = end["participants"][lead]["published"]
    sent0, sent1 = _sent_on_links(start, lead), _sent_on_links(end, lead)
    per_track: dict[str, float | None] = {}
    for (link_id, track), packets in sent1.items():
        received = published1[track]["packets"] - published0[track]["packets"]
        sent = packets - sent0.get((link_id, track), 0)
        per_track[f"{link_id}/{track}"] = round(sent / received, 3) if received else None
    streams = [v for v in per_track.values() if v is not None]
    copies = sorted({w for w in where.values() if w != origin_pid and w is not None})
    names = {raw["control_pid"]: "control", origin_pid: "origin"} | {pid: f"copy-{i}" for i, pid in enumerate(copies)}
    return {
        "subs_at_origin": len(at_origin),
        "subs_behind_link": len(behind),
        "forward_latency_p99_origin_ms": p99_origin,
        "forward_latency_p99_behind_link_ms": p99_copy,
        "relay_added_latency_p99_ms": _minus(p99_copy, p99_origin),
        "forward_latency_p50_origin_ms": p50_origin,
        "forward_latency_p50_behind_link_ms": p50_copy,
        "relay_added_latency_p50_ms": _minus(p50_copy, p50_origin),
        "origin_streams_per_link_per_track": max(streams) if streams else None,
        "streams_per_link_per_track": per_track,
        "links": len({link_id for link_id, _ in sent1}),
        "loss": result["loss"],
        "loss_origin": _loss(at_origin),
        "loss_copy": _loss(behind),
        "cpu_cores_by_worker": {names.get(int(pid), str(pid)): cores for pid, cores in raw["cpu_cores_by_pid"].items()},
        "link_refused": sum(link["refused"] for c in end.get("copies", []) for link in c["links"])
        + sum(link["refused"] for link in end.get("links", [])),
    }


def auth_costs(packet_bytes: int, rounds: int = 3, number: int = 20000) -> dict[str, Any]:
    """Microseconds per packet to protect (or open) one relay datagram, best of `rounds`."""
    key = os.urandom(32)
    payload = os.urandom(packet_bytes)
    header = struct.Struct("!BBHII")
    policy = pylibsrtp.Policy(key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    session = pylibsrtp.Session(policy=policy)
    seq = [0]

    def srtp() -> bytes:
        seq[0] = (seq[0] + 1) & 0xFFFF
        return session.protect(header.pack(0x80, 96, seq[0], 0, 1234) + payload)

    sender, receiver = LinkSeal(key, origin=True), LinkSeal(key, origin=False)
    rtp = header.pack(0x80, 96, 1, 0, 1234) + payload
    sealed = sender.seal(KIND_RTP, 1, rtp)
    aes, chacha = AESGCM(key), ChaCha20Poly1305(key)
    nonce, aad = os.urandom(12), os.urandom(12)
    candidates = {
        "link_seal_us": lambda: sender.seal(KIND_RTP, 1, rtp),
        "link_open_us": lambda: receiver.open(sealed),
        "aes256gcm_us": lambda: aes.encrypt(nonce, payload, aad),
        "chacha20poly1305_us": lambda: chacha.encrypt(nonce, payload, aad),
        "blake2b_128_us": lambda: hashlib.blake2b(payload, key=key, digest_size=16).digest(),
        "hmac_sha256_128_us": lambda: hmac.digest(key, payload, "sha256")[:16],
        "srtp_protect_us": srtp,
    }
    return {
        "packet_bytes": packet_bytes,
        **{name: round(min(timeit.repeat(fn, number=number, repeat=rounds)) / number * 1e6, 2)
           for name, fn in candidates.items()},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="classroom bench relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subs", type=int, default=40, help="subscribers, half of them behind the link (default 40)")
    parser.add_argument("--duration", type=float, default=10.0, help="measurement window in seconds (default 10)")
    parser.add_argument("--publisher-pacing", type=float, default=0.0,
                        help="pace the publisher's video at this multiple of its bitrate (browsers: 2.5); 0: bursts")
    parser.add_argument("--port-min", type=int, default=45000, help="lowest UDP port of the SFU")
    parser.add_argument("--port-max", type=int, default=46999, help="highest UDP port of the SFU")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--auth-costs", action="store_true",
                        help="only measure what protecting one relay datagram costs (the link's AES-GCM seal "
                             "and open, ChaCha20-Poly1305, SRTP, BLAKE2b, HMAC)")
    parser.add_argument("--packet-bytes", type=int, default=1200, help="with --auth-costs: packet size (1200)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.auth_costs:
        costs = auth_costs(max(1, min(args.packet_bytes, 1400)))
        print(json.dumps(costs) if args.json else json.dumps(costs, indent=2))
        return 0
    if args.subs < 2 or args.duration <= 0:
        print("bench relay: --subs >= 2 and --duration > 0", file=sys.stderr)
        return 2
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[bench relay {time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    options = FanoutOptions(
        subs=args.subs, duration=args.duration, plane="workers", workers=2, capacity=(args.subs + 1) // 2,
        pacing=max(0.0, args.publisher_pacing), port_min=args.port_min, port_max=args.port_max, raw=True,
        log=log,
    )
    try:
        result = run_fanout(options, ClipSpec())
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"bench relay: {exc}", file=sys.stderr)
        return 1
    figures = relay_figures(result)
    result.pop("raw")
    out = {**figures, "fanout": {k: v for k, v in result.items() if not k.startswith("server_events")},
           "command": " ".join(["classroom bench relay", *argv])}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
