"""`classroom bench schedule` at a tiny scale: it runs end to end and reports what it was asked to build.

Behaviour only: the timing figures are for people (docs/benchmarks-schedule.md), not thresholds here.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from scheduler.bench import main

KEYS = {
    "schools",
    "teachers",
    "lessons",
    "county_import_s",
    "region_report_s",
    "conflict_check_p50_ms",
    "conflict_check_p99_ms",
    "peak_rss_mib",
    "generate_s",
}


def run_bench(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, "--json prints exactly one line: the JSON object"
    figures = json.loads(out[0])
    assert isinstance(figures, dict)
    return figures


def test_tiny_region_reports_the_counts_it_was_asked_for(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    figures = run_bench(capsys, "--schools", "30", "--lessons", "3000", "--samples", "50", "--keep", str(tmp_path))
    assert figures.keys() >= KEYS
    assert figures["schools"] == 30
    assert figures["lessons"] == 3000
    assert figures["county_lessons"] == 100
    assert figures["lessons_after_import"] == 3100
    assert figures["conflict_check_samples"] == 50
    for key in ("county_import_s", "region_report_s", "conflict_check_p99_ms", "peak_rss_mib", "generate_s"):
        assert isinstance(figures[key], float | int) and figures[key] >= 0, key
    assert figures["conflict_check_p50_ms"] <= figures["conflict_check_p99_ms"]  # type: ignore[operator]

    # the kept database holds what the figures claim: all three kinds, receivers, settled lessons with evidence
    conn = sqlite3.connect(tmp_path / "bench-schedule.sqlite3")
    try:
        assert conn.execute("SELECT count(*) FROM school").fetchone()[0] == 30
        assert conn.execute("SELECT count(*) FROM teacher").fetchone()[0] == figures["teachers"]
        assert conn.execute("SELECT count(*) FROM school WHERE is_teaching_point").fetchone()[0] > 0
        kinds = {k for (k,) in conn.execute("SELECT DISTINCT kind FROM lesson")}
        assert kinds == {"specialised", "master", "famous_school"}
        levels = {v for (v,) in conn.execute("SELECT DISTINCT level FROM teacher")}
        assert levels == {"region", "city", "county", "none"}
        statuses = dict(conn.execute("SELECT status, count(*) FROM lesson GROUP BY status").fetchall())
        assert statuses["delivered"] > 0 and statuses["missed"] > 0 and statuses["scheduled"] > 0
        assert statuses["delivered"] == conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM attendance").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM holiday").fetchone()[0] > 0
        orphans = conn.execute(
            "SELECT count(*) FROM lesson l WHERE kind != 'master' "
            "AND NOT EXISTS (SELECT 1 FROM lesson_receiver r WHERE r.lesson_id = l.id)"
        ).fetchone()[0]
        assert orphans == 0
    finally:
        conn.close()


def test_county_size_can_be_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    figures = run_bench(capsys, "--schools", "12", "--lessons", "500", "--county-lessons", "250", "--samples", "5")
    assert figures["schools"] == 12
    assert figures["lessons"] == 500
    assert figures["county_lessons"] == 250
    assert figures["lessons_after_import"] == 750


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schools", "1", "--json"]) == 2
    assert "--schools" in capsys.readouterr().err
