"""Review and scheduled replay through `classroom serve`: a county's administrator makes a teacher a reviewer,
the reviewer finds the recordings awaiting review and approves one with a reason (audited); before that, and
for a missing recording, a replay is refused with a clear code; afterwards the administrator schedules it
for another school's classroom, whose teachers may then watch the recording; the lesson JSON says what it
replays."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from signaling.trial import AdminApi, build_world, lesson_now_timezone
from tests.signaling.test_recordings_e2e import _teacher_token


def _catalogue(data_dir: Path, lesson_id: int) -> int:
    """A finished recording of the lesson, as the recorder would have catalogued it."""
    path = data_dir / "recordings" / f"lesson-{lesson_id}.webm"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x1aE\xdf\xa3" + b"\0" * 1000)
    with sqlite3.connect(data_dir / "classroom.sqlite3") as db:
        cur = db.execute(
            "INSERT INTO recording(lesson_id, participant, dump_path, path, container, state, started_at, "
            "finished_at, duration_s, size_bytes) VALUES (?, 'lead', ?, ?, 'webm', 'ready', ?, ?, 2400, ?)",
            (lesson_id, str(path) + ".dump", str(path), time.time() - 3000, time.time() - 600, 1004),
        )
        return int(cur.lastrowid or 0)


async def test_a_recording_is_reviewed_then_scheduled_as_a_replay(server_factory: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory(env={"CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=1)
    lesson = world.lesson_ids[0]
    county = max(c["id"] for c in await api.ok("GET", "/api/v1/counties"))
    rid = _catalogue(srv.data_dir, lesson)
    at = (datetime.now(ZoneInfo(tz)) + timedelta(hours=3)).replace(microsecond=0, tzinfo=None)
    replay = {"replay_of": rid, "receiving_classroom_ids": [world.other_classroom_id],
              "start": at.isoformat(timespec="seconds")}

    # not reviewed yet, or no such recording: refused with a code
    status, body = srv.json("POST", "/api/v1/lessons", replay)
    assert status == 400 and body["code"] == "not_approved", body
    status, body = srv.json("POST", "/api/v1/lessons", {**replay, "replay_of": rid + 100})
    assert status == 400 and body["code"] == "no_recording", body

    # the administrator makes the community's teacher a reviewer; the lead teacher is not one
    reviewer = await _teacher_token(api, world.community_teacher_id or 0)
    lead = await _teacher_token(api, world.lead_teacher_id)
    assert (await api.ok("PUT", f"/api/v1/reviewers/{world.community_teacher_id}", {"county_id": county}))[
        "county_id"] == county
    assert [r["teacher_id"] for r in await api.ok("GET", "/api/v1/reviewers")] == [world.community_teacher_id]

    status, pending = srv.json("GET", "/api/v1/recordings?reviewable=1&review=pending", token=reviewer)
    assert status == 200 and [r["id"] for r in pending] == [rid] and pending[0]["review"] == "pending"
    status, body = srv.json("GET", "/api/v1/recordings?reviewable=1", token=lead)
    assert status == 200 and body == []

    decision = {"approved": True, "use": "replay", "reason": "适合三年级进度"}
    status, body = srv.json("POST", f"/api/v1/recordings/{rid}/review", decision, token=lead)
    assert status == 403 and body["code"] == "not_reviewer", body
    status, body = srv.json("POST", f"/api/v1/recordings/{rid}/review", decision)  # the administrator
    assert status == 403, body
    status, body = srv.json("POST", f"/api/v1/recordings/{rid}/review", {**decision, "reason": ""}, token=reviewer)
    assert status == 400 and body["code"] == "reason_needed", body
    status, body = srv.json("POST", f"/api/v1/recordings/{rid}/review", {**decision, "use": "broadcast"},
                            token=reviewer)
    assert status == 400 and body["code"] == "bad_field", body
    status, body = srv.json("POST", f"/api/v1/recordings/{rid}/review", decision, token=reviewer)
    assert status == 200 and body["review"] == "approved" and body["review_uses"] == ["replay"], body

    # an on-site teacher of the classroom it is for may not watch it yet
    rooms = {c["id"]: c["school_id"] for c in await api.ok("GET", "/api/v1/classrooms")}
    onsite_id = int((await api.ok("POST", "/api/v1/teachers", {"name": "孙老师", "school_id":
                                                                  rooms[world.other_classroom_id]}))["id"])
    onsite = await _teacher_token(api, onsite_id)
    status, body = srv.json("GET", f"/api/v1/recordings/{rid}", token=onsite)
    assert status == 403, body

    # scheduled; the lesson says what it replays
    status, body = srv.json("POST", "/api/v1/lessons", replay)
    assert status == 201, body
    made = body["lessons"][0]
    assert made["replay_of"] == rid and made["receiving_classroom_ids"] == [world.other_classroom_id]
    assert made["credits_lead"] is False and made["lead_teacher_id"] == world.lead_teacher_id
    status, again = srv.json("GET", f"/api/v1/lessons/{made['id']}")
    assert again["replay_of"] == rid
    status, body = srv.json("GET", f"/api/v1/recordings/{rid}", token=onsite)  # now the replay's audience
    assert status == 200 and body["links"]["camera"], body
    approved = await api.ok("GET", "/api/v1/recordings?use=replay")
    assert [r["id"] for r in approved] == [rid]

    # the review history and the audit keep who decided what and why
    status, history = srv.json("GET", f"/api/v1/recordings/{rid}/reviews", token=reviewer)
    assert status == 200 and [(h["approved"], h["reason"]) for h in history] == [(True, "适合三年级进度")]
    audit = await api.ok("GET", "/api/v1/audit?limit=500")
    reviews = [a for a in audit if a["action"] == "review_recording"]
    assert {a["outcome"] for a in reviews} == {"admitted", "refused"}
    assert any("适合三年级进度" in a["reason"] for a in reviews if a["outcome"] == "admitted")
    assert any(a["action"] == "grant_reviewer" for a in audit)

    # a later refusal withdraws the approval and names the replays still scheduled from it
    status, body = srv.json("POST", f"/api/v1/recordings/{rid}/review",
                            {"approved": False, "reason": "画面中有学生特写"}, token=reviewer)
    assert status == 200 and body["review"] == "refused" and body["replays_waiting"] == [made["id"]], body
    status, body = srv.json("POST", "/api/v1/lessons", {**replay, "start": (at + timedelta(days=1)).isoformat()})
    assert status == 400 and body["code"] == "not_approved", body

    # a county's policy: replays credit the lead from now on, retention 30 days
    status, policy = srv.json("PUT", f"/api/v1/counties/{county}/recording-policy",
                              {"replay_credits_lead": True, "retention_days": 30})
    assert status == 200 and policy["replay_credits_lead"] is True and policy["retention_days"] == 30, policy
    status, body = srv.json("PUT", f"/api/v1/counties/{county}/recording-policy", {"retention_days": 0})
    assert status == 400, body
