"""Whether an RTP payload starts a keyframe, read from the codec's payload format (no decoding)."""

from __future__ import annotations

VP8 = "vp8"
H264 = "h264"

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def vp8_is_keyframe(payload: bytes) -> bool:
    """True for the first packet of a VP8 key frame (RFC 7741 descriptor, then the frame header)."""
    n = len(payload)
    if n < 1:
        return False
    b0 = payload[0]
    # Only the start (S=1) of partition 0 carries the frame header with the key frame bit.
    if not b0 & 0x10 or b0 & 0x07:
        return False
    pos = 1
    if b0 & 0x80:  # X: extended control bits
        if n < 2:
            return False
        x = payload[1]
        pos = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            if pos >= n:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            pos += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            pos += 1
    if pos >= n:
        return False
    # VP8 frame tag: P bit 0 means key frame (RFC 6386 section 9.1).
    return not payload[pos] & 0x01


def h264_is_keyframe(payload: bytes) -> bool:
    """True for a packet that starts an IDR access unit: SPS or IDR, alone, in STAP-A, or FU-A start."""
    n = len(payload)
    if n < 1:
        return False
    nal = payload[0] & 0x1F
    if nal in (_H264_IDR, _H264_SPS):
        return True
    if nal == _H264_STAP_A:
        pos = 1
        while pos + 2 < n:
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > n:
                return False
            if payload[pos] & 0x1F in (_H264_IDR, _H264_SPS):
                return True
            pos += size
        return False
    if nal == _H264_FU_A:
        return n >= 2 and bool(payload[1] & 0x80) and payload[1] & 0x1F == _H264_IDR
    return False


def is_keyframe(codec: str, payload: bytes) -> bool:
    """Dispatch on the codec name (lowercase mime subtype); audio and unknown codecs are never keyframes."""
    if codec == VP8:
        return vp8_is_keyframe(payload)
    if codec == H264:
        return h264_is_keyframe(payload)
    return False
