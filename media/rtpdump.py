"""The recorder's raw dump: every forwarded RTP packet of a lesson's publisher, appended as it arrives.

Recording never decodes, and on the live path it does not even depacketize: a packet the SFU forwards
becomes one record (a single struct pack and a concatenation) appended to a bounded deque, and a writer
thread that wakes twice a second appends what has gathered to the dump. The forwarding path never wakes
that thread and never takes a lock: a thread woken per packet would take the interpreter's lock from
the event loop hundreds of times a second and delay forwarding by milliseconds. The dump is finalised into a
WebM (or MP4) file afterwards (`media/recording.py`), as Janus's .mjr files are post-processed. Being
append-only makes it crash-safe by construction: a `kill -9` leaves every record written before it, and
the reader stops cleanly at a record cut short.

Format: the magic line `LCRTP1\\n`, then records of a 14-byte header — type (1 byte: `T` a track is
declared, `P` a packet of a declared track), track number (1 byte), arrival time in nanoseconds of the
recorder's wall clock (8 bytes), body length (4 bytes), network order — and the body: for `T` a JSON
object (kind, codec, clock_rate, slot, participant_id, ssrc), for `P` the RTP packet as the SFU
received it after SRTP.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

MAGIC = b"LCRTP1\n"
HEADER = struct.Struct("!cBQI")
# a packet record's header and the RTP header of its body, packed at once on the forwarding path
PACKET_RTP = struct.Struct("!cBQIBBHII")
RTP_HEADER_SIZE = 12
MAX_BODY = 1 << 20
FLUSH_EVERY_S = 0.5  # what a kill -9 can lose at most, besides the records still queued
QUEUE_PACKETS = 20_000  # about 20 s of a lesson's packets: a disk that stalls longer drops recording


class DumpError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TrackInfo:
    number: int
    kind: str  # video | audio
    codec: str  # vp8 | h264 | opus
    clock_rate: int
    slot: str  # camera | audio | screen
    participant_id: str
    ssrc: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "codec": self.codec, "clock_rate": self.clock_rate, "slot": self.slot,
                "participant_id": self.participant_id, "ssrc": self.ssrc}


@dataclass(frozen=True, slots=True)
class Record:
    type: bytes  # b"T" or b"P"
    track: int
    arrival: float  # seconds, wall clock
    body: bytes


def encode_record(kind: bytes, track: int, arrival: float, body: bytes) -> bytes:
    if len(body) > MAX_BODY:
        raise DumpError(f"a record of {len(body)} bytes is over the limit of {MAX_BODY}")
    return HEADER.pack(kind, track, int(arrival * 1e9), len(body)) + body


def read_dump(path: Path) -> tuple[list[TrackInfo], Iterator[Record]]:
    """The dump's track declarations seen so far and an iterator over all its records (packets included).

    A truncated last record (the recorder was killed while writing it) ends the iteration quietly."""
    handle = path.open("rb")
    if handle.read(len(MAGIC)) != MAGIC:
        handle.close()
        raise DumpError(f"{path} is not a recording dump (no {MAGIC!r} header)")
    tracks: list[TrackInfo] = []

    def records() -> Iterator[Record]:
        with handle:
            while True:
                head = handle.read(HEADER.size)
                if len(head) < HEADER.size:
                    return
                kind, track, arrival_ns, length = HEADER.unpack(head)
                if length > MAX_BODY or kind not in (b"T", b"P"):
                    log.warning("%s: a damaged record at byte %d ends the dump", path, handle.tell() - HEADER.size)
                    return
                body = handle.read(length)
                if len(body) < length:
                    return  # cut short by a crash
                if kind == b"T":
                    info = json.loads(body)
                    tracks.append(TrackInfo(track, str(info["kind"]), str(info["codec"]), int(info["clock_rate"]),
                                            str(info["slot"]), str(info["participant_id"]), int(info["ssrc"])))
                yield Record(kind, track, arrival_ns / 1e9, body)

    return tracks, records()


class DumpWriter:
    """Appends records from the event loop's thread to a file, in its own thread; never blocks the caller.

    `rtp()` is what the forwarding path calls: one record appended to a bounded deque (appends and pops at
    either end of a deque are atomic, so neither side locks). When the disk is too slow or full, packets
    are dropped and counted (`dropped`, `error`), and live media goes on untouched."""

    def __init__(self, path: Path, clock: Any = time.time) -> None:
        self.path = path
        self.clock = clock
        self.dropped = 0
        self.written = 0
        self.bytes = 0
        self.error: str | None = None
        self._pending: deque[bytes] = deque()
        self._closing = threading.Event()
        self._tracks: dict[tuple[str, int], int] = {}  # (slot, ssrc) -> track number
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = path.open("ab")
        if self._file.tell() == 0:
            self._file.write(MAGIC)
            self._file.flush()
        self._thread = threading.Thread(target=self._run, name=f"recorder {path.name}", daemon=True)
        self._thread.start()

    def track(self, kind: str, codec: str, clock_rate: int, slot: str, participant_id: str, ssrc: int) -> int:
        """The number of this track in the dump, declaring it the first time (a reconnect is a new track)."""
        key = (slot, ssrc)
        number = self._tracks.get(key)
        if number is None:
            if len(self._tracks) >= 255:
                raise DumpError("a recording holds at most 255 tracks")
            number = self._tracks[key] = len(self._tracks)
            info = TrackInfo(number, kind, codec, clock_rate, slot, participant_id, ssrc)
            self._put(encode_record(b"T", number, self.clock(), json.dumps(info.to_json()).encode()), force=True)
        return number

    def packet(self, track: int, data: bytes, arrival: float | None = None) -> None:
        self._put(encode_record(b"P", track, self.clock() if arrival is None else arrival, data))

    def rtp(self, track: int, ssrc: int, seq: int, ts: int, marker: int, pt: int, payload: bytes) -> None:
        """A forwarded packet, built back into RTP (version 2, no extensions) as a record of `track`."""
        pending = self._pending
        if self.error is not None or len(pending) >= QUEUE_PACKETS:
            self.dropped += 1
            return
        pending.append(PACKET_RTP.pack(b"P", track, int(self.clock() * 1e9), RTP_HEADER_SIZE + len(payload), 0x80,
                                       (marker & 0x80) | (pt & 0x7F), seq, ts, ssrc) + payload)

    def _put(self, record: bytes, force: bool = False) -> None:
        if self.error is not None or (not force and len(self._pending) >= QUEUE_PACKETS):
            self.dropped += 1
            return
        self._pending.append(record)  # a track's declaration (force) is never dropped for a full queue

    def close(self) -> None:
        """Write what is queued and close the file (the caller then finalises it)."""
        self._closing.set()
        self._thread.join(timeout=30)
        if not self._file.closed:
            self._file.close()

    def _run(self) -> None:
        pending = self._pending
        while True:
            closing = self._closing.wait(FLUSH_EVERY_S)
            # what gathered since the last wake-up: popped from the left while the loop appends on the right
            batch = [pending.popleft() for _ in range(len(pending))]
            self._write(batch)
            if closing:
                if pending:
                    continue  # appended while the last batch was written
                return

    def _write(self, pending: list[bytes]) -> None:
        if not pending or self.error is not None:
            return
        data = b"".join(pending)
        try:
            self._file.write(data)
            self._file.flush()  # into the OS: survives the process being killed
            self.written += len(pending)
            self.bytes += len(data)
        except OSError as exc:
            self.error = f"{exc.strerror or exc}"
            self.dropped += len(pending)
            log.error("recording %s stopped: %s (the live lesson goes on)", self.path, self.error)
            # the file keeps what was written; finalising reads it up to there
            with contextlib.suppress(OSError):
                self._file.close()
