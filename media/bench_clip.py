"""The benchmark's media: a pre-encoded 720p30 VP8 stream (~2 Mbit/s) plus Opus, encoded once and cached.

Every picture carries its frame number drawn as large seven-segment digits, so a test that decodes can
check order. The main stream is one keyframe at the start of the loop, then inter frames (a 10-second
loop, so about one unrequested keyframe per 10 s, as from a camera's encoder). Besides that the clip
holds an intra-coded version of every frame: a publisher that is asked for a keyframe (PLI/FIR) sends the
intra version of the frame that is due, the way a live encoder would answer, without encoding anything
while the benchmark runs.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import av
import numpy as np

CLIP_FORMAT_VERSION = 1
VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
AUDIO_FRAME_SAMPLES = 960  # 20 ms

# Seven-segment layout: which of the segments a..g are lit for each digit.
_SEGMENTS: Mapping[str, str] = MappingProxyType(
    {
        "0": "abcdef",
        "1": "bc",
        "2": "abdeg",
        "3": "abcdg",
        "4": "bcfg",
        "5": "acdfg",
        "6": "acdefg",
        "7": "abc",
        "8": "abcdefg",
        "9": "abcdfg",
    }
)


@dataclass(frozen=True, slots=True)
class ClipSpec:
    width: int = 1280
    height: int = 720
    fps: int = 30
    seconds: int = 10
    video_bitrate: int = 2_000_000
    audio_bitrate: int = 64_000

    @property
    def frames(self) -> int:
        return self.fps * self.seconds

    def cache_key(self) -> str:
        text = f"v{CLIP_FORMAT_VERSION}-{self.width}x{self.height}@{self.fps}-{self.seconds}s-"
        text += f"{self.video_bitrate}-{self.audio_bitrate}-av{av.__version__}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Clip:
    spec: ClipSpec
    video: list[bytes]  # one encoded VP8 frame per picture; video[0] is a keyframe
    video_intra: list[bytes]  # the same pictures, each coded as a keyframe
    audio: list[bytes]  # Opus packets of 20 ms

    @property
    def video_mbps(self) -> float:
        return sum(len(f) for f in self.video) * 8 * self.spec.fps / len(self.video) / 1e6


def draw_number(image: np.ndarray, number: int, x0: int, y0: int, height: int) -> None:
    """Draw `number` as seven-segment digits into a luma plane, white on a black box."""
    digit_w = height // 2
    thick = max(2, height // 10)
    text = str(number)
    box_w = len(text) * (digit_w + thick * 2) + thick * 2
    image[y0 - thick : y0 + height + thick, x0 - thick : x0 + box_w] = 16
    half = height // 2
    for i, ch in enumerate(text):
        x = x0 + i * (digit_w + thick * 2)
        rects = {
            "a": (x, y0, digit_w, thick),
            "b": (x + digit_w - thick, y0, thick, half),
            "c": (x + digit_w - thick, y0 + half, thick, half),
            "d": (x, y0 + height - thick, digit_w, thick),
            "e": (x, y0 + half, thick, half),
            "f": (x, y0, thick, half),
            "g": (x, y0 + half - thick // 2, digit_w, thick),
        }
        for seg in _SEGMENTS[ch]:
            rx, ry, rw, rh = rects[seg]
            image[ry : ry + rh, rx : rx + rw] = 235


def read_number(image: np.ndarray, x0: int, y0: int, height: int, digits: int) -> int:
    """Read back a number drawn by `draw_number` (for tests that decode the stream)."""
    digit_w = height // 2
    thick = max(2, height // 10)
    half = height // 2
    value = 0
    lookup = {frozenset(v): k for k, v in _SEGMENTS.items()}
    for i in range(digits):
        x = x0 + i * (digit_w + thick * 2)
        probes = {
            "a": (y0 + thick // 2, x + digit_w // 2),
            "b": (y0 + half // 2, x + digit_w - thick // 2),
            "c": (y0 + half + half // 2, x + digit_w - thick // 2),
            "d": (y0 + height - thick // 2 - 1, x + digit_w // 2),
            "e": (y0 + half + half // 2, x + thick // 2),
            "f": (y0 + half // 2, x + thick // 2),
            "g": (y0 + half, x + digit_w // 2),
        }
        lit = frozenset(s for s, (py, px) in probes.items() if image[py, px] > 128)
        if lit not in lookup:
            raise ValueError(f"digit {i} unreadable: segments {sorted(lit)}")
        value = value * 10 + int(lookup[lit])
    return value


def _pictures(spec: ClipSpec) -> Iterator[av.VideoFrame]:
    rng = np.random.default_rng(20261123)
    w, h = spec.width, spec.height
    # A smooth texture that pans, plus fresh grain in every picture, so that inter frames cost bits
    # the way a camera's do and the encoder has real work to do at ~2 Mbit/s.
    coarse = rng.integers(0, 256, size=(h // 8 + 1, w * 2 // 8 + 1), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:h, : w * 2].astype(np.int16)
    yy, xx = np.mgrid[0 : h // 2, 0 : w // 2]
    for n in range(spec.frames):
        shift = (n * 6) % w
        grain = rng.integers(-10, 11, size=(h, w), dtype=np.int16)
        luma = np.clip(texture[:, shift : shift + w] + grain, 0, 255).astype(np.uint8)
        draw_number(luma, n, 40, 40, 120)
        u = ((xx + n * 3) % 256).astype(np.uint8)
        v = ((yy + n * 2) % 256).astype(np.uint8)
        frame = av.VideoFrame(w, h, "yuv420p")
        frame.planes[0].update(luma.tobytes())
        frame.planes[1].update(u.tobytes())
        frame.planes[2].update(v.tobytes())
        frame.pts = n
        frame.time_base = Fraction(1, spec.fps)
        yield frame


def _encode_video(spec: ClipSpec, intra: bool) -> list[bytes]:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = spec.width
    codec.height = spec.height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, spec.fps)
    codec.framerate = Fraction(spec.fps, 1)
    codec.bit_rate = spec.video_bitrate * (4 if intra else 1)
    codec.gop_size = 1 if intra else spec.frames * 10
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(codec.bit_rate),
        "maxrate": str(codec.bit_rate),
        "bufsize": str(codec.bit_rate),
    }
    out: list[bytes] = []
    for frame in _pictures(spec):
        for packet in codec.encode(frame):
            out.append(bytes(packet))
    for packet in codec.encode(None):
        out.append(bytes(packet))
    if len(out) != spec.frames:
        raise RuntimeError(f"VP8 encoder returned {len(out)} frames for {spec.frames} pictures")
    if out[0][0] & 1:
        raise RuntimeError("the first VP8 frame is not a keyframe")
    return out


def _encode_audio(spec: ClipSpec) -> list[bytes]:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_CLOCK
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = spec.audio_bitrate
    codec.time_base = Fraction(1, AUDIO_CLOCK)
    rng = np.random.default_rng(7)
    total = spec.seconds * AUDIO_CLOCK
    t = np.arange(total) / AUDIO_CLOCK
    tone = 0.3 * np.sin(2 * np.pi * (220 + 200 * t) * t) + 0.05 * rng.standard_normal(total)
    pcm = (np.clip(tone, -1, 1) * 32767).astype(np.int16)
    out: list[bytes] = []
    for i in range(total // AUDIO_FRAME_SAMPLES):
        chunk = pcm[i * AUDIO_FRAME_SAMPLES : (i + 1) * AUDIO_FRAME_SAMPLES]
        stereo = np.ascontiguousarray(np.stack([chunk, chunk], axis=1).reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = i * AUDIO_FRAME_SAMPLES
        frame.time_base = Fraction(1, AUDIO_CLOCK)
        for packet in codec.encode(frame):
            out.append(bytes(packet))
    for packet in codec.encode(None):
        out.append(bytes(packet))
    return out


def _write(path: Path, clip: Clip) -> None:
    parts: list[bytes] = []
    for frames in (clip.video, clip.video_intra, clip.audio):
        parts.append(struct.pack("!I", len(frames)))
        for f in frames:
            parts.append(struct.pack("!I", len(f)))
            parts.append(f)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"".join(parts))
    os.replace(tmp, path)


def _read(path: Path, spec: ClipSpec) -> Clip:
    data = path.read_bytes()
    pos = 0
    lists: list[list[bytes]] = []
    for _ in range(3):
        (count,) = struct.unpack_from("!I", data, pos)
        pos += 4
        frames = []
        for _ in range(count):
            (size,) = struct.unpack_from("!I", data, pos)
            pos += 4
            if pos + size > len(data):
                raise ValueError("truncated clip cache")
            frames.append(data[pos : pos + size])
            pos += size
        lists.append(frames)
    if pos != len(data) or len(lists[0]) != spec.frames or len(lists[1]) != spec.frames:
        raise ValueError("clip cache does not match its spec")
    return Clip(spec, lists[0], lists[1], lists[2])


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "live-classroom" / "bench"


def load_clip(spec: ClipSpec | None = None, cache_dir: Path | None = None) -> Clip:
    """Return the clip for `spec`, encoding it once and reusing the cached packets afterwards."""
    spec = spec or ClipSpec()
    directory = cache_dir or default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"clip-{spec.cache_key()}.bin"
    if path.exists():
        try:
            return _read(path, spec)
        except (ValueError, struct.error):
            path.unlink(missing_ok=True)
    clip = Clip(spec, _encode_video(spec, intra=False), _encode_video(spec, intra=True), _encode_audio(spec))
    _write(path, clip)
    return clip


def clip_path(spec: ClipSpec, cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / f"clip-{spec.cache_key()}.bin"
