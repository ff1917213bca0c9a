"""Which inbound packets are missing and when to ask the publisher for them again (RFC 4585 NACK).

Bounded and O(1) per packet (amortised) whatever the sender does:

- at most `max_missing` numbers are tracked; a new gap beyond that forgets the oldest ones;
- every number waits in one FIFO ordered by when it is next due (all share one retry interval, so
  appending keeps the order): `due` looks only at the head, never walks the whole set;
- at most `max_rate` numbers per second are asked for (token bucket, burst `max_burst`), so a sender
  that jumps around cannot make the SFU send floods of NACKs upstream.
"""

from __future__ import annotations

from collections import deque

from media.ratelimit import TokenBucket


class NackTracker:
    __slots__ = (
        "budget",
        "max_gap",
        "max_missing",
        "max_retries",
        "max_seq",
        "missing",
        "queue",
        "retry_interval",
        "serial",
    )

    def __init__(
        self,
        max_gap: int = 256,
        max_retries: int = 4,
        retry_interval: float = 0.03,
        max_missing: int | None = None,
        max_rate: float = 2000.0,
        max_burst: float = 512.0,
    ) -> None:
        self.max_gap = max_gap
        self.max_retries = max_retries
        self.retry_interval = retry_interval
        self.max_missing = max_missing if max_missing is not None else 2 * max_gap
        self.max_seq: int | None = None
        # seq -> (times asked, serial of its queue entry)
        self.missing: dict[int, tuple[int, int]] = {}
        # (due time, seq, serial), oldest first; entries whose serial no longer matches are stale
        self.queue: deque[tuple[float, int, int]] = deque()
        self.serial = 0
        self.budget = TokenBucket(max_rate, max_burst)

    def reset(self, seq: int | None = None) -> None:
        """The stream restarted (at `seq`): nothing before it is missing."""
        self.missing.clear()
        self.queue.clear()
        self.max_seq = None if seq is None else seq & 0xFFFF

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
                self.reset(seq)
                return None
            fresh: list[int] | None = None
            if d > 1:
                missing = self.missing
                queue = self.queue
                budget = self.budget
                budget.refill(now)
                fresh = []
                for i in range(1, d):
                    s = (self.max_seq + i) & 0xFFFF
                    self.serial += 1
                    # Asked at once while the budget lasts; the rest waits one retry interval.
                    asked = budget.tokens >= 1
                    if asked:
                        budget.tokens -= 1
                        fresh.append(s)
                    missing[s] = (1 if asked else 0, self.serial)
                    queue.append((now, s, self.serial))
                self._bound()
            self.max_seq = seq
            retries = self.due(now) if self.missing else None
            if fresh and retries:
                return retries + [s for s in fresh if s in self.missing]
            return ([s for s in fresh if s in self.missing] or None) if fresh else retries
        self.missing.pop(seq, None)
        if not self.missing:
            return None
        return self.due(now)

    def _bound(self) -> None:
        missing, queue = self.missing, self.queue
        while len(missing) > self.max_missing and queue:
            _, s, serial = queue.popleft()
            entry = missing.get(s)
            if entry is not None and entry[1] == serial:
                del missing[s]
        # Stale entries (numbers that arrived) are dropped as they reach the head; keep the queue
        # from growing without bound when they are many.
        if len(queue) > 4 * self.max_missing + 64:
            self.queue = deque(e for e in queue if (m := missing.get(e[1])) is not None and m[1] == e[2])

    def due(self, now: float) -> list[int] | None:
        """Numbers whose time to be asked (again) has come, within the rate budget."""
        queue = self.queue
        if not queue:
            return None
        missing = self.missing
        out: list[int] = []
        threshold = now - self.retry_interval
        budget = self.budget
        budget.refill(now)
        while queue and queue[0][0] <= threshold:
            _, s, serial = queue[0]
            entry = missing.get(s)
            if entry is None or entry[1] != serial:
                queue.popleft()  # arrived, forgotten or re-queued
                continue
            tries = entry[0]
            if tries >= self.max_retries:
                queue.popleft()
                del missing[s]
                continue
            if budget.tokens < 1:
                break  # the rest waits for the budget, still in order
            budget.tokens -= 1
            queue.popleft()
            self.serial += 1
            missing[s] = (tries + 1, self.serial)
            queue.append((now, s, self.serial))
            out.append(s)
        return out or None
