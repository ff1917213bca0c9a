"""Sealing of relay-link datagrams: AES-256-GCM, a nonce that never repeats, replays refused.

Every datagram of a link is

    magic (1) | kind | direction (1) | track id (2) | counter (8) | ciphertext | tag (16)

The first 12 bytes travel in clear and are authenticated as associated data; everything else (the RTP
header and payload, the RTCP, the state JSON) is encrypted. The nonce is the direction bit and the
sending end's 64-bit counter (`nonce = 0 0 0 direction counter`): each end counts its own datagrams
from zero and never reuses a value, the two directions differ in the direction byte, and every link
has a fresh random key, so no (key, nonce) pair is ever used twice. The receiving end keeps a sliding
window of the counters it took (`ReplayWindow`, as SRTP does): a duplicate or a replayed datagram is
refused after it authenticated, so a recorded old state or packet sent again changes nothing.

AES-GCM was chosen over ChaCha20-Poly1305 by measuring (`classroom bench relay --auth-costs`, one
1,200-byte packet): with the CPU's AES instructions 1.2 us against 1.8, and the link's whole seal
(2.0 us) costs no more than the keyed BLAKE2b tag the link had before (2.2 us), which only
authenticated.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = 0xC2  # first byte of every relay datagram: the link's format, version 2 (encrypted)
FROM_ORIGIN = 0x80  # set in the kind byte of datagrams the origin sends
HEADER = struct.Struct("!BBHQ")  # magic, kind | direction, track id (state: chunk index), counter
HEAD = HEADER.size
TAG = 16
OVERHEAD = HEAD + TAG
KEY_SIZES = (16, 24, 32)
REPLAY_WINDOW = 1024  # counters behind the highest one still taken once (reordering on a network)
_COUNTER_END = 1 << 64


class ReplayWindow:
    """Which counters of the other end were taken: each at most once, none older than the window."""

    __slots__ = ("highest", "mask", "size")

    def __init__(self, size: int = REPLAY_WINDOW) -> None:
        self.size = size
        self.highest = -1
        self.mask = 0  # bit i: counter `highest - i` was taken

    def accept(self, counter: int) -> bool:
        highest = self.highest
        if counter > highest:
            shift = counter - highest
            self.mask = ((self.mask << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.highest = counter
            return True
        behind = highest - counter
        if behind >= self.size or (self.mask >> behind) & 1:
            return False
        self.mask |= 1 << behind
        return True


class LinkSeal:
    """One end's sealing and opening of a link's datagrams, with its key and its direction."""

    __slots__ = ("_aead", "_in_nonce", "_out_nonce", "counter", "direction")

    def __init__(self, key: bytes, origin: bool) -> None:
        if len(key) not in KEY_SIZES:
            raise ValueError("a relay link's key has 16, 24 or 32 bytes")
        self._aead = AESGCM(bytes(key))
        self.direction = FROM_ORIGIN if origin else 0
        self._out_nonce = bytes([0, 0, 0, self.direction])
        self._in_nonce = bytes([0, 0, 0, FROM_ORIGIN ^ self.direction])
        self.counter = 0  # the next counter this end sends

    def seal(self, kind: int, track_id: int, body: bytes) -> bytes:
        """One datagram of `kind` (without the direction bit) for `track_id`, `body` encrypted."""
        counter = self.counter
        if counter >= _COUNTER_END:
            raise OverflowError("a relay link's counter ran out: the link needs a new key")
        self.counter = counter + 1
        head = HEADER.pack(MAGIC, kind | self.direction, track_id, counter)
        return head + self._aead.encrypt(self._out_nonce + head[4:HEAD], body, head)

    def open(self, data: bytes) -> tuple[int, int, int, bytes] | None:
        """(kind without the direction bit, track id, counter, body) of a datagram the other end
        sealed with this key, or None for anything else: too short, another format, this end's own
        direction (a reflection), a wrong key or tag. Never raises."""
        if len(data) < OVERHEAD or data[0] != MAGIC or data[1] & FROM_ORIGIN == self.direction:
            return None
        head = data[:HEAD]
        try:
            body = self._aead.decrypt(self._in_nonce + head[4:HEAD], data[HEAD:], head)
        except InvalidTag:
            return None
        _, kind, track_id, counter = HEADER.unpack(head)
        return kind & 0x7F, track_id, counter, body
