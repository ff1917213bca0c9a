"""Finalise a recording: the raw dump of a publisher's packets becomes one playable file, never transcoded.

Depacketized frames (`media/depacketize.py`) are muxed with PyAV: WebM for VP8 and Opus, MP4 for
H.264 (with Opus), the camera, the audio and the courseware (screen) as tracks of one file. Each
track's timestamps come from its RTP clock, anchored to when its first frame arrived, so tracks stay in
sync with each other; a publisher that reconnects (a new SSRC, a new RTP clock) is anchored again and
continues the same track; a clock that jumps by more than `REANCHOR_S` against arrival times is
anchored again too. Lost packets drop their frame (and, for video, the frames after it until the next
keyframe): the file shows a short freeze, never a corrupt picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import hashlib
import json
import logging
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from media.depacketize import Frame, FrameAssembler, vp8_size
from media.rtpdump import DumpError, TrackInfo, read_dump

log = logging.getLogger(__name__)

MS = fractions.Fraction(1, 1000)
REANCHOR_S = 1.0
SLOTS = ("camera", "screen", "audio")  # the order of the tracks in the file


class RecordingError(RuntimeError):
    pass


@dataclass
class RecordingInfo:
    path: Path
    container: str
    started_at: float  # wall clock of the first packet
    duration_s: float
    tracks: dict[str, int]  # slot -> frames written
    frames_dropped: int
    packets_bad: int
    size_bytes: int
    sha256: str
    # the courseware alone, remuxed into a file of its own (a browser's <video> plays only a file's first
    # video track): the player shows it beside the camera; None when nothing was shared
    screen_path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "container": self.container, "started_at": self.started_at,
                "duration_s": round(self.duration_s, 3), "tracks": self.tracks, "frames_dropped": self.frames_dropped,
                "packets_bad": self.packets_bad, "size_bytes": self.size_bytes, "sha256": self.sha256,
                "screen_path": str(self.screen_path) if self.screen_path else None}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _rtp(body: bytes) -> tuple[int, int, bool, int, bytes] | None:
    """(seq, ts, marker, ssrc, payload) of an RTP packet, or None if it is not one."""
    if len(body) < 12 or body[0] >> 6 != 2:
        return None
    first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", body)
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(body) < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(body[offset + 2 : offset + 4], "big")
    end = len(body)
    if first & 0x20:  # padding
        if not body or body[-1] == 0 or body[-1] > end - offset:
            return None
        end -= body[-1]
    if offset > end:
        return None
    return seq, ts, bool(second & 0x80), ssrc, body[offset:end]


@dataclass
class _Clock:
    """Maps one track's RTP timestamps onto the recording's timeline (seconds since its start)."""

    rate: int
    anchor_ts: int | None = None
    anchor_at: float = 0.0

    def at(self, frame: Frame, origin: float) -> float:
        arrived = frame.arrival - origin
        if self.anchor_ts is None:
            self.anchor_ts, self.anchor_at = frame.rtp_ts, arrived
        t = self.anchor_at + (frame.rtp_ts - self.anchor_ts) / self.rate
        if abs(t - arrived) > REANCHOR_S:  # the clock jumped (an encoder restarted): trust the arrival again
            self.anchor_ts, self.anchor_at = frame.rtp_ts, arrived
            t = arrived
        return t


@dataclass
class _Slot:
    kind: str
    codec: str
    stream: Any = None
    last_ms: int = -1
    frames: int = 0
    size: tuple[int, int] | None = None
    extradata: bytes | None = None


@dataclass
class _Track:
    info: TrackInfo
    assembler: FrameAssembler
    clock: _Clock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = _Clock(self.info.clock_rate)


def _h264_parameter_sets(annexb: bytes) -> bytes | None:
    """The SPS and PPS of a keyframe, in Annex B: the MP4 muxer builds its avcC from them."""
    parts, i = [], 0
    starts = []
    while True:
        j = annexb.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(annexb)
        while end > s and annexb[end - 1] == 0:
            end -= 1
        if annexb[s] & 0x1F in (7, 8):
            parts.append(b"\x00\x00\x00\x01" + annexb[s:end])
    return b"".join(parts) if len(parts) >= 2 else None


@dataclass
class _Tally:
    tracks: dict[int, _Track] = field(default_factory=dict)
    retired: list[_Track] = field(default_factory=list)
    bad: int = 0

    def dropped(self) -> int:
        return sum(t.assembler.frames_dropped for t in (*self.tracks.values(), *self.retired))

    def bad_packets(self) -> int:
        return self.bad + sum(t.assembler.packets_bad for t in (*self.tracks.values(), *self.retired))


def _frames(dump: Path, tally: _Tally) -> Iterator[tuple[_Track, Frame]]:
    """Every frame of the dump, track by track in arrival order; a track that a reconnect replaced (a new
    track of the same slot) hands on what it still holds before the new one starts."""
    declared, records = read_dump(dump)
    for rec in records:
        if rec.type == b"T":
            info = declared[-1]
            for number, old in list(tally.tracks.items()):
                if old.info.slot == info.slot or number == info.number:
                    for frame in old.assembler.flush():
                        yield old, frame
                    tally.retired.append(tally.tracks.pop(number))
            tally.tracks[info.number] = _Track(info, FrameAssembler(info.codec))
            continue
        track = tally.tracks.get(rec.track)
        if track is None:
            continue
        parsed = _rtp(rec.body)
        if parsed is None:
            tally.bad += 1
            continue
        seq, ts, marker, _ssrc, payload = parsed
        for frame in track.assembler.push(seq, ts, marker, payload, rec.arrival):
            yield track, frame
    for track in tally.tracks.values():
        for frame in track.assembler.flush():
            yield track, frame


def _survey(dump: Path) -> tuple[dict[str, _Slot], float | None]:
    """First pass: which slots the recording has, each video slot's size and parameter sets, the start."""
    tally = _Tally()
    slots: dict[str, _Slot] = {}
    origin: float | None = None
    for track, frame in _frames(dump, tally):
        info = track.info
        slot = slots.setdefault(info.slot, _Slot(info.kind, info.codec))
        origin = frame.arrival if origin is None else min(origin, frame.arrival)
        if info.kind == "video" and slot.size is None and frame.keyframe:
            if info.codec == "vp8":
                slot.size = vp8_size(frame.data)
            else:
                slot.extradata = _h264_parameter_sets(frame.data)
                slot.size = (0, 0)
        if all(s.size is not None for s in slots.values() if s.kind == "video") and len(slots) == len(
                {t.info.slot for t in tally.tracks.values()}) and frame.arrival - origin > 10:
            break  # every track seen and sized: the rest of the dump is the second pass's
    return slots, origin


def _add_stream(output: Any, slot: _Slot, name: str) -> Any:
    """A stream of `output` for `slot`'s frames as they are (codec parameters only: nothing is encoded)."""
    if slot.kind == "video":
        stream = output.add_stream("libvpx" if slot.codec == "vp8" else "h264", rate=30)
        width, height = slot.size or (0, 0)
        stream.width, stream.height = width or 640, height or 360
        stream.pix_fmt = "yuv420p"
        if slot.extradata:
            stream.codec_context.extradata = slot.extradata
    else:
        stream = output.add_stream("libopus", rate=48000)
        stream.layout = "stereo"
    stream.time_base = MS
    stream.metadata["title"] = name
    return stream


def finalise(dump: Path, out: Path | None = None) -> RecordingInfo:
    """Write the playable file of a dump (WebM for VP8, MP4 for H.264) next to it; its facts."""
    slots, origin = _survey(dump)
    if origin is None or not slots:
        raise RecordingError(f"{dump} holds no complete frame: nothing to write")
    h264 = any(s.codec == "h264" for s in slots.values())
    container = "mp4" if h264 else "webm"
    out = out or dump.with_suffix(f".{container}")
    tmp = out.with_suffix(out.suffix + ".part")
    output = av.open(str(tmp), "w", format=container)
    screen = slots.get("screen")
    screen_out = out.with_name(f"{out.stem}.screen.{container}")
    screen_tmp = screen_out.with_suffix(screen_out.suffix + ".part")
    side = av.open(str(screen_tmp), "w", format=container) if screen is not None else None
    side_stream = None
    try:
        for name in sorted(slots, key=lambda n: SLOTS.index(n) if n in SLOTS else len(SLOTS)):
            slot = slots[name]
            slot.stream = _add_stream(output, slot, name)
        if side is not None and screen is not None:
            side_stream = _add_stream(side, screen, "screen")
        tally = _Tally()
        for track, frame in _frames(dump, tally):
            slot = slots.get(track.info.slot)
            if slot is None or slot.stream is None:
                continue
            if slot.codec == "h264" and not frame.keyframe and not slot.frames:
                continue
            ms = max(slot.last_ms + 1, round(track.clock.at(frame, origin) * 1000))
            slot.last_ms = ms
            packet = av.Packet(frame.data)
            packet.stream = slot.stream
            packet.pts = packet.dts = ms
            packet.time_base = MS
            packet.is_keyframe = frame.keyframe
            output.mux(packet)
            if side is not None and slot is screen:
                copy = av.Packet(frame.data)
                copy.stream = side_stream
                copy.pts = copy.dts = ms
                copy.time_base = MS
                copy.is_keyframe = frame.keyframe
                side.mux(copy)
            slot.frames += 1
        dropped, bad = tally.dropped(), tally.bad_packets()
    except Exception:
        output.close()
        tmp.unlink(missing_ok=True)
        if side is not None:
            side.close()
            screen_tmp.unlink(missing_ok=True)
        raise
    output.close()
    tmp.replace(out)
    screen_path = None
    if side is not None:
        side.close()
        if screen is not None and screen.frames:
            screen_tmp.replace(screen_out)
            screen_path = screen_out
        else:
            screen_tmp.unlink(missing_ok=True)
    duration = max((s.last_ms for s in slots.values()), default=0) / 1000
    info = RecordingInfo(out, container, origin, duration, {n: s.frames for n, s in slots.items()}, dropped, bad,
                         out.stat().st_size, sha256_of(out), screen_path)
    log.info("recording %s: %.1f s, tracks %s, %d frames dropped", out, duration, info.tracks, dropped)
    return info



def info_from_json(data: dict[str, Any]) -> RecordingInfo:
    return RecordingInfo(Path(data["path"]), str(data["container"]), float(data["started_at"]),
                         float(data["duration_s"]), {str(k): int(v) for k, v in data["tracks"].items()},
                         int(data["frames_dropped"]), int(data["packets_bad"]), int(data["size_bytes"]),
                         str(data["sha256"]), Path(data["screen_path"]) if data.get("screen_path") else None)


async def finalise_elsewhere(dump: Path, timeout_s: float = 600.0) -> RecordingInfo:
    """`finalise` in a process of its own, at low priority: a long lesson's remux takes the CPU for many
    seconds, and lessons end together at the bell; in the media worker's own process it would take the
    interpreter's lock from the rooms still forwarding there. Raises RecordingError with its reason."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "media.recording", str(dump),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RecordingError(f"{dump.name}: finalising took over {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise RecordingError(lines[-1] if lines else f"the finaliser exited with {proc.returncode}")
    return info_from_json(json.loads(out))


def _main(argv: list[str]) -> int:
    """`python -m media.recording DUMP`: finalise one dump, print its facts as JSON (what
    `finalise_elsewhere` runs; also by hand, for a dump left behind)."""
    if len(argv) != 1:
        print("usage: python -m media.recording DUMP", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(10)  # below the live lessons
    try:
        info = finalise(Path(argv[0]))
    except (RecordingError, DumpError, OSError, ValueError, av.FFmpegError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
