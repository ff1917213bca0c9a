from hypothesis import given
from hypothesis import strategies as st

from media.keyframe import h264_is_keyframe, is_keyframe, vp8_is_keyframe


def test_vp8_key_and_delta_frames():
    # S=1, PID=0, no extension; frame tag P bit 0 (key) / 1 (delta)
    assert vp8_is_keyframe(bytes([0x10, 0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A]))
    assert not vp8_is_keyframe(bytes([0x10, 0x51, 0x00]))
    assert not vp8_is_keyframe(bytes([0x00, 0x50]))  # not the start of a partition
    assert not vp8_is_keyframe(bytes([0x11, 0x50]))  # partition 1
    # X=1, I=1 with a 15-bit picture id (2 bytes), then L and T/K bytes
    assert vp8_is_keyframe(bytes([0x90, 0xF0, 0x81, 0x23, 0x05, 0x20, 0x50]))
    assert not vp8_is_keyframe(bytes([0x90, 0xF0, 0x81, 0x23, 0x05, 0x20, 0x51]))
    assert not vp8_is_keyframe(bytes([0x90, 0x80]))  # truncated


def test_h264_idr_sps_stap_a_and_fu_a():
    assert h264_is_keyframe(bytes([0x65, 0x88]))  # IDR slice
    assert h264_is_keyframe(bytes([0x67, 0x42]))  # SPS
    assert not h264_is_keyframe(bytes([0x41, 0x9A]))  # non-IDR slice
    stap = bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE])
    assert h264_is_keyframe(stap)
    assert not h264_is_keyframe(bytes([0x78, 0x00, 0x02, 0x41, 0x9A]))
    assert not h264_is_keyframe(bytes([0x78, 0x00, 0x09, 0x67]))  # size runs past the end
    assert h264_is_keyframe(bytes([0x7C, 0x85, 0xB8]))  # FU-A start of IDR
    assert not h264_is_keyframe(bytes([0x7C, 0x45, 0xB8]))  # FU-A end
    assert is_keyframe("h264", bytes([0x65])) and not is_keyframe("opus", bytes([0x65]))


@given(st.binary(max_size=64))
def test_detectors_never_raise(data):
    vp8_is_keyframe(data)
    h264_is_keyframe(data)
