"""RTP fixed header: a read-only view of one packet, and the byte patches forwarding needs.

Forwarding parses each inbound packet once (`RtpHeader.parse`), keeps its payload bytes, and per
subscriber only builds a fresh 12-byte header (`build_header`) in front of them, so no packet objects
are made per subscriber.
"""

from __future__ import annotations

import struct

_FIXED = struct.Struct("!BBHII")
_WORD = struct.Struct("!HH")
_U16 = struct.Struct("!H")

RTP_VERSION = 2
FIXED_HEADER_SIZE = 12


class RtpHeader:
    """Fields of one RTP packet; `payload_start:payload_end` bound the payload (padding excluded)."""

    __slots__ = (
        "csrc_count",
        "ext_end",
        "ext_profile",
        "ext_start",
        "extension",
        "marker",
        "padding",
        "payload_end",
        "payload_start",
        "payload_type",
        "seq",
        "ssrc",
        "timestamp",
    )

    def __init__(self) -> None:
        self.padding = False
        self.extension = False
        self.csrc_count = 0
        self.marker = False
        self.payload_type = 0
        self.seq = 0
        self.timestamp = 0
        self.ssrc = 0
        self.ext_profile = 0
        self.ext_start = 0
        self.ext_end = 0
        self.payload_start = FIXED_HEADER_SIZE
        self.payload_end = FIXED_HEADER_SIZE

    @classmethod
    def parse(cls, data: bytes) -> RtpHeader | None:
        """The header of `data`, or None when it is not a well-formed RTP packet."""
        n = len(data)
        if n < FIXED_HEADER_SIZE:
            return None
        b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data, 0)
        if b0 >> 6 != RTP_VERSION:
            return None
        h = cls()
        h.padding = bool(b0 & 0x20)
        h.extension = bool(b0 & 0x10)
        h.csrc_count = b0 & 0x0F
        h.marker = bool(b1 & 0x80)
        h.payload_type = b1 & 0x7F
        h.seq = seq
        h.timestamp = ts
        h.ssrc = ssrc
        pos = FIXED_HEADER_SIZE + 4 * h.csrc_count
        if h.extension:
            if pos + 4 > n:
                return None
            h.ext_profile, words = _WORD.unpack_from(data, pos)
            h.ext_start = pos + 4
            pos = h.ext_end = h.ext_start + 4 * words
        if pos > n:
            return None
        end = n
        if h.padding:
            pad = data[n - 1]
            if pad == 0 or pos + pad > n:
                return None
            end = n - pad
        h.payload_start = pos
        h.payload_end = end
        return h

    def extensions(self, data: bytes) -> dict[int, bytes]:
        """Header extension elements by id (RFC 8285 one-byte and two-byte forms); {} if none or broken."""
        out: dict[int, bytes] = {}
        if not self.extension:
            return out
        pos, end = self.ext_start, min(self.ext_end, len(data))
        if self.ext_profile == 0xBEDE:
            while pos < end:
                b = data[pos]
                if b == 0:  # padding between elements
                    pos += 1
                    continue
                ext_id, length = b >> 4, (b & 0x0F) + 1
                if ext_id == 15:  # reserved: stop parsing, per RFC 8285
                    break
                pos += 1
                if pos + length > end:
                    break
                out[ext_id] = bytes(data[pos : pos + length])
                pos += length
        elif self.ext_profile & 0xFFF0 == 0x1000:
            while pos < end:
                ext_id = data[pos]
                if ext_id == 0:
                    pos += 1
                    continue
                if pos + 2 > end:
                    break
                length = data[pos + 1]
                pos += 2
                if pos + length > end:
                    break
                out[ext_id] = bytes(data[pos : pos + length])
                pos += length
        return out

    def payload(self, data: bytes) -> bytes:
        return bytes(data[self.payload_start : self.payload_end])


def build_header(marker_pt: int, seq: int, timestamp: int, ssrc: int) -> bytes:
    """A bare 12-byte header (no CSRCs, no extensions, no padding); `marker_pt` is byte 1 as sent."""
    return _FIXED.pack(0x80, marker_pt, seq, timestamp, ssrc)


def patch_header(packet: bytearray, marker_pt: int, seq: int, timestamp: int, ssrc: int) -> None:
    """Rewrite payload type/marker, sequence number, timestamp and SSRC of `packet` in place."""
    _FIXED.pack_into(packet, 0, packet[0], marker_pt, seq, timestamp, ssrc)


def rtx_payload(original_seq: int, payload: bytes) -> bytes:
    """RTX payload (RFC 4588): the original sequence number, then the original payload."""
    return _U16.pack(original_seq) + payload


def unwrap_rtx(payload: bytes) -> tuple[int, bytes] | None:
    """(original sequence number, original payload) from an RTX payload, or None if too short."""
    if len(payload) < 2:
        return None
    return _U16.unpack_from(payload, 0)[0], bytes(payload[2:])


def seq_newer(a: int, b: int) -> bool:
    """Whether 16-bit sequence number `a` comes after `b` (RFC 3550 wrap-around arithmetic)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def is_rtcp(data: bytes) -> bool:
    """RTCP and RTP share a port (rtcp-mux, RFC 5761): packet types 192-223 in byte 1 are RTCP."""
    return len(data) >= 2 and 192 <= data[1] <= 223
