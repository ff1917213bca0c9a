"""Sequence number and timestamp rewriting for one outgoing stream (a subscriber's slot).

An outgoing stream has one SSRC for its whole life, but its packets may come from several sources in
turn: the lead before and after a reconnect, or classroom after classroom during talk-back. Each
source numbers its packets and clocks its timestamps from its own random origin. The rewriter maps
every source onto one continuous numbering: the first packet after a switch gets the sequence number
after the last one sent, and a timestamp advanced by the wall-clock time that passed, so the
subscriber's jitter buffer and decoder see one stream with a pause, never a jump.

Within one source the mapping is a fixed offset, so gaps stay gaps (a NACK for an outgoing number maps
back to exactly one source packet) and reordered packets stay reordered.
"""

from __future__ import annotations


class SeqTsRewriter:
    __slots__ = (
        "clock_rate",
        "last_seq",
        "last_time",
        "last_ts",
        "sent_any",
        "seq_offset",
        "start_in_seq",
        "start_out_seq",
        "started",
        "ts_offset",
    )

    def __init__(self, clock_rate: int, initial_seq: int, initial_ts: int) -> None:
        self.clock_rate = clock_rate
        # The "previous" packet of the very first source: the first packet goes out as initial_seq.
        self.last_seq = (initial_seq - 1) & 0xFFFF
        self.last_ts = initial_ts & 0xFFFFFFFF
        self.last_time = 0.0
        self.sent_any = False
        self.started = False  # a source mapping is in force
        self.seq_offset = 0
        self.ts_offset = 0
        self.start_in_seq = 0
        self.start_out_seq = 0

    def stop(self) -> None:
        """The current source ended (switch, reconnect): the next packet must `begin` a new mapping."""
        self.started = False

    def begin(self, seq: int, ts: int, now: float) -> None:
        """Start mapping a source at its packet (`seq`, `ts`) arriving at monotonic time `now`."""
        out_seq = (self.last_seq + 1) & 0xFFFF
        if self.sent_any:
            # Advance by the real pause, at least one tick, so timestamps never repeat or go back.
            elapsed = max(1, int((now - self.last_time) * self.clock_rate))
            out_ts = (self.last_ts + elapsed) & 0xFFFFFFFF
        else:
            out_ts = self.last_ts
        self.seq_offset = (out_seq - seq) & 0xFFFF
        self.ts_offset = (out_ts - ts) & 0xFFFFFFFF
        self.start_in_seq = seq
        self.start_out_seq = out_seq
        self.started = True

    def map(self, seq: int, ts: int, now: float) -> int:
        """The outgoing sequence number for a source packet, or -1 to drop it (from before `begin`).

        Call `out_ts(ts)` for the timestamp; the split avoids allocating a tuple per packet.
        """
        if (seq - self.start_in_seq) & 0xFFFF >= 0x8000:
            return -1
        out_seq = (seq + self.seq_offset) & 0xFFFF
        if not self.sent_any or (out_seq - self.last_seq) & 0xFFFF < 0x8000:
            self.last_seq = out_seq
            self.last_ts = (ts + self.ts_offset) & 0xFFFFFFFF
            self.last_time = now
            self.sent_any = True
        return out_seq

    def out_ts(self, ts: int) -> int:
        return (ts + self.ts_offset) & 0xFFFFFFFF

    def to_source_seq(self, out_seq: int) -> int:
        """The source sequence number an outgoing one came from in the current mapping, or -1."""
        if not self.started:
            return -1
        if (out_seq - self.start_out_seq) & 0xFFFF >= 0x8000 or (self.last_seq - out_seq) & 0xFFFF >= 0x8000:
            return -1
        return (out_seq - self.seq_offset) & 0xFFFF

    def rtp_time_at(self, now: float) -> int:
        """The outgoing RTP timestamp that corresponds to `now` (for sender reports)."""
        return (self.last_ts + int((now - self.last_time) * self.clock_rate)) & 0xFFFFFFFF
