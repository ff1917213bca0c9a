"""Per-address (and per-account) rate limits (token buckets) for logins and joins.

The table of addresses is bounded: the least recently seen address is forgotten first, so a flood of
spoofed sources cannot grow memory without limit.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, per_minute: float, burst: int, max_addresses: int = 10000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_addresses = max_addresses
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, address: str) -> bool:
        """Take one token for `address`; False when its bucket is empty."""
        now = self.clock()
        tokens, last = self._buckets.pop(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[address] = (tokens, now)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
        return allowed

    def has_room(self, address: str) -> bool:
        """Whether `allow` would succeed now, without taking a token (to count only failures)."""
        now = self.clock()
        tokens, last = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate) >= 1.0

    def retry_after(self, address: str) -> float:
        tokens, _ = self._buckets.get(address, (self.burst, 0.0))
        return max(0.0, (1.0 - tokens) / self.rate)

    def __len__(self) -> int:
        return len(self._buckets)
