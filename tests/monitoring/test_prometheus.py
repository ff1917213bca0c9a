"""deploy/ with Debian's Prometheus: the real `prometheus` scrapes a running `classroom serve` with a live
lesson (an aiortc lead on air, an aiortc classroom watching) through the shipped scrape configuration,
and the figures read back through Prometheus's HTTP API; `promtool` checks the alert rules and runs
their unit tests; the rules and the Grafana dashboard use only metrics the server exports."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from monitoring.config import MonitoringConfig
from monitoring.metrics import Metrics, RoomFacts
from signaling.client import Peer, join_with_media
from signaling.trial import join_token
from tests.conftest import ROOT, free_port
from tests.monitoring.test_metrics import snapshot
from tests.signaling.test_websocket_server import _setup

DEPLOY = ROOT / "deploy"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: install Debian's prometheus package (scripts/test-all does)"
    return path


def test_promtool_checks_the_rules_and_config_and_runs_the_rules_unit_tests(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"],
                 ["check", "config", "prometheus.yml"]):
        done = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "SUCCESS" in done.stdout + done.stderr
    # the rule tests really test: a wrong expectation fails
    for name in ("alerts.yml", "alerts_test.yml"):
        shutil.copy(DEPLOY / "prometheus" / name, tmp_path / name)
    broken = (tmp_path / "alerts_test.yml").read_text().replace("is 10%", "is 11%")
    (tmp_path / "alerts_test.yml").write_text(broken)
    done = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0


def _exported_names() -> set[str]:
    m = Metrics(MonitoringConfig(node_name="n"), data_dir=ROOT, alerts_firing=lambda: {("r", "warning"): 1})
    m.observe("lesson-1", RoomFacts("master", 0.0, 1.0), snapshot(10))
    m.set_processes([{"index": 0, "responding": True, "cpu_seconds": 1.0, "loop_lag_s": 0.0, "rooms": 1}])
    m.keyframe_wait.labels("n", "master").observe(0.1)
    m.join_to_first_frame.labels("n", "master").observe(1.0)
    m.refused[("master", "outside_window", "join")] = 1
    return {line.split("{")[0].split(" ")[0] for line in m.render().decode().splitlines() if line[:1] != "#"}


def test_the_rules_and_the_dashboard_use_only_metrics_the_server_exports() -> None:
    exported = _exported_names()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "live-classroom.json").read_text())
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in panels)
    exprs += [t["expr"] for p in panels for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bclassroom_[a-z_]+", e)}
    assert used and used <= exported, used - exported
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


async def _query(session: aiohttp.ClientSession, base: str, promql: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/api/v1/query", params={"query": promql}) as r:
        body = await r.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


async def _until(session: aiohttp.ClientSession, base: str, promql: str, want: Any, timeout: float,
                 proc: subprocess.Popen[bytes], log: Path) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            result = await _query(session, base, promql)
        except aiohttp.ClientError:
            result = []
        if result and want(result):
            return result
        await asyncio.sleep(0.5)
    raise AssertionError(f"{promql}: {result}\n{log.read_text(errors='replace')[-3000:]}")


async def test_prometheus_scrapes_a_live_lesson_through_the_shipped_config(server_factory: Any,
                                                                           tmp_path: Path) -> None:
    prometheus = _tool("prometheus")
    srv, api, world, ws_url = await _setup(server_factory, CLASSROOM_MONITORING__NODE_NAME="test-node")
    lesson = world.lesson_ids[0]
    # the shipped configuration, pointed at this server and scraping every second
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{srv.port}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    port = free_port()
    log = tmp_path / "prometheus.log"
    lead_peer, room_peer = Peer(), Peer()
    lead = room = None
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        lead = await join_with_media(ws_url, await join_token(api, lesson, "lead"), lead_peer, lead_peer.as_lead(),
                                     lesson)
        room = await join_with_media(ws_url, await join_token(api, lesson, "receiver",
                                                              world.receiving_classroom_ids[0]),
                                     room_peer, room_peer.as_classroom(), lesson)
        await asyncio.wait_for(room_peer.first_frame.wait(), 30)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            up = await _until(session, base, 'up{job="live-classroom"}', lambda r: r[0]["value"][1] == "1", 90,
                              proc, log)
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{srv.port}"
            on_air = await _until(session, base, 'classroom_lessons_lead_on_air{kind="master"}',
                                  lambda r: r[0]["value"][1] == "1", 60, proc, log)
            assert on_air[0]["metric"]["node"] == "test-node"
            await _until(session, base, 'classroom_subscriptions{kind="master",role="receiver"}',
                         lambda r: r[0]["value"][1] == "1", 60, proc, log)
            await _until(session, base, 'rate(classroom_sent_packets_total{kind="master"}[5s])',
                         lambda r: float(r[0]["value"][1]) > 0, 60, proc, log)
            await _until(session, base, 'sum(classroom_join_to_first_frame_seconds_count{kind="master"})',
                         lambda r: float(r[0]["value"][1]) >= 1, 60, proc, log)
            workers = await _until(session, base, 'classroom_process_cpu_seconds_total{process=~"worker-.*"}',
                                   lambda r: len(r) >= 1, 30, proc, log)
            assert all(float(w["value"][1]) > 0 for w in workers)
            # the shipped alert rules are loaded and evaluated against the live figures
            async with session.get(f"{base}/api/v1/rules") as r:
                groups = (await r.json())["data"]["groups"]
            assert {g["name"] for g in groups} == {"live-classroom-lessons", "live-classroom-recordings",
                                                   "live-classroom-node"}
            assert all(rule["health"] != "err" for g in groups for rule in g["rules"])
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for client in (lead, room):
            if client is not None:
                await client.close()
        await lead_peer.close()
        await room_peer.close()
