"""The bandwidth report: what each school, each county and each time slot used, against capacity.

A pure function over the stored lesson samples (`monitoring.store.SampleRow`, one per participant
every series step). At each step a school's uplink is what the SFU received from its classrooms and
its downlink what it sent them; a school's figure for a time slot is the peak (and the mean) of those
sums over the steps of the slot's lessons, set against the school's configured bandwidth. A county is
the sum of its schools, against the sum of their bandwidth. A time slot is a lesson period as the
timetable has it (start–end, local time), so "the 08:00–08:45 period" reads the way a district plans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitoring.store import SampleRow


@dataclass(frozen=True, slots=True)
class SchoolInfo:
    id: int
    name: str
    county_id: int
    county_name: str
    bandwidth_mbps: float


@dataclass
class _Use:
    up: dict[float, float]  # step -> kbit/s
    down: dict[float, float]

    def __init__(self) -> None:
        self.up, self.down = defaultdict(float), defaultdict(float)

    def figures(self, capacity_mbps: float | None) -> dict[str, Any]:
        ups, downs = list(self.up.values()) or [0.0], list(self.down.values()) or [0.0]
        peak_up, peak_down = max(ups) / 1000, max(downs) / 1000
        out: dict[str, Any] = {
            "peak_up_mbps": round(peak_up, 2), "peak_down_mbps": round(peak_down, 2),
            "mean_up_mbps": round(sum(ups) / len(ups) / 1000, 2),
            "mean_down_mbps": round(sum(downs) / len(downs) / 1000, 2),
            "steps": len(set(self.up) | set(self.down)),
        }
        if capacity_mbps:
            out["capacity_mbps"] = round(capacity_mbps, 1)
            out["peak_share"] = round(max(peak_up, peak_down) / capacity_mbps, 3)
            out["over_capacity"] = max(peak_up, peak_down) > capacity_mbps
        return out


def bandwidth_report(
    rows: Iterable[SampleRow],
    school_of_classroom: Mapping[int, int],
    schools: Mapping[int, SchoolInfo],
    slot_of_lesson: Mapping[int, str],
) -> dict[str, Any]:
    per_school: dict[tuple[str, int], _Use] = defaultdict(_Use)
    per_county: dict[tuple[str, int], _Use] = defaultdict(_Use)
    per_slot: dict[str, _Use] = defaultdict(_Use)
    for r in rows:
        slot = slot_of_lesson.get(r.lesson_id)
        school_id = school_of_classroom.get(r.classroom_id) if r.classroom_id is not None else None
        if slot is None:
            continue
        up, down = r.kbps_in or 0.0, r.kbps_out or 0.0
        per_slot[slot].up[r.at] += up
        per_slot[slot].down[r.at] += down
        if school_id is None or school_id not in schools:
            continue
        per_school[(slot, school_id)].up[r.at] += up
        per_school[(slot, school_id)].down[r.at] += down
        county = schools[school_id].county_id
        per_county[(slot, county)].up[r.at] += up
        per_county[(slot, county)].down[r.at] += down
    county_capacity: dict[int, float] = defaultdict(float)
    county_names: dict[int, str] = {}
    for s in schools.values():
        county_capacity[s.county_id] += s.bandwidth_mbps
        county_names[s.county_id] = s.county_name
    return {
        "schools": [
            {"slot": slot, "school_id": sid, "school": schools[sid].name, "county": schools[sid].county_name,
             **use.figures(schools[sid].bandwidth_mbps)}
            for (slot, sid), use in sorted(per_school.items(), key=lambda kv: (kv[0][0], schools[kv[0][1]].name))
        ],
        "counties": [
            {"slot": slot, "county_id": cid, "county": county_names.get(cid, str(cid)),
             **use.figures(county_capacity.get(cid))}
            for (slot, cid), use in sorted(per_county.items())
        ],
        "slots": [{"slot": slot, **use.figures(None)} for slot, use in sorted(per_slot.items())],
    }
