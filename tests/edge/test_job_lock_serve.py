"""Two `classroom serve` processes on one redis-server: only the job lock's holder runs the timed jobs, and
when it is killed (SIGKILL) the other takes over within the lease time and opens the window it had left.

Each server has its own database with the same kind of lesson, due now: the holder opens its lesson's window
at once; the other's lesson stays scheduled until that node holds the lock."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from signaling.trial import AdminApi, build_world, lesson_now_timezone
from tests.conftest import Server
from tests.edge.conftest import RedisProcess
from tests.signaling.test_websocket_server import ENV

LEASE_S = 3.0


def health(srv: Server) -> dict[str, Any]:
    with urllib.request.urlopen(srv.url + "/healthz", timeout=5) as r:
        return dict(json.loads(r.read()))


async def status_of(api: AdminApi, lesson_id: int) -> str:
    return str((await api.ok("GET", f"/api/v1/lessons/{lesson_id}"))["status"])


async def test_only_the_holder_runs_timed_jobs_and_the_other_takes_over_after_sigkill(
        server_factory: Any, redis_server: RedisProcess) -> None:
    tz = lesson_now_timezone()
    env = {**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_CLUSTER__LEASE_S": str(LEASE_S),
           "CLASSROOM_CLUSTER__HEARTBEAT_S": "0.5"}
    first = server_factory("--media", "local", "--redis", redis_server.url,
                           env={**env, "CLASSROOM_CLUSTER__NODE_ID": "node-a"})
    second = server_factory("--media", "local", "--redis", redis_server.url,
                            env={**env, "CLASSROOM_CLUSTER__NODE_ID": "node-b"})
    assert health(first)["cluster"]["job_lock"]["held"] is True
    assert health(second)["cluster"]["job_lock"]["held"] is False
    assert health(first)["cluster"]["registry"] == "redis"
    assert "holds the scheduler's job lock" in first.log
    assert "held by another node" in second.log

    api_a, api_b = AdminApi(first.url, first.token), AdminApi(second.url, second.token)
    world_a = await build_world(api_a, tz, receivers=1)
    world_b = await build_world(api_b, tz, receivers=1)
    lesson_a, lesson_b = world_a.lesson_ids[0], world_b.lesson_ids[0]
    deadline = time.monotonic() + 10
    while await status_of(api_a, lesson_a) != "open":
        assert time.monotonic() < deadline, "the holder did not open its lesson's window"
        await asyncio.sleep(0.2)
    await asyncio.sleep(LEASE_S)  # several renewals: the other node stays out
    assert await status_of(api_b, lesson_b) == "scheduled"
    assert health(second)["cluster"]["job_lock"]["held"] is False
    epoch_a = health(first)["cluster"]["job_lock"]["epoch"]

    first.kill9()
    killed = time.monotonic()
    while await status_of(api_b, lesson_b) != "open":
        assert time.monotonic() - killed < LEASE_S + 2.0, "the other node did not take over in the lease time"
        await asyncio.sleep(0.1)
    took = time.monotonic() - killed
    lock = health(second)["cluster"]["job_lock"]
    assert lock["held"] is True and lock["epoch"] > epoch_a
    assert f"lesson {lesson_b}: window open" in second.log
    assert took <= LEASE_S + 2.0
