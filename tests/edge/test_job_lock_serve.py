"""Two `classroom serve` processes on one redis-server: only the job lock's holder runs the timed jobs, and
when it is killed (SIGKILL) the other takes over within the lease time and opens the window it had left.

Each server has its own database with the same kind of lesson, due now: the holder opens its lesson's window
at once; the other's lesson stays scheduled until that node holds the lock."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from signaling.trial import AdminApi, build_world, lesson_now_timezone
from tests.conftest import ROOT, Server, free_port
from tests.edge.conftest import RedisProcess
from tests.signaling.test_websocket_server import ENV

LEASE_S = 3.0


def health(srv: Server) -> dict[str, Any]:
    with urllib.request.urlopen(srv.url + "/healthz", timeout=5) as r:
        return dict(json.loads(r.read()))


def cluster(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "classroom.cli", "cluster", "--redis", url, *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def cluster_json(url: str) -> dict[str, Any]:
    done = cluster(url, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


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
    seen = cluster_json(redis_server.url)
    assert [n["node"]["id"] for n in seen["nodes"]] == ["node-a", "node-b"]
    assert seen["job_lock"]["holder"].startswith("node-a/") and seen["job_lock"]["epoch"] == epoch_a
    # the technician's nodes page on either node lists both, this one first
    shown = await api_b.ok("GET", "/api/v1/monitor/nodes")
    assert [(n["node"]["id"], n["this"]) for n in shown["nodes"]] == [("node-b", True), ("node-a", False)]
    assert shown["registry"] == "redis" and shown["job_lock"]["held"] is False
    assert all(n["node"]["capacity"] > 0 and "subscriptions" in n["load"] for n in shown["nodes"])

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

    # the dead node drops out of the registry after 3 missed heartbeats; the operator's view says who holds the lock
    deadline = time.monotonic() + 10
    while [n["node"]["id"] for n in cluster_json(redis_server.url)["nodes"]] != ["node-b"]:
        assert time.monotonic() < deadline, "the killed node stayed in the registry"
        await asyncio.sleep(0.2)
    assert [n["node"]["id"] for n in (await api_b.ok("GET", "/api/v1/monitor/nodes"))["nodes"]] == ["node-b"]
    table = cluster(redis_server.url, "--lang", "en")
    assert table.returncode == 0 and "node-b" in table.stdout and f"(epoch {lock['epoch']})" in table.stdout


async def test_a_node_started_before_redis_waits_and_takes_over_when_redis_comes(
        server_factory: Any, tmp_path: Path) -> None:
    redis_server = RedisProcess(free_port(), tmp_path / "late-redis")
    tz = lesson_now_timezone()
    env = {**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_CLUSTER__LEASE_S": str(LEASE_S)}
    srv = server_factory("--media", "local", "--redis", redis_server.url, env=env)
    try:
        assert health(srv)["cluster"]["job_lock"]["held"] is False
        assert "cannot be reached" in srv.log
        api = AdminApi(srv.url, srv.token)
        world = await build_world(api, tz, receivers=1)
        assert await status_of(api, world.lesson_ids[0]) == "scheduled"  # no lock, no jobs
        assert cluster(redis_server.url).returncode == 1
        # the technician's nodes page says the registry is away, rather than showing no node
        status, body = await api.call("GET", "/api/v1/monitor/nodes")
        assert (status, body["code"]) == (503, "registry_unavailable"), body
        redis_server.start()
        deadline = time.monotonic() + LEASE_S + 5
        while await status_of(api, world.lesson_ids[0]) != "open":
            assert time.monotonic() < deadline, "the node did not take the lock once Redis was up"
            await asyncio.sleep(0.2)
        assert health(srv)["cluster"]["job_lock"]["held"] is True
    finally:
        srv.stop()
        redis_server.stop()


async def test_one_machine_without_redis_runs_its_jobs_as_before(server_factory: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "local", env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    assert health(srv)["cluster"]["registry"] == "in-process"
    assert health(srv)["cluster"]["job_lock"] == {"held": True}
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=1)
    assert await status_of(api, world.lesson_ids[0]) == "open"
    assert "job lock" not in srv.log
    done = subprocess.run([sys.executable, "-m", "classroom.cli", "cluster"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "HOME": str(srv.data_dir)})
    assert done.returncode == 2 and "one machine" in done.stderr
