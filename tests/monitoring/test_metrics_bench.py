"""`classroom bench metrics` and the monitoring load of `bench fanout --monitoring on`, in their short form:
they run, scrape a real aiohttp server on loopback, and print the figures docs/benchmarks.md describes."""

from __future__ import annotations

import json
import subprocess
import sys

from monitoring.bench import MonitoringLoad, bench_metrics, synthetic_snapshot
from tests.conftest import ROOT


async def test_bench_metrics_scrapes_many_live_lessons_over_http() -> None:
    result = await bench_metrics(lessons=6, scrapes=3)
    assert result["lessons"] == 6 and result["subscribers"] == 2 * (4 + 6 + 10 + 20 + 2)
    assert result["scrape_bytes"] > 5000 and result["scrape_lines"] > 100
    for key in ("scrape_http", "baseline_trivial_http", "render_in_process", "observe_all_rooms_per_second"):
        assert set(result[key]) == {"p50_ms", "p95_ms", "max_ms"}


def test_the_monitoring_load_counts_what_each_tick_feeds_the_metrics() -> None:
    load = MonitoringLoad("lesson-1", "famous_school")
    for tick in range(1, 4):
        load.monitoring_tick(synthetic_snapshot(1, "famous_school", tick))
    assert load.scrape() > 0
    text = load.metrics.render().decode()
    assert 'classroom_subscriptions{kind="famous_school",node="bench",role="receiver"} 20.0' in text


def test_the_command_prints_one_json_object() -> None:
    done = subprocess.run([sys.executable, "-m", "classroom.cli", "bench", "metrics", "--lessons", "2",
                           "--scrapes", "2", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lessons"] == 2
