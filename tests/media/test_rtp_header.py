import struct

from hypothesis import given
from hypothesis import strategies as st

from media.rtp_header import RtpHeader, build_header, is_rtcp, patch_header, rtx_payload, seq_newer, unwrap_rtx


def packet(ext: bytes = b"", csrcs: int = 0, pad: int = 0, payload: bytes = b"\x10\x00\x9d") -> bytes:
    b0 = 0x80 | (0x20 if pad else 0) | (0x10 if ext else 0) | csrcs
    out = struct.pack("!BBHII", b0, 0x80 | 96, 0xFFFE, 0x12345678, 0xCAFEBABE)
    out += b"".join(struct.pack("!I", 1000 + i) for i in range(csrcs))
    if ext:
        out += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    out += payload
    if pad:
        out += bytes(pad - 1) + bytes([pad])
    return out


def test_fixed_fields_are_read_from_their_bytes():
    h = RtpHeader.parse(packet())
    assert (h.marker, h.payload_type, h.seq, h.timestamp, h.ssrc) == (True, 96, 0xFFFE, 0x12345678, 0xCAFEBABE)
    assert (h.payload_start, h.payload_end) == (12, 15)


def test_csrcs_extensions_and_padding_bound_the_payload():
    # one-byte extensions: id 1 (mid "0"), id 3 (3 bytes), padding to a word boundary
    ext = bytes([0x10, ord("0"), 0x32, 1, 2, 3, 0, 0])
    data = packet(ext=ext, csrcs=2, pad=4, payload=b"abcde")
    h = RtpHeader.parse(data)
    assert h.payload(data) == b"abcde"
    assert h.extensions(data) == {1: b"0", 3: b"\x01\x02\x03"}


def test_two_byte_extensions():
    ext = bytes([5, 2, 0xAA, 0xBB])
    data = struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + struct.pack("!HH", 0x1000, 1) + ext + b"p"
    h = RtpHeader.parse(data)
    assert h.extensions(data) == {5: b"\xaa\xbb"}
    assert h.payload(data) == b"p"


def test_malformed_packets_are_refused():
    assert RtpHeader.parse(b"\x80" * 11) is None
    assert RtpHeader.parse(b"\x40" + bytes(11)) is None  # version 1
    assert RtpHeader.parse(packet(csrcs=15)[:20]) is None  # CSRC list runs past the end
    bad_pad = bytearray(packet(pad=4))
    bad_pad[-1] = 200
    assert RtpHeader.parse(bytes(bad_pad)) is None


def test_build_and_patch_write_the_same_bytes():
    hdr = build_header(0x80 | 100, 0x0102, 0x03040506, 0x0708090A)
    assert hdr == bytes([0x80, 0xE4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    buf = bytearray(packet())
    patch_header(buf, 100, 7, 8, 9)
    h = RtpHeader.parse(bytes(buf))
    assert (h.marker, h.payload_type, h.seq, h.timestamp, h.ssrc) == (False, 100, 7, 8, 9)
    assert bytes(buf[12:]) == packet()[12:]


def test_rtx_round_trip_and_helpers():
    assert rtx_payload(0xABCD, b"xy") == b"\xab\xcdxy"
    assert unwrap_rtx(b"\xab\xcdxy") == (0xABCD, b"xy")
    assert unwrap_rtx(b"\x01") is None
    assert seq_newer(0, 0xFFFF) and not seq_newer(0xFFFF, 0) and not seq_newer(5, 5)
    assert is_rtcp(bytes([0x80, 200])) and not is_rtcp(bytes([0x80, 96]))


@given(st.binary(max_size=200))
def test_parse_never_raises_and_bounds_are_sane(data):
    h = RtpHeader.parse(data)
    if h is not None:
        assert 12 <= h.payload_start <= h.payload_end <= len(data)
        h.extensions(data)
        h.payload(data)
