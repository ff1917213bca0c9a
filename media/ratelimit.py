"""Small rate limiters for the packet path: a token bucket, and a logger that says each cause once.

Both take the time from the caller (I/O-free, testable) and hold no global state: each participant,
room or socket owns its own.
"""

from __future__ import annotations

import logging


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `take` spends them when there are enough."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def refill(self, now: float) -> float:
        elapsed = now - self.last
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.last = now
        return self.tokens

    def take(self, now: float, n: float = 1.0) -> bool:
        if self.refill(now) >= n:
            self.tokens -= n
            return True
        return False


class RateLimitedLog:
    """Logs a warning at most once per `interval` seconds per cause, with how many were held back.

    Anyone who reaches a UDP port can send junk at line rate; one line per cause per minute keeps the
    log readable while the counters (`counts`) say how much there was.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self.counts: dict[str, int] = {}
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, cause: str, now: float, message: str, *args: object) -> bool:
        """Count one occurrence of `cause`; log `message % args` if its interval has passed."""
        self.counts[cause] = self.counts.get(cause, 0) + 1
        if now < self._next.get(cause, float("-inf")):
            self._held[cause] = self._held.get(cause, 0) + 1
            return False
        held = self._held.pop(cause, 0)
        self._next[cause] = now + self.interval
        suffix = f" ({held} more since the last report)" if held else ""
        self.logger.warning(f"{message}{suffix}", *args)
        return True
