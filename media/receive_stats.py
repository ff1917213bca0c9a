"""Reception statistics of one inbound stream, as RFC 3550 appendix A.3/A.8 computes them for RR."""

from __future__ import annotations

from media.rtcp import ReportBlock


class ReceiveStats:
    __slots__ = (
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "jitter",
        "last_sr",
        "last_sr_at",
        "max_seq",
        "received",
        "received_prior",
        "transit",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.base_seq: int | None = None
        self.max_seq = 0
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self.transit: int | None = None
        self.last_sr = 0  # middle 32 bits of the last SR's NTP time
        self.last_sr_at = 0.0  # monotonic time it arrived

    def on_packet(self, seq: int, ts: int, now: float) -> None:
        self.received += 1
        if self.base_seq is None:
            self.base_seq = self.max_seq = seq
        else:
            d = (seq - self.max_seq) & 0xFFFF
            if 0 < d < 0x8000:
                if seq < self.max_seq:
                    self.cycles += 1 << 16
                self.max_seq = seq
        transit = int(now * self.clock_rate) - ts
        if self.transit is not None:
            # Transit differences wrap with the 32-bit timestamp; fold them back before averaging.
            diff = abs(((transit - self.transit) + 0x80000000) % 0x100000000 - 0x80000000)
            self.jitter += (diff - self.jitter) / 16.0
        self.transit = transit

    @property
    def expected(self) -> int:
        if self.base_seq is None:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    def on_sr(self, ntp: int, now: float) -> None:
        self.last_sr = (ntp >> 16) & 0xFFFFFFFF
        self.last_sr_at = now

    def report(self, ssrc: int, now: float) -> ReportBlock:
        """A report block for the next RR; resets the per-interval loss fraction."""
        expected = self.expected
        interval_expected = expected - self.expected_prior
        interval_received = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = interval_expected - interval_received
        fraction = 0 if interval_expected <= 0 or lost_interval <= 0 else (lost_interval << 8) // interval_expected
        dlsr = int((now - self.last_sr_at) * 65536) if self.last_sr else 0
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=min(255, fraction),
            packets_lost=self.lost,
            highest_seq=(self.cycles + self.max_seq) & 0xFFFFFFFF,
            jitter=int(self.jitter),
            lsr=self.last_sr,
            dlsr=dlsr,
        )
