"""Looking at the screen as a person would: fake camera clips of one colour each, and what colour a
point of a screenshot shows. PNG screenshots are decoded with PyAV (already a dependency)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

# the distinct sources of a lesson, so a screenshot tells which one a screen shows
COLOURS: dict[str, tuple[int, int, int]] = {
    "teacher": (220, 30, 30),  # the lead's camera: red
    "courseware": (235, 220, 40),  # the lead's screen: yellow
    "classroom_a": (40, 70, 230),  # receiving classroom A's camera: blue
    "classroom_b": (40, 200, 70),  # receiving classroom B's camera: green
}
# what the pages draw where no source is shown
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "overlay": (10, 16, 24),  # the kiosk's "waiting" overlay over black
    "alarm": (82, 18, 22),  # the kiosk's network-down overlay
    "panel": (27, 38, 51),  # the teacher page's panels
    "page": (15, 23, 32),
}


def write_y4m(path: Path, rgb: tuple[int, int, int], width: int = 320, height: int = 180, frames: int = 30) -> Path:
    """A clip for Chromium's --use-file-for-fake-video-capture: one colour, with a small square moving in
    the top-left corner so that frames differ (the corner is never where a test looks)."""
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            plane_y = np.full((height, width), round(y), dtype=np.uint8)
            x = (i * 4) % 40
            plane_y[4:20, x : x + 16] = 235
            f.write(b"FRAME\n")
            f.write(plane_y.tobytes())
            f.write(np.full((height // 2, width // 2), round(u), dtype=np.uint8).tobytes())
            f.write(np.full((height // 2, width // 2), round(v), dtype=np.uint8).tobytes())
    return path


def decode_png(png: bytes) -> np.ndarray:
    return decode_image(png, "png_pipe")


def decode_image(data: bytes, fmt: str = "jpeg_pipe") -> np.ndarray:
    with av.open(io.BytesIO(data), format=fmt) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def colour_at(image: np.ndarray, x: int, y: int, radius: int = 6) -> tuple[int, int, int]:
    """The median colour of a small square around (x, y): robust to a codec's ringing and to text."""
    patch = image[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1].reshape(-1, 3)
    med = np.median(patch, axis=0)
    return int(med[0]), int(med[1]), int(med[2])


def what_is(rgb: tuple[int, int, int]) -> str:
    """The nearest known source or background to a colour, or 'other' when none is close."""
    best, dist = "other", 1e9
    for name, ref in {**COLOURS, **BACKGROUNDS}.items():
        d = sum((a - b) ** 2 for a, b in zip(rgb, ref, strict=True)) ** 0.5
        if d < dist:
            best, dist = name, d
    return best if dist < 90 else "other"


class ScreenWatcher:
    """What a page's screen shows, frame by frame, as Chromium paints it (DevTools screencast).

    A screenshot costs a few hundred milliseconds on a busy machine; the screencast hands over each
    painted frame with the time it was painted, so "the screen changed within 1 s" is measured from
    the picture itself, at the compositor's own pace. Frames are decoded only when looked at."""

    SCALE = 0.25

    def __init__(self, page: Any) -> None:
        self.page = page
        self.frames: list[tuple[float, bytes]] = []  # (time.time() received, JPEG at SCALE)
        self.cdp: Any = None
        self.changed = asyncio.Event()
        self.armed = False
        self._acks: set[asyncio.Future[Any]] = set()

    async def start(self) -> ScreenWatcher:
        self.cdp = await self.page.context.new_cdp_session(self.page)
        self.cdp.on("Page.screencastFrame", self._frame)
        return self

    async def arm(self) -> None:
        """Start the screencast (before the change to be timed): frames flow only while armed, so that a
        busy machine never queues seconds of frames in this process."""
        if self.armed:
            return
        self.armed = True
        self.frames.clear()
        size = self.page.viewport_size
        await self.cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 60,
                                                      "maxWidth": int(size["width"] * self.SCALE),
                                                      "maxHeight": int(size["height"] * self.SCALE)})

    async def disarm(self) -> None:
        if self.armed:
            self.armed = False
            await self.cdp.send("Page.stopScreencast")

    def _frame(self, event: dict[str, Any]) -> None:
        ack = asyncio.ensure_future(self.cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]}))
        self._acks.add(ack)
        ack.add_done_callback(self._acks.discard)
        # timed on arrival: the screencast's own timestamp is not on this process's clock (seen 16 s off),
        # and arrival is never earlier than the paint, so a figure errs on the slow side
        self.frames.append((time.time(), base64.b64decode(event["data"])))
        del self.frames[:-200]
        self.changed.set()

    def shows(self, jpeg: bytes, points: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
        image = decode_image(jpeg)
        return {(x, y): what_is(colour_at(image, int(x * self.SCALE), int(y * self.SCALE), 2)) for (x, y) in points}

    async def until(self, points: dict[tuple[int, int], str], since: float, timeout: float) -> tuple[float, dict]:
        """Seconds from `since` (time.time()) to the first frame painted after it that shows `points`;
        -1 and the last frame's reading if none did within `timeout`."""
        await self.arm()
        try:
            return await self._until(points, since, timeout)
        finally:
            await self.disarm()

    async def _until(self, points: dict[tuple[int, int], str], since: float, timeout: float) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        seen: dict[tuple[int, int], str] = {}
        checked = since
        while True:
            for painted, jpeg in list(self.frames):
                if painted < checked:
                    continue
                checked = painted + 1e-6
                seen = self.shows(jpeg, points)
                if seen == points:
                    return painted - since, seen
            left = deadline - time.monotonic()
            if left <= 0:
                return -1.0, seen
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.3))
            except TimeoutError:
                # Chromium sends no screencast frame while nothing repaints (or while it is busy): look with a
                # screenshot instead, timed when it returns (an upper bound on when the screen looked so)
                png = await self.page.screenshot(type="jpeg", quality=70, scale="css")
                taken = time.time()
                image = decode_image(png)
                seen = {(x, y): what_is(colour_at(image, x, y, 6)) for (x, y) in points}
                if seen == points:
                    return taken - since, seen
