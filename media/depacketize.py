"""RTP packets back into coded frames, without decoding: VP8 (RFC 7741), H.264 (RFC 6184) and Opus.

Used by the recorder's finaliser (`media/recording.py`), never on the live packet path. A `FrameAssembler`
collects the packets of each frame (one RTP timestamp), in sequence order whatever order they came in,
and hands a frame on once it is whole: its first packet starts a frame, its last carries the marker bit,
and no sequence number between them is missing. A frame that cannot be completed (a packet lost for
good) is dropped, and for video so is everything after it until the next keyframe, since inter frames
decode only on top of the frames before them: a recording shows a short freeze where the live picture
froze, never corrupt pictures.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

REORDER_PACKETS = 64  # how far behind the newest packet a late one may still arrive
REORDER_S = 0.5  # and how long after it


class DepacketizeError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    rtp_ts: int  # unwrapped (grows past 2**32)
    keyframe: bool
    arrival: float  # when its first packet arrived (seconds, the recorder's clock)


def _vp8_payload(payload: bytes) -> tuple[bytes, bool]:
    """The VP8 data of one RTP payload, and whether it starts a frame (S bit set, partition 0)."""
    if not payload:
        raise DepacketizeError("empty VP8 payload")
    first = payload[0]
    i = 1
    if first & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            raise DepacketizeError("VP8 descriptor cut short")
        ext = payload[1]
        i = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= i:
                raise DepacketizeError("VP8 picture id cut short")
            i += 2 if payload[i] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    if i >= len(payload):
        raise DepacketizeError("VP8 payload has a descriptor and no data")
    start = bool(first & 0x10) and (first & 0x07) == 0
    return payload[i:], start


def vp8_keyframe(frame: bytes) -> bool:
    """Bit 0 of a VP8 frame's first byte is 0 for a keyframe (RFC 6386 §9.1)."""
    return bool(frame) and not frame[0] & 0x01


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header, or None."""
    if len(frame) < 10 or not vp8_keyframe(frame) or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(frame[6:8], "little") & 0x3FFF, int.from_bytes(frame[8:10], "little") & 0x3FFF


START_CODE = b"\x00\x00\x00\x01"


def _h264_payload(payload: bytes) -> tuple[bytes, bool]:
    """Annex B bytes of one RTP payload (single NAL, STAP-A, FU-A), and whether it starts a frame's data."""
    if not payload:
        raise DepacketizeError("empty H.264 payload")
    kind = payload[0] & 0x1F
    if 1 <= kind <= 23:
        return START_CODE + payload, True
    if kind == 24:  # STAP-A: 16-bit sizes, then NAL units
        out, i = bytearray(), 1
        while i + 2 <= len(payload):
            size = int.from_bytes(payload[i : i + 2], "big")
            i += 2
            if size == 0 or i + size > len(payload):
                raise DepacketizeError("STAP-A unit overruns its packet")
            out += START_CODE + payload[i : i + size]
            i += size
        return bytes(out), True
    if kind == 28:  # FU-A
        if len(payload) < 3:
            raise DepacketizeError("FU-A cut short")
        header = payload[1]
        if header & 0x80:  # start of the fragmented unit: rebuild its NAL header
            return START_CODE + bytes([(payload[0] & 0xE0) | (header & 0x1F)]) + payload[2:], True
        return payload[2:], False
    raise DepacketizeError(f"H.264 packetization type {kind} is not supported")


def h264_nal_types(annexb: bytes) -> list[int]:
    types, i = [], 0
    while True:
        i = annexb.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= len(annexb):
            return types
        types.append(annexb[i + 3] & 0x1F)
        i += 3


def h264_keyframe(annexb: bytes) -> bool:
    return 5 in h264_nal_types(annexb)


@dataclass
class _Pending:
    ts: int
    arrival: float
    packets: dict[int, tuple[bytes, bool, bool]] = field(default_factory=dict)  # seq -> (data, starts, marker)


@dataclass
class FrameAssembler:
    """Packets of one track (one SSRC) in, whole frames out, in timestamp order."""

    codec: str  # "vp8", "h264", "opus"
    frames_dropped: int = 0
    packets_bad: int = 0
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _high_seq: int | None = None  # unwrapped
    _ts_base: int | None = None  # unwrapped timestamp of the last frame emitted
    _last_ts32: int | None = None
    _ts_cycles: int = 0
    _seq_cycles: int = 0
    _last_seq16: int | None = None
    _need_key: bool = True
    _last_seq: int | None = None  # unwrapped: the last packet of the last frame handed on or given up
    _newest: float = 0.0  # arrival of the newest packet

    def _unwrap_seq(self, seq: int) -> int:
        if self._last_seq16 is not None:
            delta = (seq - self._last_seq16) & 0xFFFF
            if delta < 0x8000 and seq < self._last_seq16:
                self._seq_cycles += 1
            elif delta >= 0x8000 and seq > self._last_seq16 and self._seq_cycles:
                return (self._seq_cycles - 1) * 65536 + seq  # a late packet from before the wrap
        if self._last_seq16 is None or ((seq - self._last_seq16) & 0xFFFF) < 0x8000:
            self._last_seq16 = seq
        return self._seq_cycles * 65536 + seq

    def _unwrap_ts(self, ts: int) -> int:
        if self._last_ts32 is not None:
            delta = (ts - self._last_ts32) & 0xFFFFFFFF
            if delta < 0x80000000 and ts < self._last_ts32:
                self._ts_cycles += 1
            elif delta >= 0x80000000 and ts > self._last_ts32 and self._ts_cycles:
                return (self._ts_cycles - 1) * 2**32 + ts
        if self._last_ts32 is None or ((ts - self._last_ts32) & 0xFFFFFFFF) < 0x80000000:
            self._last_ts32 = ts
        return self._ts_cycles * 2**32 + ts

    def push(self, seq: int, ts: int, marker: bool, payload: bytes, arrival: float) -> list[Frame]:
        try:
            if self.codec == "vp8":
                data, starts = _vp8_payload(payload)
            elif self.codec == "h264":
                data, starts = _h264_payload(payload)
            else:
                data, starts, marker = payload, True, True
        except DepacketizeError:
            self.packets_bad += 1
            return []
        useq, uts = self._unwrap_seq(seq), self._unwrap_ts(ts)
        if self._ts_base is not None and uts <= self._ts_base:
            return []  # a late packet of a frame already handed on or given up
        pending = self._pending.get(uts)
        if pending is None:
            pending = self._pending[uts] = _Pending(uts, arrival)
        pending.packets[useq] = (data, starts, marker)
        pending.arrival = min(pending.arrival, arrival)
        if self._high_seq is None or useq > self._high_seq:
            self._high_seq = useq
        self._newest = max(self._newest, arrival)
        return list(self._emit())

    def flush(self) -> list[Frame]:
        """The end of the recording: whole frames still waiting are handed on, the rest dropped."""
        out = list(self._emit(final=True))
        self.frames_dropped += len(self._pending)
        self._pending.clear()
        return out

    def _whole(self, p: _Pending) -> bytes | None:
        seqs = sorted(p.packets)
        if not seqs or not p.packets[seqs[0]][1] or not p.packets[seqs[-1]][2]:
            return None
        if seqs[-1] - seqs[0] + 1 != len(seqs):
            return None
        return b"".join(p.packets[s][0] for s in seqs)

    def _emit(self, final: bool = False) -> Iterator[Frame]:
        while self._pending:
            first_ts = min(self._pending)
            p = self._pending[first_ts]
            data = self._whole(p)
            # packets may still come for this frame, or for frames before it, while newer ones keep arriving
            waited = final or self._newest - p.arrival > REORDER_S or (
                self._high_seq is not None and self._high_seq - max(p.packets) > REORDER_PACKETS)
            if data is None:
                if not waited:
                    return
                del self._pending[first_ts]  # lost for good
                self._ts_base = first_ts
                self._last_seq = max(p.packets)
                self.frames_dropped += 1
                if self.codec != "opus":
                    self._need_key = True
                continue
            first_seq, last_seq = min(p.packets), max(p.packets)
            contiguous = self._last_seq is None or first_seq == self._last_seq + 1
            if not contiguous and not waited:
                return  # a frame before it may be on its way
            del self._pending[first_ts]
            self._ts_base = first_ts
            if not contiguous and self.codec != "opus":
                self._need_key = True  # whole frames went missing between the last one and this
                self.frames_dropped += 1
            self._last_seq = last_seq
            key = True if self.codec == "opus" else (vp8_keyframe(data) if self.codec == "vp8" else h264_keyframe(data))
            if self._need_key and not key:
                self.frames_dropped += 1  # nothing to decode it on top of
                continue
            self._need_key = False
            yield Frame(data, first_ts, key, p.arrival)
