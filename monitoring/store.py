"""Monitoring's tables: the alert log and each lesson's sampled figures (for history and bandwidth).

Thin I/O over the scheduler's `Database` (one SQLite file for the whole product). Writes are small
and batched; the monitor calls them from a worker thread so that a long import holding the write lock
never stalls the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitoring.alerts import Alert, Severity
from scheduler.db import Database


@dataclass(frozen=True, slots=True)
class SampleRow:
    lesson_id: int
    at: float  # wall clock, the start of the sample's step
    participant_id: str
    role: str
    classroom_id: int | None
    kbps_in: float | None
    kbps_out: float | None
    loss: float | None
    rtt_ms: float | None
    fps: float | None
    score: float | None
    link: str


def _scope(ids: frozenset[int]) -> str:
    return "," + ",".join(str(i) for i in sorted(ids)) + "," if ids else ""


def _ids(text: str) -> frozenset[int]:
    return frozenset(int(x) for x in text.strip(",").split(",") if x)


def _alert(row: Any) -> Alert:
    return Alert(
        row["id"], row["rule"], row["key"], Severity(row["severity"]), row["lesson_id"], row["subject"],
        row["subject_name"], row["summary_zh"], row["summary_en"], row["value"], row["fired_at"], row["cleared_at"],
        row["acked_by"], row["acked_at"], _ids(row["county_ids"]), _ids(row["region_ids"]),
    )


class MonitoringStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- alerts ------------------------------------------------------------------------------------
    def save_alerts(self, alerts: Sequence[Alert]) -> None:
        """Insert new alerts (id None; their ids are set) and update the others, in one transaction."""
        with self.db.write() as conn:
            for a in alerts:
                if a.id is None:
                    cur = conn.execute(
                        "INSERT INTO alert(rule, key, severity, lesson_id, subject, subject_name, summary_zh, "
                        "summary_en, value, fired_at, cleared_at, acked_by, acked_at, county_ids, region_ids) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (a.rule, a.key, str(a.severity), a.lesson_id, a.subject, a.subject_name, a.summary_zh,
                         a.summary_en, a.value, a.fired_at, a.cleared_at, a.acked_by, a.acked_at,
                         _scope(a.county_ids), _scope(a.region_ids)),
                    )
                    a.id = cur.lastrowid
                else:
                    conn.execute("UPDATE alert SET cleared_at = ?, acked_by = ?, acked_at = ? WHERE id = ?",
                                 (a.cleared_at, a.acked_by, a.acked_at, a.id))

    def firing(self) -> list[Alert]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT * FROM alert WHERE cleared_at IS NULL ORDER BY id").fetchall()
        return [_alert(r) for r in rows]

    def alert(self, alert_id: int) -> Alert | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM alert WHERE id = ?", (alert_id,)).fetchone()
        return _alert(row) if row else None

    def alerts(self, *, since: float | None = None, until: float | None = None, rule: str | None = None,
               lesson_id: int | None = None, firing: bool | None = None, limit: int = 200) -> list[Alert]:
        where, args = [], []
        if since is not None:
            where.append("fired_at >= ?")
            args.append(since)
        if until is not None:
            where.append("fired_at < ?")
            args.append(until)
        if rule:
            where.append("rule = ?")
            args.append(rule)
        if lesson_id is not None:
            where.append("lesson_id = ?")
            args.append(lesson_id)
        if firing is not None:
            where.append("cleared_at IS NULL" if firing else "cleared_at IS NOT NULL")
        sql = "SELECT * FROM alert" + (" WHERE " + " AND ".join(where) if where else "")
        with self.db.read() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_alert(r) for r in rows]

    # ---- lesson samples ----------------------------------------------------------------------------
    def save_samples(self, rows: Iterable[SampleRow]) -> None:
        with self.db.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO lesson_sample(lesson_id, at, participant_id, role, classroom_id, kbps_in, "
                "kbps_out, loss, rtt_ms, fps, score, link) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(r.lesson_id, r.at, r.participant_id, r.role, r.classroom_id, r.kbps_in, r.kbps_out, r.loss,
                  r.rtt_ms, r.fps, r.score, r.link) for r in rows],
            )

    def samples(self, lesson_id: int) -> list[SampleRow]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT * FROM lesson_sample WHERE lesson_id = ? ORDER BY at, participant_id",
                                (lesson_id,)).fetchall()
        return [SampleRow(r["lesson_id"], r["at"], r["participant_id"], r["role"], r["classroom_id"], r["kbps_in"],
                          r["kbps_out"], r["loss"], r["rtt_ms"], r["fps"], r["score"], r["link"]) for r in rows]

    def samples_between(self, since: float, until: float) -> list[SampleRow]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM lesson_sample WHERE at >= ? AND at < ? ORDER BY at", (since, until)).fetchall()
        return [SampleRow(r["lesson_id"], r["at"], r["participant_id"], r["role"], r["classroom_id"], r["kbps_in"],
                          r["kbps_out"], r["loss"], r["rtt_ms"], r["fps"], r["score"], r["link"]) for r in rows]
