"""Where a receiving classroom is, for placement: its school's county and that county's region, by name
(as nodes register theirs), read from the control node's database."""

from __future__ import annotations

from edge.placement import ClassroomLocation
from scheduler.db import Database

PREFIX = "classroom-"  # signaling's participant id of a receiving classroom: classroom-<id>


def classroom_id_of(participant_id: str) -> int | None:
    if not participant_id.startswith(PREFIX):
        return None
    rest = participant_id[len(PREFIX):]
    return int(rest) if rest.isdigit() else None


def classroom_location(db: Database, classroom_id: int) -> ClassroomLocation | None:
    with db.read() as c:
        row = c.execute(
            "SELECT county.name AS county, region.name AS region FROM classroom"
            " JOIN school ON school.id = classroom.school_id JOIN county ON county.id = school.county_id"
            " JOIN city ON city.id = county.city_id JOIN region ON region.id = city.region_id"
            " WHERE classroom.id = ?", (classroom_id,)).fetchone()
    return ClassroomLocation(str(row["county"]), str(row["region"])) if row is not None else None
