"""The scheduler's job lock: exactly one node runs the timed jobs (open windows, settle lessons, reports).

Every node runs a `JobLock` on the shared registry. The holder renews its lease every `lease_s / 3`;
the others try to take it every `lease_s / 6`. `held` is what the jobs ask before they act: true only
while this node's lease is valid by its own clock, so a holder cut off from Redis stops acting at its
deadline, before the lease can run out in Redis and go to another node (with a higher epoch). A node
that dies (SIGKILL) stops renewing; another takes over within about `lease_s` and catches up on
everything overdue at once (`on_gained`: the jobs' `plan()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from edge.registry import Lease, Registry, RegistryUnavailable

log = logging.getLogger(__name__)

JOB_LOCK = "scheduler-jobs"


def holder_name(node_id: str) -> str:
    """This process's name on the lease: the node's id and a random suffix (a restarted node is a new holder)."""
    return f"{node_id.replace(':', '_')}/{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Step:
    """What the keeper does next, from what it knows (pure: `next_step`)."""

    action: str  # renew, acquire
    lost: bool  # the lease it had ran out by its own clock before it could renew it


def next_step(lease: Lease | None, now: float) -> Step:
    if lease is not None and lease.valid(now):
        return Step("renew", False)
    return Step("acquire", lease is not None)


def pause(held: bool, lease_s: float) -> float:
    """Seconds to the next round: a holder renews three times per lease, the others try six times."""
    return lease_s / 3 if held else lease_s / 6


class JobLock:
    def __init__(
        self,
        registry: Registry,
        holder: str,
        *,
        name: str = JOB_LOCK,
        lease_s: float = 15.0,
        on_gained: Callable[[Lease], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("the lease time must be positive")
        self.registry = registry
        self.holder = holder
        self.name = name
        self.lease_s = lease_s
        self.on_gained = on_gained
        self.on_lost = on_lost
        self.lease: Lease | None = None
        self.highest_epoch = 0
        self._task: asyncio.Task[None] | None = None
        self._unreachable = False

    @property
    def held(self) -> bool:
        return self.lease is not None and self.lease.valid(self.registry.clock())

    @property
    def epoch(self) -> int | None:
        return self.lease.epoch if self.held and self.lease is not None else None

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "holder": self.holder, "held": self.held, "epoch": self.epoch,
                "lease_s": self.lease_s}

    async def step(self) -> float:
        """One round: renew or try to take the lease; the seconds until the next round."""
        step = next_step(self.lease, self.registry.clock())
        if step.lost:
            self._lose("its lease ran out before it could be renewed")
        try:
            if step.action == "renew" and self.lease is not None:
                renewed = await self.registry.renew_lease(self.lease)
                if renewed is None:
                    self._lose("another node holds it now, or it expired")
                else:
                    self.lease = renewed
            else:
                got = await self.registry.acquire_lease(self.name, self.holder, self.lease_s,
                                                        min_epoch=self.highest_epoch)
                if got is not None:
                    self._gain(got)
                else:
                    held_by = await self.registry.lease_holder(self.name)
                    if held_by is not None:
                        self.highest_epoch = max(self.highest_epoch, held_by[1])
            if self._unreachable:
                log.info("job lock: the registry is reachable again")
                self._unreachable = False
        except RegistryUnavailable as exc:
            if not self._unreachable:
                log.warning("job lock: %s; %s", exc,
                            "timed jobs stop here at the lease's end unless it comes back" if self.held
                            else "trying again")
                self._unreachable = True
        return pause(self.held, self.lease_s)

    def _gain(self, lease: Lease) -> None:
        first = self.lease is None or self.lease.epoch != lease.epoch
        self.lease = lease
        self.highest_epoch = max(self.highest_epoch, lease.epoch)
        if first:
            log.info("job lock: this node (%s) holds the scheduler's job lock, epoch %d: timed jobs run here",
                     self.holder, lease.epoch)
            if self.on_gained is not None:
                try:
                    self.on_gained(lease)
                except Exception:
                    log.exception("job lock: catching up after taking the lock failed")

    def _lose(self, why: str) -> None:
        if self.lease is None:
            return
        log.warning("job lock: this node (%s) lost the scheduler's job lock (epoch %d): %s; timed jobs stopped here",
                    self.holder, self.lease.epoch, why)
        self.lease = None
        if self.on_lost is not None:
            self.on_lost(why)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(await self.step())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="job-lock")

    async def stop(self) -> None:
        """Stop keeping the lock and give it up at once, so another node takes over without waiting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.lease is not None:
            with contextlib.suppress(RegistryUnavailable):
                if await self.registry.release_lease(self.lease):
                    log.info("job lock: released (epoch %d) for another node to take", self.lease.epoch)
            self.lease = None
