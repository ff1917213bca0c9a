"""`classroom bench cascade` at its smallest: a real control node, two edges and redis-server as processes.

Figures are for `classroom bench cascade` runs, never test thresholds: this checks that the benchmark
measures what it says (every track crosses to an edge once, the killed edge's classrooms come back).
"""

from __future__ import annotations

import json

import pytest

from edge import bench_cascade


def test_cascade_bench_counts_streams_per_edge_and_times_a_failover(capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_cascade.main(["--lessons", "2", "--classrooms", "2", "--window", "3", "--timeout", "40",
                               "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out)
    assert result["edges"] == 2 and result["lessons"] == 2 and result["classrooms"] == 4
    # every classroom went to an edge (the control node was registered with no room of its own)
    assert sum(result["classrooms_per_edge"].values()) == 4, result
    # counted from the control node's link stats: each lead track crosses to each edge exactly once
    assert result["links_measured"] >= 2
    assert result["origin_streams_per_edge_per_track"] == pytest.approx(1.0, abs=0.05), result
    assert result["loss"] is not None and 0 <= result["loss"] < 0.2
    assert set(result["cpu_cores"]) == {"control", "edge-1", "edge-2", "redis", "bench"}
    assert all(v >= 0 for v in result["cpu_cores"].values())
    # the killed edge's classrooms all decode again, and the percentiles are of those times
    assert result["failover_classrooms"] >= 1
    assert result["failover_back"] == result["failover_classrooms"], result
    assert 0 < result["failover_p50_s"] <= result["failover_p95_s"]
    # the relay's added latency: the same camera packets, on an edge and on the control node, paired
    assert result["relay_packets_paired"] > 50
    assert result["relay_added_latency_p50_ms"] <= result["relay_added_latency_p99_ms"]
    assert result["same_path_spread_p50_ms"] <= result["same_path_spread_p99_ms"]


def test_cascade_bench_refuses_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_cascade.main(["--lessons", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_counting_peers_join_over_signaling_count_every_track_once_and_come_back(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--peers counting`: leads publishing the clip and classrooms that count, in processes of their own."""
    code = bench_cascade.main(["--peers", "counting", "--lessons", "2", "--classrooms", "3", "--window", "3",
                               "--timeout", "40", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out)
    assert result["peers"] == "counting" and result["classrooms"] == 6
    assert sum(result["classrooms_per_edge"].values()) == 6, result
    assert result["origin_streams_per_edge_per_track"] == pytest.approx(1.0, abs=0.05), result
    assert result["loss"] is not None and 0 <= result["loss"] < 0.2
    assert {"leads", "classrooms", "control", "edge-1", "edge-2"} <= set(result["cpu_cores"])
    assert result["failover_classrooms"] >= 1 and result["failover_back"] == result["failover_classrooms"], result
    assert result["failover_until"] == "first keyframe packet"
    assert 0 < result["failover_p50_s"] <= result["failover_p95_s"]
    assert result["relay_packets_paired"] > 50
    assert result["same_path_spread_p50_ms"] <= result["same_path_spread_p99_ms"]
    # the loop lags it saw, per phase: each node's heartbeated lag and the classrooms' processes'
    assert result["classrooms_dropped"] == 0, result
    for phase in ("joins", "window", "failover"):
        assert {"control", "edge-1", "edge-2", "classrooms"} <= set(result["loop_lag_max_ms"][phase]), result
        assert all(v >= 0 for v in result["loop_lag_max_ms"][phase].values())
