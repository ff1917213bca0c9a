"""RTCP packets the SFU reads and writes: SR, RR, NACK, PLI, FIR, REMB, transport-cc (counted), BYE.

`parse_compound` never raises: a malformed packet ends parsing and what was read before it is kept,
because RTCP arrives from browsers and networks we do not control.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from media.limits import MAX_NACKED_PER_PACKET, NACK_ITEMS_PER_PACKET

SR = 200
RR = 201
SDES = 202
BYE = 203
RTPFB = 205
PSFB = 206

RTPFB_NACK = 1
RTPFB_TRANSPORT_CC = 15
PSFB_PLI = 1
PSFB_FIR = 4
PSFB_APP = 15

_HDR = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IB3sIIII")
_FB = struct.Struct("!II")
_NACK_ITEM = struct.Struct("!HH")
_FIR_ITEM = struct.Struct("!IB3x")


@dataclass(slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # of 256, since the previous report
    packets_lost: int  # cumulative, signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # in RTP timestamp units
    lsr: int  # middle 32 bits of the NTP time of the last SR received
    dlsr: int  # delay since that SR, 1/65536 s

    def pack(self) -> bytes:
        lost = self.packets_lost & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc & 0xFFFFFFFF,
            self.fraction_lost & 0xFF,
            lost.to_bytes(3, "big"),
            self.highest_seq & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )

    @classmethod
    def unpack(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, fraction, lost3, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        lost = int.from_bytes(lost3, "big")
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, fraction, lost, highest, jitter, lsr, dlsr)


@dataclass(slots=True)
class SenderReport:
    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_timestamp: int
    packets: int
    octets: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class Nack:
    sender_ssrc: int
    media_ssrc: int
    lost: list[int]
    # None: not checked; False: refused by `parse_compound`'s `nack_filter`; True: admitted by it,
    # with the (PID, BLP) pairs flat in `items` and `lost` left empty (unpacked as far as needed)
    admitted: bool | None = None
    items: tuple[int, ...] = ()


@dataclass(slots=True)
class Pli:
    sender_ssrc: int
    media_ssrc: int


@dataclass(slots=True)
class Fir:
    sender_ssrc: int
    media_ssrc: int
    entries: list[tuple[int, int]]  # (ssrc, command sequence number)


@dataclass(slots=True)
class Remb:
    sender_ssrc: int
    bitrate: int
    ssrcs: list[int]


@dataclass(slots=True)
class TransportFeedback:
    sender_ssrc: int
    media_ssrc: int


@dataclass(slots=True)
class Bye:
    sources: list[int]


RtcpPacket = SenderReport | ReceiverReport | Nack | Pli | Fir | Remb | TransportFeedback | Bye


def _blocks(data: bytes, pos: int, end: int, count: int) -> list[ReportBlock]:
    out = []
    for _ in range(count):
        if pos + 24 > end:
            break
        out.append(ReportBlock.unpack(data, pos))
        pos += 24
    return out


def _parse_one(
    data: bytes, pos: int, end: int, count: int, ptype: int, nack_filter: Callable[[int], bool] | None = None
) -> RtcpPacket | None:
    body = end - pos
    if ptype == SR and body >= 24:
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(data, pos)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, _blocks(data, pos + 24, end, count))
    if ptype == RR and body >= 4:
        return ReceiverReport(_U32.unpack_from(data, pos)[0], _blocks(data, pos + 4, end, count))
    if ptype == BYE:
        n = min(count, body // 4)
        return Bye([_U32.unpack_from(data, pos + 4 * i)[0] for i in range(n)])
    if ptype in (RTPFB, PSFB) and body >= 8:
        sender, media = _FB.unpack_from(data, pos)
        fci = pos + 8
        if ptype == RTPFB and count == RTPFB_NACK:
            lost: list[int] = []
            if nack_filter is not None:
                if not nack_filter(media):
                    return Nack(sender, media, lost, False)
                n = min((end - fci) // 4, MAX_NACKED_PER_PACKET)
                return Nack(sender, media, lost, True, struct.unpack_from(f"!{2 * n}H", data, fci))
            while fci + 4 <= end and len(lost) < MAX_NACKED_PER_PACKET:
                pid, blp = _NACK_ITEM.unpack_from(data, fci)
                lost.append(pid)
                for bit in range(16):
                    if blp >> bit & 1:
                        lost.append((pid + bit + 1) & 0xFFFF)
                fci += 4
            return Nack(sender, media, lost)
        if ptype == RTPFB and count == RTPFB_TRANSPORT_CC:
            return TransportFeedback(sender, media)
        if ptype == PSFB and count == PSFB_PLI:
            return Pli(sender, media)
        if ptype == PSFB and count == PSFB_FIR:
            entries = []
            while fci + 8 <= end:
                entries.append(_FIR_ITEM.unpack_from(data, fci))
                fci += 8
            return Fir(sender, media, entries)
        if ptype == PSFB and count == PSFB_APP and body >= 16 and data[fci : fci + 4] == b"REMB":
            num = data[fci + 4]
            exp = data[fci + 5] >> 2
            mantissa = ((data[fci + 5] & 0x03) << 16) | (data[fci + 6] << 8) | data[fci + 7]
            ssrcs = [_U32.unpack_from(data, fci + 8 + 4 * i)[0] for i in range(num) if fci + 12 + 4 * i <= end]
            return Remb(sender, mantissa << exp, ssrcs)
    return None


def parse_compound(data: bytes, nack_filter: Callable[[int], bool] | None = None) -> list[RtcpPacket]:
    """The packets of a (compound) RTCP datagram that we understand, in order.

    `nack_filter(media_ssrc)` is asked before a NACK's items are unpacked; when it says no, the NACK
    comes back with `admitted=False` and no numbers, at the cost of its header only."""
    out: list[RtcpPacket] = []
    pos, n = 0, len(data)
    while pos + 4 <= n:
        b0, ptype, words = _HDR.unpack_from(data, pos)
        if b0 >> 6 != 2:
            break
        length = (words + 1) * 4
        if pos + length > n:
            break
        end = pos + length
        if b0 & 0x20:  # padding: the last octet counts the padding octets
            pad = data[end - 1]
            if pad == 0 or pad > length - 4:
                break
            end -= pad
        packet = _parse_one(data, pos + 4, end, b0 & 0x1F, ptype, nack_filter)
        if packet is not None:
            out.append(packet)
        pos += length
    return out


def _header(count: int, ptype: int, body_len: int) -> bytes:
    return _HDR.pack(0x80 | (count & 0x1F), ptype, (body_len + 4) // 4 - 1)


def build_sr(
    ssrc: int, ntp: int, rtp_timestamp: int, packets: int, octets: int, reports: Sequence[ReportBlock] = ()
) -> bytes:
    body = _SENDER_INFO.pack(
        ssrc, ntp & 0xFFFFFFFFFFFFFFFF, rtp_timestamp & 0xFFFFFFFF, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF
    ) + b"".join(r.pack() for r in reports[:31])
    return _header(min(len(reports), 31), SR, len(body)) + body


def build_rr(ssrc: int, reports: Sequence[ReportBlock] = ()) -> bytes:
    body = _U32.pack(ssrc) + b"".join(r.pack() for r in reports[:31])
    return _header(min(len(reports), 31), RR, len(body)) + body


def nack_items(lost: Iterable[int]) -> list[tuple[int, int]]:
    """Group sequence numbers into (PID, BLP) pairs, each covering PID and the 16 after it."""
    items: list[tuple[int, int]] = []
    for seq in sorted({s & 0xFFFF for s in lost}, key=lambda s: s):
        if items:
            pid, blp = items[-1]
            d = (seq - pid) & 0xFFFF
            if 1 <= d <= 16:
                items[-1] = (pid, blp | 1 << (d - 1))
                continue
        items.append((seq, 0))
    return items


def build_nack(sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> bytes:
    body = _FB.pack(sender_ssrc, media_ssrc) + b"".join(_NACK_ITEM.pack(p, b) for p, b in nack_items(lost))
    return _header(RTPFB_NACK, RTPFB, len(body)) + body


def build_nacks(
    sender_ssrc: int, media_ssrc: int, lost: Iterable[int], items_per_packet: int = NACK_ITEMS_PER_PACKET
) -> list[bytes]:
    """NACK packets for `lost`, each with at most `items_per_packet` items (small enough for SRTP)."""
    items = nack_items(lost)
    fb = _FB.pack(sender_ssrc, media_ssrc)
    out = []
    for i in range(0, len(items), items_per_packet):
        body = fb + b"".join(_NACK_ITEM.pack(p, b) for p, b in items[i : i + items_per_packet])
        out.append(_header(RTPFB_NACK, RTPFB, len(body)) + body)
    return out


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    body = _FB.pack(sender_ssrc, media_ssrc)
    return _header(PSFB_PLI, PSFB, len(body)) + body


def build_fir(sender_ssrc: int, media_ssrc: int, seqnr: int) -> bytes:
    # RFC 5104: the media source field is 0 and the target SSRC is in the FCI entry.
    body = _FB.pack(sender_ssrc, 0) + _FIR_ITEM.pack(media_ssrc, seqnr & 0xFF)
    return _header(PSFB_FIR, PSFB, len(body)) + body


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: Sequence[int]) -> bytes:
    exp, mantissa = 0, max(0, bitrate)
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exp += 1
    ssrcs = list(ssrcs)[:255]
    fci = (
        b"REMB"
        + bytes([len(ssrcs), (exp << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF])
        + b"".join(_U32.pack(s) for s in ssrcs)
    )
    body = _FB.pack(sender_ssrc, 0) + fci
    return _header(PSFB_APP, PSFB, len(body)) + body
