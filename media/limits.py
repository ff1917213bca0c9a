"""Packet size limits of the media plane: what the SFU accepts is what it can always send again.

pylibsrtp protects into a 1,500-byte buffer and keeps room for the SRTP trailer, so it refuses (with
`ValueError`) RTP over 1,356 bytes and RTCP over 1,352 bytes. The SFU sends every payload it accepts
behind a fresh 12-byte header, and a retransmission on RTX adds the 2-byte original sequence number
(RFC 4588). Checking the payload once where a packet enters (`InboundTrack.on_rtp`) against
`MAX_PAYLOAD` therefore guarantees that forwarding and retransmitting it can never hit the SRTP limit.
Browsers keep RTP packets near 1,200 bytes including header extensions (which the SFU drops), so real
media is never near it.
"""

from __future__ import annotations

SRTP_MAX_RTP = 1356  # plaintext RTP pylibsrtp protects (1,500-byte buffer minus its trailer room)
SRTP_MAX_RTCP = 1352  # plaintext RTCP pylibsrtp protects
RTP_HEADER = 12  # the header the SFU writes: no CSRCs, no extensions, no padding
RTX_OVERHEAD = 2  # the original sequence number in front of an RTX payload
# The largest media payload accepted from a publisher: forwarded (12 + payload) and retransmitted on
# RTX (12 + 2 + payload), both within what SRTP takes.
MAX_PAYLOAD = SRTP_MAX_RTP - RTP_HEADER - RTX_OVERHEAD  # 1,342 bytes
# The largest datagram the SFU hands to aiortc: pylibsrtp unprotects at most 1,500 bytes (ValueError
# beyond, which ends aiortc's DTLS receive loop and the connection); DTLS records from browsers stay
# well below it. Larger and empty datagrams are dropped where they arrive (media/ice.py).
MAX_DATAGRAM = 1500
# NACK items (PID + 16-bit mask, 4 bytes each) per RTCP NACK packet the SFU builds: 12 + 4 * 64 =
# 268 bytes, far below SRTP_MAX_RTCP, and several fit in one compound datagram.
NACK_ITEMS_PER_PACKET = 64
# Sequence numbers taken from one received NACK packet; a NACK packet of the largest RTCP size names
# at most 335 items x 17 = 5,695 numbers, which would cost a millisecond just to unpack.
MAX_NACKED_PER_PACKET = 512
