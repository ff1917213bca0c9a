"""Record the fuzz target's browser corpus (tests/media/corpus/) from real headless Chromium.

A Chromium publisher (fake camera and microphone) and a Chromium subscriber join a room of the
in-process media plane on 127.0.0.1. At the SFU's `Peer`, right after SRTP decryption, the datagrams
they send are recorded: the publisher's RTP (VP8 with Chromium's header extensions, Opus, and RTX
answering the SFU's NACKs: one video packet in 25 is dropped before the SFU sees it) and RTCP, and the
subscriber's RTCP (receiver reports, REMB, NACKs: one packet in 20 to it is dropped, PLI/FIR).

The SSRCs and payload types are rewritten to the fuzz target's (`fuzz_media.py`: camera 1111, its RTX
2222, audio 5555, the subscriber's slot 3333; VP8 97, RTX 98, Opus 111) so that the target routes
them as it would Chromium's; everything else is as Chromium sent it. A small selection of each kind
is saved as `<target>-<nnn>.bin`.

Run with `scripts/record-media-corpus` (inside a fresh network namespace; loopback only).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from playwright.async_api import async_playwright

from media.api import ParticipantRole, TrackKind
from media.config import MediaConfig
from media.keyframe import is_keyframe
from media.local import LocalMediaPlane
from media.peer import Peer
from media.rtp_header import RtpHeader

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
)
ROOM = "corpus"
# the fuzz target's numbers (tests/media/fuzz_media.py)
PUB_SSRC, PUB_RTX_SSRC, AUDIO_SSRC, SUB_SSRC = 1111, 2222, 5555, 3333
VP8, RTX, OPUS = 97, 98, 111
RECORD_SECONDS = 6.0
UPSTREAM_DROP_EVERY = 25
DOWNSTREAM_DROP_EVERY = 20

PAGE = """<!doctype html><meta charset="utf-8"><title>corpus</title><body><script>
async function join(role) {
  const pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  if (role === "lead") {
    const stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 360}, audio: true});
    for (const track of stream.getTracks()) pc.addTransceiver(track, {direction: "sendonly"});
  } else {
    pc.addTransceiver("video", {direction: "recvonly"});
    pc.addTransceiver("audio", {direction: "recvonly"});
    pc.ontrack = (e) => {
      if (e.track.kind !== "video") return;
      const v = document.createElement("video");
      v.muted = true; v.autoplay = true; v.srcObject = new MediaStream([e.track]);
      document.body.appendChild(v);
    };
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
    setTimeout(done, 3000);
  });
  const reply = await fetch("/join", {method: "POST", body: JSON.stringify({role, sdp: pc.localDescription.sdp})});
  const answer = await reply.json();
  if (answer.error) throw new Error(answer.error);
  await pc.setRemoteDescription({type: "answer", sdp: answer.sdp});
  window.pc = pc;
  return true;
}
</script></body>"""


class Recorder:
    """Decrypted datagrams at the SFU's `Peer`, by who sent them, with upstream loss injected."""

    def __init__(self) -> None:
        self.roles: dict[int, str] = {}  # id(peer) -> "pub" | "sub"
        self.rtp: list[tuple[Peer, bytes]] = []
        self.rtcp: list[tuple[str, Peer, bytes]] = []
        self.video_seen = 0

    def install(self) -> Callable[[], None]:
        on_rtp, on_rtcp = Peer._on_rtp, Peer._on_rtcp
        recorder = self

        async def rtp(peer: Peer, data: bytes, arrival_time_ms: int = 0) -> None:
            if recorder.roles.get(id(peer)) == "pub":
                hdr = RtpHeader.parse(data)
                camera = next((t for t in peer.inbound if t.kind == TrackKind.CAMERA), None)
                if hdr is not None and camera is not None and hdr.ssrc == camera.ssrc:
                    recorder.video_seen += 1
                    if recorder.video_seen % UPSTREAM_DROP_EVERY == 0:
                        return  # lost on the way: the SFU NACKs it and Chromium answers on RTX
                recorder.rtp.append((peer, data))
            await on_rtp(peer, data, arrival_time_ms)

        async def rtcp(peer: Peer, data: bytes) -> None:
            role = recorder.roles.get(id(peer))
            if role is not None:
                recorder.rtcp.append((role, peer, data))
            await on_rtcp(peer, data)

        Peer._on_rtp = rtp  # type: ignore[method-assign]
        Peer._on_rtcp = rtcp  # type: ignore[method-assign]

        def uninstall() -> None:
            Peer._on_rtp = on_rtp  # type: ignore[method-assign]
            Peer._on_rtcp = on_rtcp  # type: ignore[method-assign]

        return uninstall


def _rewrite_words(data: bytes, mapping: dict[int, int], start: int = 0) -> bytes:
    """Every 32-bit word (4-aligned from `start`) equal to a key of `mapping` replaced by its value."""
    out = bytearray(data)
    for pos in range(start, len(out) - 3, 4):
        (word,) = struct.unpack_from("!I", out, pos)
        if word in mapping:
            struct.pack_into("!I", out, pos, mapping[word])
    return bytes(out)


def normalise_rtp(data: bytes, ssrcs: dict[int, int], pts: dict[int, int]) -> bytes | None:
    hdr = RtpHeader.parse(data)
    if hdr is None or hdr.ssrc not in ssrcs:
        return None
    out = bytearray(data)
    out[1] = (out[1] & 0x80) | pts.get(hdr.payload_type, hdr.payload_type)
    struct.pack_into("!I", out, 8, ssrcs[hdr.ssrc])
    return bytes(out)


def _feedback_kind(data: bytes) -> str:
    """The (packet type, count/format) of each packet of a compound RTCP datagram, as a signature."""
    kinds, pos = [], 0
    while pos + 4 <= len(data):
        b0, ptype, words = struct.unpack_from("!BBH", data, pos)
        kinds.append(f"{ptype}.{b0 & 0x1F}")
        pos += (words + 1) * 4
    return "+".join(kinds)


def select(recorder: Recorder, plane: LocalMediaPlane) -> dict[str, list[bytes]]:
    room = plane.rooms[ROOM]
    pub = next(p for p in room.participants.values() if p.role == ParticipantRole.LEAD)
    sub = next(p for p in room.participants.values() if p.role == ParticipantRole.RECEIVER)
    camera, audio = pub.inbound.get(TrackKind.CAMERA), pub.inbound.get(TrackKind.AUDIO)
    assert camera is not None and audio is not None, "Chromium published no camera or no microphone"
    ssrcs = {camera.ssrc: PUB_SSRC, audio.ssrc: AUDIO_SSRC}
    if camera.rtx_ssrc is not None:
        ssrcs[camera.rtx_ssrc] = PUB_RTX_SSRC
    pts: dict[int, int] = {}
    for pt, codec in camera.codecs.items():
        if codec.name == "vp8":
            pts[pt] = VP8
            pts.update({rtx: RTX for rtx, apt in camera.rtx_apt.items() if apt == pt})
    pts.update({pt: OPUS for pt, codec in audio.codecs.items() if codec.name == "opus"})
    slot = sub.slots[0]
    sub_map = {slot.ssrc: SUB_SSRC, slot.rtx_ssrc: SUB_SSRC + 1}
    pub_map = {k: v for k, v in ssrcs.items() if k is not None}

    key: list[bytes] = []
    delta: list[bytes] = []
    rtx_answers: list[bytes] = []
    rtx_padding: list[bytes] = []
    answered: set[bytes] = set()
    opus: list[bytes] = []
    for peer, data in recorder.rtp:
        if peer is not pub.peer:
            continue
        hdr = RtpHeader.parse(data)
        out = normalise_rtp(data, pub_map, pts)
        if hdr is None or out is None:
            continue
        if hdr.ssrc == camera.rtx_ssrc:
            # answers to the SFU's NACKs first (an original sequence number and a payload), then
            # Chromium's padding-only probes
            osn = data[hdr.payload_start : hdr.payload_start + 2]
            if hdr.payload_end - hdr.payload_start <= 2:
                rtx_padding.append(out)
            elif osn not in answered:  # the SFU asks up to 4 times; one answer of each
                answered.add(osn)
                rtx_answers.append(out)
        elif hdr.ssrc == audio.ssrc:
            opus.append(out)
        elif is_keyframe("vp8", data[hdr.payload_start : hdr.payload_end]) or (key and len(key) < 4):
            key.append(out)
        else:
            delta.append(out)
    pub_rtcp: list[bytes] = []
    sub_rtcp: list[bytes] = []
    seen: dict[str, int] = {}
    for role, peer, data in recorder.rtcp:
        kind = f"{role}:{_feedback_kind(data)}"
        if seen.get(kind, 0) >= 2:
            continue
        seen[kind] = seen.get(kind, 0) + 1
        if role == "pub" and peer is pub.peer:
            pub_rtcp.append(_rewrite_words(data, pub_map))
        elif role == "sub" and peer is sub.peer:
            sub_rtcp.append(_rewrite_words(data, sub_map))
    return {
        # in the order a session sends them: a keyframe's first packets, deltas, RTX answers, audio
        "pub-rtp": key[:6] + delta[:8] + rtx_answers[:3] + rtx_padding[:1] + opus[:4],
        "pub-rtcp": pub_rtcp[:6],
        "sub-rtcp": sub_rtcp[:12],
    }


async def record(out: Path = CORPUS) -> dict[str, int]:
    plane = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=48000, udp_port_max=48099))
    await plane.start()
    await plane.open_room(ROOM)
    recorder = Recorder()
    uninstall = recorder.install()

    async def join(request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        role = ParticipantRole.LEAD if body["role"] == "lead" else ParticipantRole.RECEIVER
        try:
            answer = await plane.join(ROOM, body["role"], role, body["sdp"])
        except Exception as exc:
            return web.json_response({"error": str(exc)})
        participant = plane.rooms[ROOM].participants[body["role"]]
        recorder.roles[id(participant.peer)] = "pub" if role == ParticipantRole.LEAD else "sub"
        return web.json_response({"sdp": answer})

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/join", join)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=list(FLAGS), headless=True)
            try:
                publisher = await browser.new_page()
                await publisher.goto(f"http://127.0.0.1:{port}/")
                await publisher.evaluate("join('lead')")
                subscriber = await browser.new_page()
                await subscriber.goto(f"http://127.0.0.1:{port}/")
                await subscriber.evaluate("join('class')")
                await _lossy_downlink(plane)
                await asyncio.sleep(RECORD_SECONDS)
                chosen = select(recorder, plane)
            finally:
                await browser.close()
    finally:
        uninstall()
        await runner.cleanup()
        await plane.stop()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    counts = {}
    for target, datagrams in chosen.items():
        for i, data in enumerate(datagrams):
            (out / f"{target}-{i:03d}.bin").write_bytes(data)
        counts[target] = len(datagrams)
    return counts


async def _lossy_downlink(plane: LocalMediaPlane, timeout: float = 15.0) -> None:
    """Once the subscriber's SRTP path is up, drop one datagram in DOWNSTREAM_DROP_EVERY to it, so
    that Chromium NACKs (and, now and then, asks for a keyframe)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sub = plane.rooms[ROOM].participants.get("class")
        wire = sub.slots[0].wire if sub is not None and sub.slots else None
        if wire is not None and wire.up:
            wire.gso = False  # one sendto per packet, so single packets can be dropped
            wire.sendto = _dropping(wire.sendto, DOWNSTREAM_DROP_EVERY)
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the Chromium subscriber never connected")


def _dropping(
    send: Callable[[bytes, tuple[str, int]], object], every: int
) -> Callable[[bytes, tuple[str, int]], object]:
    count = [0]

    def lossy(data: bytes, addr: tuple[str, int]) -> object:
        count[0] += 1
        if count[0] % every == 0:
            return None
        return send(data, addr)

    return lossy


def main() -> None:
    counts = asyncio.run(record())
    print(json.dumps(counts))
    if not all(counts.values()):
        sys.exit(f"some kinds of datagram were not seen: {counts}")


if __name__ == "__main__":
    main()
