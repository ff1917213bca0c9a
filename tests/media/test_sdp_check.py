"""Offers with numbers out of range or dangling references are refused with the line named."""

from __future__ import annotations

import pytest

from media.sdp_check import SdpError, check_offer

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98",
        "c=IN IP4 0.0.0.0",
        "a=sendonly",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=rtcp-mux",
        "a=ssrc-group:FID 1111 2222",
        "a=ssrc:1111 cname:x",
        "a=ssrc:2222 cname:x",
        "a=rtpmap:97 VP8/90000",
        "a=rtcp-fb:97 nack pli",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuv",
        "a=fingerprint:sha-256 AB:CD:EF",
        "a=setup:actpass",
        "",
    ]
)


def test_a_good_offer_passes_unchanged():
    assert check_offer(OFFER) == OFFER


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("a=ssrc:1111 cname", "a=ssrc:4294967296 cname", "SSRC 4294967296 is out of range"),
        ("FID 1111 2222", "FID 1111 99999999999", "SSRC 99999999999 is out of range"),
        ("FID 1111 2222", "FID 1111", "exactly two SSRCs"),
        ("a=rtpmap:97 VP8", "a=rtpmap:200 VP8", "payload type 200 is out of range"),
        ("SAVPF 97 98", "SAVPF 97 98 300", "payload type 300 is out of range"),
        ("a=extmap:1 ", "a=extmap:256 ", "header extension id 256 is out of range"),
        ("a=extmap:1 ", "a=extmap:15 ", "reserved"),
        ("a=fmtp:98 apt=97", "a=fmtp:98 apt=128", "apt) 128 is out of range"),
        ("a=fmtp:98", "a=fmtp:99", "payload type 99 is not in its m-line"),
        ("a=rtcp-fb:97", "a=rtcp-fb:96", "payload type 96 is not in its m-line"),
        ("a=rtpmap:97 VP8/90000\r\n", "", "dynamic payload type 97 has no a=rtpmap"),
        ("m=video 9 ", "m=video 70000 ", "port 70000 is out of range"),
        ("a=mid:0\r\n", "", "no a=mid"),
        ("127.0.0.1 5000", "127.0.0.1 x", "port 'x' is not a number"),
        ("a=setup:actpass", "a=setup:bogus", "setup must be one of"),
        ("a=ice-ufrag:abcd\r\n", "", "ICE username fragment"),
    ],
)
def test_each_bad_number_or_reference_is_named_with_its_line(old, new, message):
    assert old in OFFER
    with pytest.raises(SdpError) as info:
        check_offer(OFFER.replace(old, new))
    text = str(info.value)
    assert message in text
    assert text.startswith("bad SDP")


def test_an_m_line_without_a_direction_gets_the_default_instead_of_none_is_not_in_list():
    fixed = check_offer(OFFER.replace("a=sendonly\r\n", ""))
    lines = fixed.split("\r\n")
    assert lines[lines.index("m=video 9 UDP/TLS/RTP/SAVPF 97 98") + 1] == "a=sendrecv"


def test_empty_and_garbage_offers_say_what_is_wrong():
    for text in ("", "hello", "v=0\r\ns=-\r\n"):
        with pytest.raises(SdpError, match="bad SDP"):
            check_offer(text)
