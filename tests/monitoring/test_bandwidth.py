"""The bandwidth report: peaks per school, county and time slot against capacity (pure)."""

from __future__ import annotations

from monitoring.bandwidth import SchoolInfo, bandwidth_report
from monitoring.store import SampleRow


def _row(lesson: int, at: float, pid: str, classroom: int, up: float, down: float) -> SampleRow:
    return SampleRow(lesson, at, pid, "receiver", classroom, up, down, 0.0, 20.0, 25.0, 4.4, "ok")


def test_a_school_is_the_sum_of_its_classrooms_at_each_step_and_its_peak_is_set_against_its_bandwidth() -> None:
    schools = {1: SchoolInfo(1, "一中", 10, "沙坡头区", 100.0), 2: SchoolInfo(2, "教学点", 10, "沙坡头区", 4.0)}
    school_of = {11: 1, 21: 2, 22: 2}
    rows = [
        _row(7, 0.0, "lead-1", 11, 2500, 500),
        _row(7, 0.0, "classroom-21", 21, 100, 2500), _row(7, 0.0, "classroom-22", 22, 100, 2400),
        _row(7, 5.0, "classroom-21", 21, 100, 1000), _row(7, 5.0, "classroom-22", 22, 100, 1000),
        _row(8, 0.0, "classroom-21", 21, 0, 700),  # another lesson in another time slot
    ]
    report = bandwidth_report(rows, school_of, schools, {7: "08:00–08:45", 8: "09:00–09:45"})
    point = next(s for s in report["schools"] if s["school_id"] == 2 and s["slot"] == "08:00–08:45")
    assert point["peak_down_mbps"] == 4.9 and point["mean_down_mbps"] == 3.45
    assert point["capacity_mbps"] == 4.0 and point["over_capacity"] is True and point["peak_share"] == 1.225
    lead = next(s for s in report["schools"] if s["school_id"] == 1)
    assert lead["peak_up_mbps"] == 2.5 and lead["over_capacity"] is False
    county = next(c for c in report["counties"] if c["slot"] == "08:00–08:45")
    assert county["capacity_mbps"] == 104.0 and county["peak_down_mbps"] == 5.4
    assert [s["slot"] for s in report["slots"]] == ["08:00–08:45", "09:00–09:45"]
    # samples of lessons the viewer does not look after (no slot given) are left out
    assert bandwidth_report(rows, school_of, schools, {8: "09:00–09:45"})["slots"][0]["peak_down_mbps"] == 0.7
