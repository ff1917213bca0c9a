"""Which inbound packets are missing and when to ask the publisher for them again (RFC 4585 NACK)."""

from __future__ import annotations


class NackTracker:
    __slots__ = ("max_gap", "max_retries", "max_seq", "missing", "retry_interval")

    def __init__(self, max_gap: int = 256, max_retries: int = 4, retry_interval: float = 0.03) -> None:
        self.max_gap = max_gap
        self.max_retries = max_retries
        self.retry_interval = retry_interval
        self.max_seq: int | None = None
        # seq -> [times asked, monotonic time last asked]
        self.missing: dict[int, list[float]] = {}

    def on_packet(self, seq: int, now: float) -> list[int] | None:
        """Record an arrival; returns the sequence numbers to NACK now (new gaps and due retries)."""
        seq &= 0xFFFF
        if self.max_seq is None:
            self.max_seq = seq
            return None
        d = (seq - self.max_seq) & 0xFFFF
        if d == 0:
            return None
        if d < 0x8000:
            if d > self.max_gap:
                # A jump this large is a restarted source, not loss worth asking for.
                self.missing.clear()
            else:
                for i in range(1, d):
                    self.missing[(self.max_seq + i) & 0xFFFF] = [0, -1.0]
            self.max_seq = seq
        else:
            self.missing.pop(seq, None)
        if not self.missing:
            return None
        return self.due(now)

    def due(self, now: float) -> list[int] | None:
        out: list[int] = []
        gone = []
        for seq, state in self.missing.items():
            if now - state[1] < self.retry_interval:
                continue
            if state[0] >= self.max_retries:
                gone.append(seq)
                continue
            state[0] += 1
            state[1] = now
            out.append(seq)
        for seq in gone:
            del self.missing[seq]
        return out or None
