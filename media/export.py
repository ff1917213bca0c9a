"""Export of a recording for sharing: one MP4 with the camera and the courseware side by side.

Offline, never on the live path: this one transcodes (PyAV: decode VP8/H.264 and Opus, compose with numpy,
encode H.264 and AAC, which every player and video site takes). The camera's clock leads: each output
picture is a camera picture with the courseware picture that was showing at that moment beside it (the
latest one at or before it; grey before the first). Without courseware the camera alone is exported.
`progress(fraction)` is called as it goes (the command line draws a bar).
"""

from __future__ import annotations

import fractions
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

HEIGHT = 720  # output height; each picture keeps its 16:9 width
WIDTH = HEIGHT * 16 // 9
GREY = 48


class ExportError(Exception):
    """A recording that cannot be exported (missing, unreadable, without a picture)."""


@dataclass(frozen=True)
class Exported:
    path: Path
    duration_s: float
    frames: int
    side_by_side: bool
    size_bytes: int


def _fit(frame: av.VideoFrame) -> np.ndarray:
    """A picture as RGB at WIDTH x HEIGHT, letterboxed to keep its shape."""
    scale = min(WIDTH / frame.width, HEIGHT / frame.height)
    w, h = max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2)
    rgb = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
    out = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    y, x = (HEIGHT - h) // 2, (WIDTH - w) // 2
    out[y : y + h, x : x + w] = rgb
    return out


def _pictures(path: Path) -> Iterator[tuple[float, av.VideoFrame]]:
    with av.open(str(path)) as c:
        if not c.streams.video:
            return
        for frame in c.decode(video=0):
            if frame.pts is not None and frame.time_base is not None:
                yield float(frame.pts * frame.time_base), frame


def export_side_by_side(camera: Path, screen: Path | None, out: Path,
                        progress: Callable[[float], None] = lambda _f: None) -> Exported:
    """Write `out` (MP4, H.264 + AAC) from a recording's camera file and its courseware file, if any."""
    if not camera.exists():
        raise ExportError(f"{camera.name}: the recording's file is missing")
    try:
        source = av.open(str(camera))
    except (av.FFmpegError, OSError) as exc:
        raise ExportError(f"{camera.name}: cannot be read: {exc}") from exc
    if not source.streams.video:
        source.close()
        raise ExportError(f"{camera.name}: holds no picture")
    duration = float(source.duration or 0) / 1e6
    side = screen is not None and screen.exists()
    slides = _pictures(screen) if side and screen is not None else iter(())
    next_slide = next(slides, None)
    slide = np.full((HEIGHT, WIDTH, 3), GREY, dtype=np.uint8)
    part = out.with_suffix(out.suffix + ".part")
    frames = 0
    try:
        with av.open(str(part), "w", format="mp4") as sink:
            video = sink.add_stream("libx264", rate=30)
            video.width, video.height = WIDTH * (2 if side else 1), HEIGHT
            video.pix_fmt = "yuv420p"
            video.options = {"preset": "veryfast", "crf": "23"}
            video.time_base = fractions.Fraction(1, 90000)
            audio_in = source.streams.audio[0] if source.streams.audio else None
            audio = sink.add_stream("aac", rate=48000) if audio_in is not None else None
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000) if audio else None
            streams = [s for s in (source.streams.video[0], audio_in) if s is not None]
            last_pts = -1
            for packet in source.demux(*streams):
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    continue  # a damaged frame of the recording: the next keyframe resumes
                for frame in decoded:
                    if frame.pts is None or frame.time_base is None:
                        continue
                    t = float(frame.pts * frame.time_base)
                    if isinstance(frame, av.AudioFrame):
                        assert audio is not None and resampler is not None
                        for chunk in resampler.resample(frame):
                            sink.mux(audio.encode(chunk))
                        continue
                    while side and next_slide is not None and next_slide[0] <= t:
                        slide = _fit(next_slide[1])
                        next_slide = next(slides, None)
                    picture = np.hstack([_fit(frame), slide]) if side else _fit(frame)
                    composed = av.VideoFrame.from_ndarray(picture, format="rgb24")
                    pts = int(t * 90000)
                    if pts <= last_pts:
                        continue
                    composed.pts, composed.time_base, last_pts = pts, video.time_base, pts
                    sink.mux(video.encode(composed))
                    frames += 1
                    if duration:
                        progress(min(1.0, t / duration))
            sink.mux(video.encode(None))
            if audio is not None:
                sink.mux(audio.encode(None))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    if frames == 0:
        part.unlink(missing_ok=True)
        raise ExportError(f"{camera.name}: no picture could be decoded")
    part.replace(out)
    progress(1.0)
    return Exported(out, duration, frames, side, out.stat().st_size)
