"""Attendance timelines in the SQLite database (tables of `scheduler/schema.py`'s attendance migration).

A write carries what changed in one lesson's timeline, and every upsert only moves forward (seconds and
ends grow, a segment's close is kept once set, quality keeps the version with more samples, events
are inserted once), so writes of the same lesson in any order leave the newest state: a periodic
write finishing after the settlement's final one cannot undo it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from monitoring.attendance import Closed, Event, Mark, Opened, Segment


def save(conn: sqlite3.Connection, lesson_id: int, segments: Iterable[Segment], events: Iterable[Event],
         last_at: float | None, closed: bool) -> None:
    """Write (part of) a lesson's timeline, inside the caller's transaction: the segments and events given
    (those that changed since the last write), its latest position and whether it is closed."""
    now = int(time.time())
    conn.execute(
        "INSERT INTO attendance_timeline(lesson_id, last_at, closed, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(lesson_id) DO UPDATE SET last_at = max(coalesce(last_at, excluded.last_at), excluded.last_at), "
        "closed = max(closed, excluded.closed), updated_at = excluded.updated_at",
        (lesson_id, last_at, int(closed), now),
    )
    conn.executemany(
        "INSERT INTO attendance_segment(lesson_id, participant, seq, started_at, ended_at, seconds, opened_by, "
        "closed_by, quality_min, quality_sum, quality_n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(lesson_id, participant, seq) DO UPDATE SET "
        "ended_at = max(ended_at, excluded.ended_at), seconds = max(seconds, excluded.seconds), "
        "closed_by = coalesce(closed_by, excluded.closed_by), "
        "quality_min = CASE WHEN excluded.quality_n > quality_n THEN excluded.quality_min ELSE quality_min END, "
        "quality_sum = CASE WHEN excluded.quality_n > quality_n THEN excluded.quality_sum ELSE quality_sum END, "
        "quality_n = max(quality_n, excluded.quality_n)",
        [
            (lesson_id, s.participant, s.seq, s.start, s.end, s.seconds, s.opened_by.value,
             s.closed_by.value if s.closed_by else None, s.quality_min, s.quality_sum, s.quality_n)
            for s in segments
        ],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO attendance_event(lesson_id, seq, at, participant, what) VALUES (?, ?, ?, ?, ?)",
        [(lesson_id, e.seq, e.at, e.participant, e.what.value) for e in events],
    )


def load(
    conn: sqlite3.Connection, lesson_id: int
) -> tuple[list[Segment], list[Event], float | None, bool] | None:
    """(segments, events, last position, closed) of a lesson's stored timeline, or None if it has none."""
    row = conn.execute("SELECT last_at, closed FROM attendance_timeline WHERE lesson_id = ?", (lesson_id,)).fetchone()
    if row is None:
        return None
    segments = [
        Segment(r[0], int(r[1]), float(r[2]), float(r[3]), float(r[4]), Opened(r[5]),
                Closed(r[6]) if r[6] else None, r[7], float(r[8]), int(r[9]))
        for r in conn.execute(
            "SELECT participant, seq, started_at, ended_at, seconds, opened_by, closed_by, quality_min, quality_sum, "
            "quality_n FROM attendance_segment WHERE lesson_id = ? ORDER BY participant, seq",
            (lesson_id,),
        )
    ]
    events = [
        Event(int(r[0]), float(r[1]), r[2], Mark(r[3]))
        for r in conn.execute(
            "SELECT seq, at, participant, what FROM attendance_event WHERE lesson_id = ? ORDER BY seq", (lesson_id,)
        )
    ]
    return segments, events, (float(row[0]) if row[0] is not None else None), bool(row[1])


def recorded_lessons(conn: sqlite3.Connection, lesson_ids: list[int]) -> set[int]:
    """Which of `lesson_ids` have a stored timeline."""
    if not lesson_ids:
        return set()
    marks = ",".join("?" * len(lesson_ids))
    return {int(r[0]) for r in conn.execute(
        f"SELECT lesson_id FROM attendance_timeline WHERE lesson_id IN ({marks})", lesson_ids)}
