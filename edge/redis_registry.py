"""The registry on Redis (`redis.asyncio`): many machines share nodes, events and leases.

Keys (under `prefix`, default `classroom:`):
- `node:<id>`: a hash (`node`, `load` as JSON, `seen`) that expires `expiry_s` after the last heartbeat;
  `nodes` is the set of ids, pruned of the expired ones as it is read;
- `lease:<name>`: `<epoch>:<holder>`, set with SET NX PX; renewed and released by Lua scripts that act only
  while the value is still the caller's own; `lease:<name>:epoch`: the counter the epochs come from;
- events: Redis pub/sub channels `<prefix>ev:<channel>`, one connection per registry for all its
  subscriptions, fanned out here to each local subscriber.

Redis down: every operation raises `RegistryUnavailable` within `op_timeout` seconds (a refused
connection: at once). Subscriptions stay open; the listener reconnects with a growing pause (up to
`max_backoff_s`) and subscribes to every channel again once Redis is back. Messages published while it
was away are lost (pub/sub is at most once).

Redis without persistence forgets the epoch counters when it restarts: holders pass the highest epoch
they have seen (`min_epoch`), so an epoch never goes back for them; for a fencing guarantee across a
Redis restart that every node keeps, run Redis with `appendonly yes` (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edge.registry import MISSED_HEARTBEATS, Lease, Load, Node, NodeState, RegistryUnavailable, Subscription, encode

log = logging.getLogger(__name__)
T = TypeVar("T")

_UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError, TimeoutError)
# what a Redis that is up says to a node it will not serve: a wrong or missing password, an ACL, or a
# passwordless server's protected mode to another host (`DENIED`); the node goes on retrying, so a fixed
# password or server config takes effect without restarting the nodes
_REFUSALS = ("DENIED", "NOAUTH", "WRONGPASS", "NOPERM")


def _refused(exc: BaseException) -> bool:
    return isinstance(exc, redis_errors.AuthenticationError | redis_errors.NoPermissionError) or (
        isinstance(exc, redis_errors.ResponseError) and str(exc).split(" ", 1)[0] in _REFUSALS)

# KEYS[1] node hash; ARGV load json, seen, expiry ms
_HEARTBEAT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'load', ARGV[1], 'seen', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS[1] lease, KEYS[2] epoch counter; ARGV holder, ttl ms, min epoch. The epoch, or 0 if held by another.
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ':', 1, true)
  if string.sub(cur, sep + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, 1, sep - 1))
  end
  return 0
end
local epoch = redis.call('INCR', KEYS[2])
if epoch <= tonumber(ARGV[3]) then
  epoch = tonumber(ARGV[3]) + 1
  redis.call('SET', KEYS[2], epoch)
end
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return epoch
"""
# KEYS[1] lease; ARGV '<epoch>:<holder>', ttl ms. Only the caller's own lease is extended.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_value(epoch: int, holder: str) -> str:
    return f"{epoch}:{holder}"


def parse_lease_value(value: str) -> tuple[str, int]:
    epoch, _, holder = value.partition(":")
    return holder, int(epoch)


def parse_node(fields: dict[str, str]) -> NodeState | None:
    """A node hash as stored; None for a missing (expired) or half-written one."""
    if not fields.get("node") or not fields.get("load"):
        return None
    return NodeState(Node(**json.loads(fields["node"])), Load(**json.loads(fields["load"])), float(fields["seen"]))


class RedisRegistry:
    def __init__(
        self,
        url: str,
        *,
        heartbeat_interval: float = 5.0,
        missed_heartbeats: int = MISSED_HEARTBEATS,
        prefix: str = "classroom:",
        op_timeout: float = 3.0,
        max_backoff_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.heartbeat_interval = heartbeat_interval
        self.missed_heartbeats = missed_heartbeats
        self.prefix = prefix
        self.op_timeout = op_timeout
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        # one retry on a fresh connection: after Redis restarts, the pooled connections are dead ones
        self.redis: Redis = Redis.from_url(
            url, decode_responses=True, socket_timeout=op_timeout, socket_connect_timeout=op_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._subs: dict[str, set[Subscription]] = {}
        self._confirmed: set[str] = set()  # channels Redis confirmed on the listener's current connection
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._commands: asyncio.Queue[tuple[str, str]] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def expiry_s(self) -> float:
        return self.heartbeat_interval * self.missed_heartbeats

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _call(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await asyncio.wait_for(op(), self.op_timeout)
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            if _refused(exc):
                raise RegistryUnavailable(f"Redis at {self._where()} refused this node ({what}): {exc} "
                                          "(a password in the URL: redis://:PASSWORD@host:6379/0)") from exc
            if isinstance(exc, _UNREACHABLE):
                raise RegistryUnavailable(f"Redis at {self._where()} cannot be reached ({what}): {exc}") from exc
            raise

    def _where(self) -> str:
        kw = self.redis.connection_pool.connection_kwargs
        return f"{kw.get('host', '?')}:{kw.get('port', '?')}"

    # nodes

    def seen_now(self) -> float:
        return time.time()  # `seen` is the heartbeating node's wall-clock time, comparable across nodes

    async def register(self, node: Node, load: Load | None = None) -> NodeState:
        load = load or Load()
        state = NodeState(node, load, time.time())
        key = self._key("node", node.id)

        async def op() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"node": json.dumps(node.__dict__), "load": json.dumps(load.__dict__),
                                        "seen": repr(state.seen)})
                pipe.pexpire(key, int(self.expiry_s * 1000))
                pipe.sadd(self._key("nodes"), node.id)
                await pipe.execute()

        await self._call("register", op)
        return state

    async def heartbeat(self, node_id: str, load: Load) -> bool:
        key = self._key("node", node_id)
        args = (json.dumps(load.__dict__), repr(time.time()), int(self.expiry_s * 1000))
        done = await self._call("heartbeat", lambda: self.redis.eval(_HEARTBEAT, 1, key, *args))  # type: ignore[misc]
        return bool(done)

    async def deregister(self, node_id: str) -> None:
        async def op() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key("node", node_id))
                pipe.srem(self._key("nodes"), node_id)
                await pipe.execute()

        await self._call("deregister", op)

    async def nodes(self) -> list[NodeState]:
        async def op() -> list[NodeState]:
            ids = sorted(await self.redis.smembers(self._key("nodes")))  # type: ignore[misc]
            async with self.redis.pipeline(transaction=False) as pipe:
                for node_id in ids:
                    pipe.hgetall(self._key("node", node_id))
                rows = await pipe.execute()
            states = [parse_node(row) for row in rows]
            gone = [node_id for node_id, s in zip(ids, states, strict=True) if s is None]
            if gone:
                await self.redis.srem(self._key("nodes"), *gone)  # type: ignore[misc]
            return [s for s in states if s is not None]

        return await self._call("nodes", op)

    # leases

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, min_epoch: int = 0) -> Lease | None:
        if ":" in holder or not holder:
            raise ValueError("a lease holder is a non-empty name without ':'")
        started = self.clock()
        keys = (self._key("lease", name), self._key("lease", name, "epoch"))
        epoch = await self._call(
            "acquire a lease",
            lambda: self.redis.eval(_ACQUIRE, 2, *keys, holder, int(ttl_s * 1000), min_epoch),  # type: ignore[misc]
        )
        return Lease(name, holder, int(epoch), ttl_s, started + ttl_s) if epoch else None

    async def renew_lease(self, lease: Lease) -> Lease | None:
        started = self.clock()
        key, value = self._key("lease", lease.name), lease_value(lease.epoch, lease.holder)
        done = await self._call(
            "renew a lease",
            lambda: self.redis.eval(_RENEW, 1, key, value, int(lease.ttl_s * 1000)),  # type: ignore[misc]
        )
        return Lease(lease.name, lease.holder, lease.epoch, lease.ttl_s, started + lease.ttl_s) if done else None

    async def release_lease(self, lease: Lease) -> bool:
        key, value = self._key("lease", lease.name), lease_value(lease.epoch, lease.holder)
        done = await self._call("release a lease", lambda: self.redis.eval(_RELEASE, 1, key, value))  # type: ignore[misc]
        return bool(done)

    async def lease_holder(self, name: str) -> tuple[str, int] | None:
        value = await self._call("read a lease", lambda: self.redis.get(self._key("lease", name)))
        return parse_lease_value(value) if value else None

    # events

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        data = encode(message)
        return int(await self._call("publish", lambda: self.redis.publish(self._key("ev", channel), data)))

    async def subscribe(self, channel: str) -> Subscription:
        if self._closed:
            raise RuntimeError("the registry is closed")
        await self._call("subscribe", self.redis.ping)  # type: ignore[arg-type]
        sub = Subscription(channel, self._unsubscribe)
        first = channel not in self._subs
        self._subs.setdefault(channel, set()).add(sub)
        if channel in self._confirmed:
            return sub
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(channel, []).append(ready)
        if first:
            self._command("subscribe", channel)
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.op_timeout)
        except TimeoutError:
            waiting = self._waiting.get(channel, [])
            if ready in waiting:
                waiting.remove(ready)
            sub.close()
            raise RegistryUnavailable(
                f"Redis at {self._where()} did not confirm the subscription to {channel}") from None
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.channel)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.channel]
            self._confirmed.discard(sub.channel)
            if not self._closed:
                self._command("unsubscribe", sub.channel)

    def _command(self, verb: str, channel: str) -> None:
        if self._commands is None:
            self._commands = asyncio.Queue()
        self._commands.put_nowait((verb, channel))
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="registry-events")

    async def _listen(self) -> None:
        """One pub/sub connection for every local subscription: subscribe, read, reconnect, resubscribe."""
        assert self._commands is not None
        backoff = 0.1
        while not self._closed and self._subs:
            pubsub: PubSub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*(self._key("ev", ch) for ch in self._subs))
                while not self._closed and (self._subs or not self._commands.empty()):
                    while not self._commands.empty():
                        verb, channel = self._commands.get_nowait()
                        if verb == "subscribe" and channel in self._subs:
                            await pubsub.subscribe(self._key("ev", channel))
                        elif verb == "unsubscribe" and channel not in self._subs:
                            await pubsub.unsubscribe(self._key("ev", channel))
                    message = await pubsub.get_message(timeout=0.05)
                    if message is not None:
                        self._dispatch(message)
                        backoff = 0.1
            except (redis_errors.RedisError, OSError, TimeoutError) as exc:
                if not (_refused(exc) or isinstance(exc, _UNREACHABLE)):
                    raise
                if self._confirmed:
                    log.warning("registry events: Redis at %s went away (%s); subscribing again when it is back",
                                self._where(), exc)
                self._confirmed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
        self._confirmed.clear()

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = str(message.get("channel", ""))[len(self._key("ev", "")):]
        if message["type"] == "subscribe":
            if channel in self._subs:
                self._confirmed.add(channel)
            for ready in self._waiting.pop(channel, []):
                if not ready.done():
                    ready.set_result(None)
        elif message["type"] == "message":
            try:
                data = json.loads(message["data"])
            except (TypeError, ValueError):
                log.warning("registry events: a message on %s that is not JSON was dropped", channel)
                return
            for i, sub in enumerate(list(self._subs.get(channel, ()))):
                sub.deliver(data if i == 0 else json.loads(message["data"]))  # a copy each

    async def close(self) -> None:
        self._closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        with contextlib.suppress(Exception):
            await self.redis.aclose()
