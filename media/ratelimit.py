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


class FairShares:
    """A rate shared equally by the members that use it: one worker's retransmissions among its rooms.

    Each member (`FairShare`, one per room) gets `rate / active` per second, where `active` counts
    the members that asked within the last `active_window` seconds (recounted at most every
    `recount_interval`), never more than the member's own `cap`. A member that asks for nothing
    leaves its share to the others; when it asks again, the others' shares shrink at the next
    recount. Each member saves up at most `burst_seconds` of its current rate. The sum of what the
    members get stays within `rate` (plus their bursts) however they behave.
    """

    def __init__(
        self,
        rate: float,
        burst_seconds: float = 0.2,
        active_window: float = 1.0,
        recount_interval: float = 0.1,
    ) -> None:
        self.rate = rate
        self.burst_seconds = burst_seconds
        self.active_window = active_window
        self.recount_interval = recount_interval
        self.members: list[FairShare] = []
        self._active = 1
        self._counted_at = float("-inf")

    def share(self, cap: float, now: float) -> FairShare:
        """A new member, starting with a full burst of what its share would be now."""
        member = FairShare(self, cap, now)
        self.members.append(member)
        self._counted_at = float("-inf")  # recount at the next use
        per = min(cap, self.rate / (self.active(now) + 1))
        member.tokens = per * self.burst_seconds
        return member

    def remove(self, member: FairShare) -> None:
        if member in self.members:
            self.members.remove(member)
            self._counted_at = float("-inf")

    def active(self, now: float) -> int:
        """Members that asked within the active window (at least 1)."""
        if now - self._counted_at >= self.recount_interval:
            since = now - self.active_window
            self._active = max(1, sum(1 for m in self.members if m.asked_at >= since))
            self._counted_at = now
        return self._active

    def snapshot(self) -> dict[str, object]:
        return {"rate": self.rate, "rooms": len(self.members), "active": self._active}


class FairShare:
    """One member's part of a `FairShares` rate, used like a `TokenBucket` (`refill`, `take`, `tokens`)."""

    __slots__ = ("asked_at", "cap", "last", "owner", "tokens")

    def __init__(self, owner: FairShares, cap: float, now: float) -> None:
        self.owner = owner
        self.cap = cap
        self.tokens = 0.0
        self.last = now
        self.asked_at = float("-inf")

    def rate(self, now: float) -> float:
        owner = self.owner
        return min(self.cap, owner.rate / owner.active(now))

    def refill(self, now: float) -> float:
        """Earn the share since the last call (at the current split) and mark this member active."""
        self.asked_at = now
        rate = self.rate(now)
        elapsed = now - self.last
        if elapsed > 0:
            self.tokens = min(rate * self.owner.burst_seconds, self.tokens + elapsed * rate)
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
