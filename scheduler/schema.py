"""Versioned schema migrations of the SQLite database.

Each migration is applied once, in order, inside one transaction; `PRAGMA user_version` records how
far a database has come. A database newer than this program is refused rather than guessed at.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the school domain, the timetable, evidence and the append-only ledger
    """
    CREATE TABLE region (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE city (
        id INTEGER PRIMARY KEY, region_id INTEGER NOT NULL REFERENCES region(id),
        name TEXT NOT NULL, UNIQUE (region_id, name));
    CREATE TABLE county (
        id INTEGER PRIMARY KEY, city_id INTEGER NOT NULL REFERENCES city(id), name TEXT NOT NULL,
        workload_factor REAL NOT NULL DEFAULT 1.5 CHECK (workload_factor >= 1.5),
        UNIQUE (city_id, name));
    CREATE TABLE school (
        id INTEGER PRIMARY KEY, county_id INTEGER NOT NULL REFERENCES county(id),
        name TEXT NOT NULL UNIQUE,
        is_lead INTEGER NOT NULL DEFAULT 0, is_receiving INTEGER NOT NULL DEFAULT 0,
        is_teaching_point INTEGER NOT NULL DEFAULT 0, bandwidth_mbps REAL NOT NULL DEFAULT 100);
    CREATE INDEX school_county ON school(county_id);
    CREATE TABLE classroom (
        id INTEGER PRIMARY KEY, school_id INTEGER NOT NULL REFERENCES school(id), name TEXT NOT NULL,
        UNIQUE (school_id, name));
    CREATE TABLE teacher (
        id INTEGER PRIMARY KEY, school_id INTEGER NOT NULL REFERENCES school(id), name TEXT NOT NULL,
        level TEXT NOT NULL DEFAULT 'none' CHECK (level IN ('region', 'city', 'county', 'none')),
        subjects TEXT NOT NULL DEFAULT '', UNIQUE (school_id, name));
    CREATE INDEX teacher_name ON teacher(name);
    CREATE TABLE semester (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
        start_date TEXT NOT NULL, end_date TEXT NOT NULL CHECK (end_date >= start_date));
    CREATE TABLE holiday (
        semester_id INTEGER NOT NULL REFERENCES semester(id), day TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (semester_id, day)) WITHOUT ROWID;
    CREATE TABLE makeup_day (
        semester_id INTEGER NOT NULL REFERENCES semester(id), day TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (semester_id, day)) WITHOUT ROWID;
    CREATE TABLE community (
        id INTEGER PRIMARY KEY, county_id INTEGER NOT NULL REFERENCES county(id), name TEXT NOT NULL UNIQUE);
    CREATE TABLE community_member (
        community_id INTEGER NOT NULL REFERENCES community(id), teacher_id INTEGER NOT NULL REFERENCES teacher(id),
        PRIMARY KEY (community_id, teacher_id)) WITHOUT ROWID;
    CREATE TABLE lesson (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('specialised', 'master', 'famous_school')),
        subject TEXT NOT NULL, grade TEXT NOT NULL DEFAULT '',
        lead_teacher_id INTEGER NOT NULL REFERENCES teacher(id),
        lead_classroom_id INTEGER NOT NULL REFERENCES classroom(id),
        community_id INTEGER REFERENCES community(id),
        semester_id INTEGER REFERENCES semester(id),
        series_id TEXT,
        start_utc INTEGER NOT NULL, end_utc INTEGER NOT NULL CHECK (end_utc > start_utc),
        status TEXT NOT NULL DEFAULT 'scheduled'
            CHECK (status IN ('scheduled', 'open', 'live', 'delivered', 'missed', 'cancelled')),
        lesson_key TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE INDEX lesson_teacher_start ON lesson(lead_teacher_id, start_utc);
    CREATE INDEX lesson_classroom_start ON lesson(lead_classroom_id, start_utc);
    CREATE INDEX lesson_start ON lesson(start_utc);
    -- covers the capacity sweep's per-slot sums, so a check reads index pages only
    CREATE INDEX lesson_span ON lesson(start_utc, end_utc, community_id, status);
    CREATE INDEX lesson_semester ON lesson(semester_id, status);
    CREATE TABLE lesson_receiver (
        lesson_id INTEGER NOT NULL REFERENCES lesson(id), classroom_id INTEGER NOT NULL REFERENCES classroom(id),
        start_utc INTEGER NOT NULL,
        PRIMARY KEY (lesson_id, classroom_id)) WITHOUT ROWID;
    CREATE INDEX receiver_classroom_start ON lesson_receiver(classroom_id, start_utc);
    CREATE TABLE evidence (
        lesson_id INTEGER PRIMARY KEY REFERENCES lesson(id),
        lead_minutes REAL NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL, source TEXT NOT NULL);
    CREATE TABLE attendance (
        lesson_id INTEGER NOT NULL REFERENCES lesson(id), classroom_id INTEGER NOT NULL REFERENCES classroom(id),
        minutes REAL NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (lesson_id, classroom_id)) WITHOUT ROWID;
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY, lesson_id INTEGER NOT NULL REFERENCES lesson(id),
        entry_type TEXT NOT NULL CHECK (entry_type IN ('teacher_workload', 'school_credit')),
        teacher_id INTEGER REFERENCES teacher(id), school_id INTEGER REFERENCES school(id),
        base_hours REAL NOT NULL, factor REAL NOT NULL, weighted_hours REAL NOT NULL,
        created_at INTEGER NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL,
        reverses_id INTEGER UNIQUE REFERENCES ledger(id));
    CREATE INDEX ledger_lesson ON ledger(lesson_id);
    CREATE INDEX ledger_teacher ON ledger(teacher_id);
    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only: add a reversing entry instead'); END;
    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only: add a reversing entry instead'); END;
    CREATE TABLE correction (
        id INTEGER PRIMARY KEY, lesson_id INTEGER NOT NULL REFERENCES lesson(id),
        from_status TEXT NOT NULL, to_status TEXT NOT NULL,
        actor TEXT NOT NULL, reason TEXT NOT NULL, created_at INTEGER NOT NULL);
    CREATE TRIGGER correction_no_update BEFORE UPDATE ON correction
        BEGIN SELECT RAISE(ABORT, 'corrections are append-only'); END;
    CREATE TABLE import_run (
        id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, actor TEXT NOT NULL, filename TEXT NOT NULL,
        sha256 TEXT NOT NULL, added INTEGER NOT NULL, unchanged INTEGER NOT NULL, warnings INTEGER NOT NULL);
    CREATE TABLE offline_activity (
        id INTEGER PRIMARY KEY, lead_school_id INTEGER NOT NULL REFERENCES school(id),
        receiving_school_id INTEGER REFERENCES school(id), day TEXT NOT NULL, title TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, actor TEXT NOT NULL);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
        action TEXT NOT NULL, lesson_id INTEGER, address TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '');
    CREATE INDEX audit_at ON audit(at);
    """,
    # 2: access control: accounts, classroom enrolment and devices, revoked tokens (the audit table is in 1)
    """
    CREATE TABLE account (
        id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'teacher', 'technician')),
        teacher_id INTEGER REFERENCES teacher(id), county_id INTEGER REFERENCES county(id),
        password_hash TEXT NOT NULL, created_at INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE enrolment (
        id INTEGER PRIMARY KEY, classroom_id INTEGER NOT NULL REFERENCES classroom(id), jti TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, created_by TEXT NOT NULL, revoked_at INTEGER);
    CREATE INDEX enrolment_classroom ON enrolment(classroom_id);
    CREATE TABLE classroom_device (
        classroom_id INTEGER PRIMARY KEY REFERENCES classroom(id), device_id TEXT NOT NULL,
        enrolled_at INTEGER NOT NULL, address TEXT NOT NULL DEFAULT '');
    CREATE TABLE revoked_token (
        jti TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        actor TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
    CREATE INDEX audit_lesson ON audit(lesson_id, at);
    """,
    # 3: a version number of the directory (places, people, semesters), moved by triggers, so cached
    # name look-ups are rebuilt when the directory changes and not on every evidence or ledger write
    """
    CREATE TABLE directory_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
    INSERT INTO directory_version(id, version) VALUES (1, 0);
    """
    + "".join(
        f"""
    CREATE TRIGGER directory_{table}_{event.lower()} AFTER {event} ON {table}
        BEGIN UPDATE directory_version SET version = version + 1; END;"""
        for table in (
            "region",
            "city",
            "county",
            "school",
            "classroom",
            "teacher",
            "semester",
            "holiday",
            "makeup_day",
            "community",
            "community_member",
        )
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
    # 4: research-community members' attendance of master lessons on their own devices
    """
    CREATE TABLE teacher_attendance (
        lesson_id INTEGER NOT NULL REFERENCES lesson(id), teacher_id INTEGER NOT NULL REFERENCES teacher(id),
        minutes REAL NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (lesson_id, teacher_id)) WITHOUT ROWID;
    """,
    # 5: the administrator's semester. The lesson table is rebuilt (SQLite cannot widen a CHECK) to hold
    # its lesson hours (课时), when it was settled, and the `awaiting_evidence` state of a lesson entered
    # after its time; counties get a standard lesson length and a dated history of their workload
    # factor; receiving classrooms' credit becomes an append-only ledger of its own, so attendance that
    # arrives after settlement changes nothing without a correction; corrections say what they changed.
    """
    CREATE TABLE lesson_v5 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('specialised', 'master', 'famous_school')),
        subject TEXT NOT NULL, grade TEXT NOT NULL DEFAULT '',
        lead_teacher_id INTEGER NOT NULL REFERENCES teacher(id),
        lead_classroom_id INTEGER NOT NULL REFERENCES classroom(id),
        community_id INTEGER REFERENCES community(id),
        semester_id INTEGER REFERENCES semester(id),
        series_id TEXT,
        start_utc INTEGER NOT NULL, end_utc INTEGER NOT NULL CHECK (end_utc > start_utc),
        status TEXT NOT NULL DEFAULT 'scheduled'
            CHECK (status IN ('scheduled', 'open', 'live', 'awaiting_evidence', 'delivered', 'missed', 'cancelled')),
        lesson_key TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        hours INTEGER NOT NULL DEFAULT 1 CHECK (hours >= 1),
        settled_at INTEGER);
    INSERT INTO lesson_v5 (id, kind, subject, grade, lead_teacher_id, lead_classroom_id, community_id, semester_id,
        series_id, start_utc, end_utc, status, lesson_key, created_at, updated_at, hours, settled_at)
    SELECT id, kind, subject, grade, lead_teacher_id, lead_classroom_id, community_id, semester_id,
        series_id, start_utc, end_utc, status, lesson_key, created_at, updated_at,
        max(1, CAST((end_utc - start_utc) / 2400.0 + 0.5 AS INTEGER)),
        CASE WHEN status IN ('delivered', 'missed') THEN updated_at END
    FROM lesson;
    DROP TABLE lesson;
    ALTER TABLE lesson_v5 RENAME TO lesson;
    CREATE INDEX lesson_teacher_start ON lesson(lead_teacher_id, start_utc);
    CREATE INDEX lesson_classroom_start ON lesson(lead_classroom_id, start_utc);
    CREATE INDEX lesson_start ON lesson(start_utc);
    CREATE INDEX lesson_span ON lesson(start_utc, end_utc, community_id, status);
    CREATE INDEX lesson_semester ON lesson(semester_id, status);
    ALTER TABLE county ADD COLUMN standard_lesson_minutes INTEGER NOT NULL DEFAULT 40
        CHECK (standard_lesson_minutes BETWEEN 10 AND 240);
    CREATE TABLE county_factor (
        county_id INTEGER NOT NULL REFERENCES county(id), since TEXT NOT NULL,
        factor REAL NOT NULL CHECK (factor >= 1.5), set_at INTEGER NOT NULL, actor TEXT NOT NULL,
        PRIMARY KEY (county_id, since)) WITHOUT ROWID;
    INSERT INTO county_factor(county_id, since, factor, set_at, actor)
        SELECT id, '0001-01-01', workload_factor, 0, 'migration' FROM county;
    CREATE TABLE receiver_credit (
        id INTEGER PRIMARY KEY, lesson_id INTEGER NOT NULL REFERENCES lesson(id),
        classroom_id INTEGER NOT NULL REFERENCES classroom(id), school_id INTEGER NOT NULL REFERENCES school(id),
        credit INTEGER NOT NULL CHECK (credit IN (1, -1)), created_at INTEGER NOT NULL,
        actor TEXT NOT NULL, reason TEXT NOT NULL, reverses_id INTEGER UNIQUE REFERENCES receiver_credit(id));
    CREATE INDEX receiver_credit_lesson ON receiver_credit(lesson_id);
    CREATE TRIGGER receiver_credit_no_update BEFORE UPDATE ON receiver_credit
        BEGIN SELECT RAISE(ABORT, 'receiver credit rows are append-only: add a reversing entry instead'); END;
    CREATE TRIGGER receiver_credit_no_delete BEFORE DELETE ON receiver_credit
        BEGIN SELECT RAISE(ABORT, 'receiver credit rows are append-only: add a reversing entry instead'); END;
    INSERT INTO receiver_credit(lesson_id, classroom_id, school_id, credit, created_at, actor, reason)
        SELECT l.id, a.classroom_id, c.school_id, 1, l.settled_at, 'migration', 'attended (recorded before version 5)'
        FROM lesson l JOIN attendance a ON a.lesson_id = l.id JOIN classroom c ON c.id = a.classroom_id
        JOIN lesson_receiver r ON r.lesson_id = l.id AND r.classroom_id = a.classroom_id
        WHERE l.status = 'delivered' AND a.minutes >= 0.8 * (l.end_utc - l.start_utc) / 60.0;
    ALTER TABLE correction ADD COLUMN kind TEXT NOT NULL DEFAULT 'status';
    ALTER TABLE correction ADD COLUMN classroom_id INTEGER;
    ALTER TABLE correction ADD COLUMN batch TEXT;
    CREATE INDEX correction_lesson ON correction(lesson_id, id);
    CREATE TRIGGER correction_no_delete BEFORE DELETE ON correction
        BEGIN SELECT RAISE(ABORT, 'corrections are append-only'); END;
    -- a teacher's staff number (工号), when the district keeps one: what tells one person from a namesake
    ALTER TABLE teacher ADD COLUMN staff_no TEXT;
    CREATE UNIQUE INDEX teacher_staff_no ON teacher(staff_no) WHERE staff_no IS NOT NULL;
    CREATE TABLE directory_import (
        id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, actor TEXT NOT NULL, filename TEXT NOT NULL,
        sha256 TEXT NOT NULL, added INTEGER NOT NULL, changed INTEGER NOT NULL, unchanged INTEGER NOT NULL);
    """,
    # monitoring: the alert log (fired, cleared, acknowledged by whom) and each lesson's sampled figures
    """
    CREATE TABLE alert (
        id INTEGER PRIMARY KEY, rule TEXT NOT NULL, key TEXT NOT NULL, severity TEXT NOT NULL,
        lesson_id INTEGER, subject TEXT NOT NULL, subject_name TEXT NOT NULL, summary_zh TEXT NOT NULL,
        summary_en TEXT NOT NULL, value REAL, fired_at REAL NOT NULL, cleared_at REAL, acked_by TEXT,
        acked_at REAL, county_ids TEXT NOT NULL DEFAULT '', region_ids TEXT NOT NULL DEFAULT '');
    CREATE INDEX alert_fired ON alert(fired_at);
    CREATE INDEX alert_firing ON alert(key) WHERE cleared_at IS NULL;
    CREATE TABLE lesson_sample (
        lesson_id INTEGER NOT NULL, at REAL NOT NULL, participant_id TEXT NOT NULL, role TEXT NOT NULL,
        classroom_id INTEGER, kbps_in REAL, kbps_out REAL, loss REAL, rtt_ms REAL, fps REAL, score REAL,
        link TEXT NOT NULL, PRIMARY KEY (lesson_id, participant_id, at)) WITHOUT ROWID;
    CREATE INDEX lesson_sample_at ON lesson_sample(at);
    """,
    # attendance timelines (monitoring/attendance.py), written as a lesson goes: per participant (`lead`,
    # `classroom-<id>`, `teacher-<id>`) its segments present, and the presence events; positions in epoch seconds
    """
    CREATE TABLE attendance_timeline (
        lesson_id INTEGER PRIMARY KEY REFERENCES lesson(id), last_at REAL, closed INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL);
    CREATE TABLE attendance_segment (
        lesson_id INTEGER NOT NULL REFERENCES lesson(id), participant TEXT NOT NULL, seq INTEGER NOT NULL,
        started_at REAL NOT NULL, ended_at REAL NOT NULL CHECK (ended_at >= started_at),
        seconds REAL NOT NULL CHECK (seconds >= 0), opened_by TEXT NOT NULL, closed_by TEXT,
        quality_min REAL, quality_sum REAL NOT NULL DEFAULT 0, quality_n INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (lesson_id, participant, seq)) WITHOUT ROWID;
    CREATE TABLE attendance_event (
        lesson_id INTEGER NOT NULL REFERENCES lesson(id), seq INTEGER NOT NULL, at REAL NOT NULL,
        participant TEXT NOT NULL, what TEXT NOT NULL,
        PRIMARY KEY (lesson_id, seq)) WITHOUT ROWID;
    """,
    # recordings (scheduler/recordings.py): one row per dump of a lesson's lead, its finalised file and
    # the courseware's; an administrator's per-lesson choice of whether to record
    """
    CREATE TABLE recording (
        id INTEGER PRIMARY KEY, lesson_id INTEGER NOT NULL REFERENCES lesson(id), participant TEXT NOT NULL,
        dump_path TEXT NOT NULL UNIQUE, path TEXT, screen_path TEXT, container TEXT,
        state TEXT NOT NULL CHECK (state IN ('recording', 'ready', 'failed', 'deleted')),
        started_at REAL NOT NULL, finished_at REAL, duration_s REAL, size_bytes INTEGER, sha256 TEXT,
        tracks TEXT NOT NULL DEFAULT '{}', frames_dropped INTEGER NOT NULL DEFAULT 0, error TEXT);
    CREATE INDEX recording_lesson ON recording(lesson_id);
    CREATE INDEX recording_state ON recording(state);
    CREATE TABLE recording_choice (
        lesson_id INTEGER PRIMARY KEY REFERENCES lesson(id), record INTEGER NOT NULL CHECK (record IN (0, 1)),
        actor TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL DEFAULT '');
    """,
    # covering indexes for the report (reports.build_report): a semester's lessons with every column the
    # lead and receiving counts read, each lesson's receiver credits by school and classroom up to a
    # moment, and its ledger rows up to a moment, so that a report reads index pages only
    """
    CREATE INDEX lesson_report ON lesson(
        semester_id, id, lead_classroom_id, lead_teacher_id, kind, hours, status, settled_at, created_at);
    CREATE INDEX receiver_credit_report ON receiver_credit(lesson_id, school_id, classroom_id, created_at, credit);
    CREATE INDEX ledger_report ON ledger(
        lesson_id, created_at, entry_type, teacher_id, school_id, base_hours, weighted_hours);
    """,
    # review and scheduled replay of recordings (录播): a recording's review state (pending until a reviewer
    # approves it for replay to other classrooms and/or as a model lesson, 案例观摩) and the append-only
    # history of reviews; the teachers a county's administrator made reviewers (教研员); a lesson that
    # replays an approved recording (`replay_of`; NULL: a live lesson) and whether it credits the recorded
    # lesson's lead (the county's policy when it was scheduled, default no); counties' retention period,
    # disk quota of recordings and replay-credit policy
    """
    ALTER TABLE recording ADD COLUMN review TEXT NOT NULL DEFAULT 'pending'
        CHECK (review IN ('pending', 'approved', 'refused'));
    ALTER TABLE recording ADD COLUMN review_uses TEXT NOT NULL DEFAULT '';
    ALTER TABLE recording ADD COLUMN reviewed_by TEXT;
    ALTER TABLE recording ADD COLUMN reviewed_at REAL;
    ALTER TABLE recording ADD COLUMN review_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE recording ADD COLUMN deleted_at REAL;
    CREATE INDEX recording_by_review ON recording(review, state);
    CREATE TABLE recording_review (
        id INTEGER PRIMARY KEY, recording_id INTEGER NOT NULL REFERENCES recording(id), reviewer TEXT NOT NULL,
        approved INTEGER NOT NULL CHECK (approved IN (0, 1)), uses TEXT NOT NULL, reason TEXT NOT NULL,
        at REAL NOT NULL);
    CREATE INDEX recording_review_recording ON recording_review(recording_id, id);
    CREATE TRIGGER recording_review_no_update BEFORE UPDATE ON recording_review
        BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
    CREATE TRIGGER recording_review_no_delete BEFORE DELETE ON recording_review
        BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
    CREATE TABLE reviewer (
        teacher_id INTEGER NOT NULL REFERENCES teacher(id), county_id INTEGER NOT NULL REFERENCES county(id),
        granted_by TEXT NOT NULL, granted_at REAL NOT NULL, PRIMARY KEY (teacher_id, county_id)) WITHOUT ROWID;
    ALTER TABLE lesson ADD COLUMN replay_of INTEGER REFERENCES recording(id);
    ALTER TABLE lesson ADD COLUMN credits_lead INTEGER NOT NULL DEFAULT 1 CHECK (credits_lead IN (0, 1));
    CREATE INDEX lesson_replay ON lesson(replay_of) WHERE replay_of IS NOT NULL;
    ALTER TABLE county ADD COLUMN replay_credits_lead INTEGER NOT NULL DEFAULT 0 CHECK (replay_credits_lead IN (0, 1));
    ALTER TABLE county ADD COLUMN recording_retention_days INTEGER CHECK (recording_retention_days >= 1);
    ALTER TABLE county ADD COLUMN recording_quota_mb INTEGER CHECK (recording_quota_mb >= 1);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
