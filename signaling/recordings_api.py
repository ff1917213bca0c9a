"""The recordings' HTTP side: finding them, short-lived signed links to play them, and the files.

- `GET /api/v1/recordings` — the recordings the caller may watch (teacher or administrator), with
  filters `from`, `to` (dates, the district's time zone), `teacher_id`, `subject`, `grade`, `kind`;
- `GET /api/v1/recordings/{id}` — one recording, its lesson and signed links to its files (camera
  with sound; courseware if any), valid `[recording] link_ttl_s`; every such opening is audited, and
  the file is checked against its catalogued size and SHA-256 first (a corrupt file is reported, 409);
- `GET /recordings/{id}/{camera|screen}?exp=&by=&sig=` — the file itself, with range requests (seeking);
  the link is the authorisation (a `<video>` element sends no header), bound to the recording, the part,
  the viewer and the expiry;
- `PUT /api/v1/lessons/{id}/recording` — an administrator records a lesson or not (`record`: true,
  false or null for the county's and kind's rule), audited;
- `DELETE /api/v1/recordings/{id}` — an administrator deletes a recording's files, audited;
- `POST /api/v1/recordings/{id}/review` — a reviewer (a teacher the county's administrator made one)
  approves a recording (`approved`: true, `uses`/`use`: `replay`, `model` or both) or refuses it, with
  a `reason`; audited and kept in the review history (`GET /api/v1/recordings/{id}/reviews`);
  `GET /api/v1/recordings?reviewable=1&review=pending` is a reviewer's list, `?use=replay` what an
  administrator may schedule as a replay;
- `GET /api/v1/reviewers`, `PUT /api/v1/reviewers/{teacher_id}` (`county_id` for a district-wide
  administrator), `DELETE /api/v1/reviewers/{teacher_id}?county_id=` — a county's reviewers, audited;
- `GET`/`PUT /api/v1/counties/{id}/recording-policy` — a county's retention period (`retention_days`),
  disk quota (`quota_mb`; null: the `[recording]` defaults) and whether replays credit the recorded
  lesson's lead (`replay_credits_lead`, default false), audited.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from media.recording import sha256_of
from scheduler.model import Lesson
from scheduler.recordings import Recording, Recordings, ReviewRefused
from scheduler.rules.recording import Viewer, playback_refusal
from scheduler.rules.replay import parse_uses
from scheduler.timetable import Timetable
from signaling.http import Refusal, _body, principal_of
from signaling.store import AccessStore
from signaling.tokens import Claims, Role, TokenService

log = logging.getLogger(__name__)

PARTS = ("camera", "screen")


class RecordingsApi:
    def __init__(self, recordings: Recordings, timetable: Timetable, tokens: TokenService, store: AccessStore) -> None:
        self.recordings = recordings
        self.t = timetable
        self.tokens = tokens
        self.store = store
        # files whose checksum was verified: (path, size, mtime) -> sha256 (a file changes: checked again)
        self._verified: dict[tuple[str, int, float], str] = {}

    # ---- who watches --------------------------------------------------------------------------------
    def _viewer(self, p: Claims) -> Viewer:
        if p.role == Role.ADMIN:
            return Viewer(admin=True, county_id=p.county_id)
        school = county = None
        if p.teacher_id is not None:
            school = next((t.school_id for t in self.t.repo.teachers() if t.id == p.teacher_id), None)
            county = next((s.county_id for s in self.t.repo.schools() if s.id == school), None)
        return Viewer(admin=False, county_id=county, teacher_id=p.teacher_id, school_id=school,
                      reviewer_county_ids=self.recordings.reviewer_counties(p.teacher_id))

    def _refusal(self, viewer: Viewer, lesson: Lesson, rec: Recording | None = None) -> str | None:
        return playback_refusal(viewer, self.recordings.audience(lesson, rec))

    def _describe(self, rec: Recording, lesson: Lesson, names: dict[str, dict[int, str]]) -> dict[str, Any]:
        tz = self.t.config.tz
        return {**rec.to_json(), "lesson": {
            "id": lesson.id, "kind": lesson.kind.value, "subject": lesson.subject, "grade": lesson.grade,
            "start": lesson.start.astimezone(tz).isoformat(), "end": lesson.end.astimezone(tz).isoformat(),
            "teacher_id": lesson.lead_teacher_id, "teacher": names["teachers"].get(lesson.lead_teacher_id, ""),
            "lead": names["classrooms"].get(lesson.lead_classroom_id, ""),
        }}

    def _names(self) -> dict[str, dict[int, str]]:
        repo = self.t.repo
        schools = {s.id: s.name for s in repo.schools()}
        return {"teachers": {t.id: t.name for t in repo.teachers()},
                "classrooms": {c.id: f"{schools.get(c.school_id, '')} {c.name}".strip() for c in repo.classrooms()}}

    # ---- finding ------------------------------------------------------------------------------------
    async def list(self, request: web.Request) -> web.Response:
        p = principal_of(request, Role.ADMIN, Role.TEACHER)
        q = request.query
        tz = self.t.config.tz
        start = _day(q.get("from"), "from", tz)
        end = _day(q.get("to"), "to", tz)
        teacher_id = _opt_int(q.get("teacher_id"), "teacher_id")
        lessons = self.t.repo.lessons(start=start, end=end + timedelta(days=1) if end else None,
                                      teacher_id=teacher_id, limit=100000)
        for name in ("subject", "grade", "kind"):
            wanted = q.get(name)
            if wanted:
                lessons = [x for x in lessons if str(getattr(x, name).value if name == "kind" else getattr(x, name))
                           == wanted]
        viewer = self._viewer(p)
        by_id = {x.id: x for x in lessons if x.replay_of is None}  # a replay's recording is its source's
        recs = await asyncio.to_thread(self.recordings.of_lessons, list(by_id), ("ready", "failed", "recording"))
        review, use = q.get("review"), q.get("use")
        if review:
            recs = [r for r in recs if r.review == review]
        if use:
            recs = [r for r in recs if r.review == "approved" and use in r.review_uses]
        if q.get("reviewable") in ("1", "true"):  # the reviewer's list: what they may decide on
            mine = viewer.reviewer_county_ids
            recs = [r for r in recs if r.state == "ready"
                    and self.recordings.lead_county(by_id[r.lesson_id]) in mine]
        names = self._names()
        out = [self._describe(r, by_id[r.lesson_id], names) for r in recs
               if self._refusal(viewer, by_id[r.lesson_id], r) is None]
        return web.json_response(out)

    async def one(self, request: web.Request) -> web.Response:
        p = principal_of(request, Role.ADMIN, Role.TEACHER)
        rec, lesson = self._entitled(p, request)
        body = self._describe(rec, lesson, self._names())
        if rec.state != "ready" or not rec.path:
            body["links"] = None
            return web.json_response(body)
        problem = await asyncio.to_thread(self._check_file, rec)
        if problem is not None:
            self.store.audit(p.sub, p.role.value, "play_recording", "refused", lesson_id=lesson.id,
                             address=request.remote, reason=f"recording {rec.id}: {problem}")
            raise Refusal(409, "recording_corrupt", problem)
        exp = int(time.time() + self.recordings.config.link_ttl_s)
        body["links"] = {part: self._link(rec.id, part, exp, p.sub)
                         for part in PARTS if part == "camera" or rec.screen_path}
        body["links_expire"] = exp
        self.store.audit(p.sub, p.role.value, "play_recording", "admitted", lesson_id=lesson.id,
                         address=request.remote, reason=f"recording {rec.id}")
        return web.json_response(body)

    def _entitled(self, p: Claims, request: web.Request) -> tuple[Recording, Lesson]:
        rec = self.recordings.get(_opt_int(request.match_info["id"], "id") or 0)
        lesson = self.t.repo.lesson(rec.lesson_id) if rec is not None else None
        if rec is None or lesson is None or rec.state == "deleted":
            raise Refusal(404, "not_found", "no such recording")
        refusal = self._refusal(self._viewer(p), lesson, rec)
        if refusal is not None:
            self.store.audit(p.sub, p.role.value, "play_recording", "refused", lesson_id=lesson.id,
                             address=request.remote, reason=f"recording {rec.id}: {refusal}")
            raise Refusal(403, "not_entitled", refusal)
        return rec, lesson

    def _check_file(self, rec: Recording) -> str | None:
        """None when the file is whole (its size and SHA-256 as catalogued), else what is wrong."""
        files = [(rec.path, rec.size_bytes, rec.sha256)]
        for path, size, digest in files:
            try:
                st = os.stat(path or "")
            except OSError:
                return "the recording's file is missing on the server"
            if size is not None and st.st_size != size:
                return f"the recording's file is damaged (its size is {st.st_size} bytes, not {size})"
            key = (str(path), st.st_size, st.st_mtime)
            if digest and self._verified.get(key) != digest:
                if sha256_of(Path(str(path))) != digest:
                    return "the recording's file is damaged (its checksum does not match)"
                self._verified[key] = digest
        return None

    def _signature(self, recording_id: int, part: str, exp: int, by: str) -> str:
        return self.tokens.sign(f"recording:{recording_id}:{part}:{exp}:{by}".encode())

    def _link(self, recording_id: int, part: str, exp: int, by: str) -> str:
        query = urlencode({"exp": exp, "by": by, "sig": self._signature(recording_id, part, exp, by)})
        return f"/recordings/{recording_id}/{part}?{query}"

    # ---- the files ----------------------------------------------------------------------------------
    async def file(self, request: web.Request) -> web.StreamResponse:
        part = request.match_info["part"]
        q = request.query
        rid = _opt_int(request.match_info["id"], "id") or 0
        exp = _opt_int(q.get("exp"), "exp") or 0
        by = q.get("by", "")
        if part not in PARTS or not hmac.compare_digest(q.get("sig", ""), self._signature(rid, part, exp, by)):
            log.warning("refused recording %s/%s from %s: a bad link", rid, part, request.remote)
            raise Refusal(403, "bad_link", "this link is not valid")
        if exp < time.time():
            raise Refusal(403, "link_expired", "this link has expired: open the recording again")
        rec = self.recordings.get(rid)
        path = (rec.path if part == "camera" else rec.screen_path) if rec is not None else None
        if rec is None or rec.state != "ready" or not path or not Path(path).is_file():
            raise Refusal(404, "not_found", "no such recording file")
        content_type = f"video/{rec.container or 'webm'}"
        return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "private, no-store"})

    # ---- administration -----------------------------------------------------------------------------
    async def choose(self, request: web.Request) -> web.Response:
        p = principal_of(request, Role.ADMIN)
        lesson = self.t.repo.lesson(_opt_int(request.match_info["id"], "id") or 0)
        if lesson is None:
            raise Refusal(404, "not_found", "no such lesson")
        body = await _body(request)
        record = body.get("record")
        if record is not None and not isinstance(record, bool):
            raise Refusal(400, "bad_field", "record is true, false or null")
        reason = str(body.get("reason") or "")[:500]
        await asyncio.to_thread(self.recordings.set_choice, lesson.id, record, p.sub, reason)
        self.store.audit(p.sub, p.role.value, "recording_choice", "admitted", lesson_id=lesson.id,
                         address=request.remote, reason=f"record={record} {reason}".strip())
        return web.json_response({"lesson_id": lesson.id, "record": record,
                                  "recorded": await asyncio.to_thread(self.recordings.records, lesson)})

    async def delete(self, request: web.Request) -> web.Response:
        p = principal_of(request, Role.ADMIN)
        rec, lesson = self._entitled(p, request)
        body = await _body(request) if request.can_read_body else {}
        reason = str(body.get("reason") or "")[:500]
        for path in (rec.path, rec.screen_path, rec.dump_path):
            if path:
                try:
                    Path(path).unlink(missing_ok=True)
                except OSError as exc:
                    raise Refusal(500, "delete_failed", f"the file could not be deleted: {exc.strerror}") from None
        await asyncio.to_thread(self.recordings.mark_deleted, rec.id)
        self.store.audit(p.sub, p.role.value, "delete_recording", "admitted", lesson_id=lesson.id,
                         address=request.remote, reason=f"recording {rec.id} {reason}".strip())
        return web.json_response({"id": rec.id, "state": "deleted"})


    # ---- review (scheduler/rules/replay.py) ---------------------------------------------------------
    async def review(self, request: web.Request) -> web.Response:
        """A reviewer approves a recording for replay and/or as a model lesson, or refuses it, with a reason."""
        p = principal_of(request, Role.TEACHER)
        rid = _opt_int(request.match_info["id"], "id") or 0
        body = await _body(request)
        approved = body.get("approved")
        if not isinstance(approved, bool):
            raise Refusal(400, "bad_field", "approved is true or false")
        reason = str(body.get("reason") or "")
        try:
            uses = parse_uses(body.get("uses", body.get("use", "replay"))) if approved else ()
        except ValueError as exc:
            raise Refusal(400, "bad_field", str(exc)) from None
        counties = self.recordings.reviewer_counties(p.teacher_id)
        rec = self.recordings.get(rid)
        try:
            done = await asyncio.to_thread(self.recordings.approve, rid, p.sub, approved, reason, uses, counties)
        except ReviewRefused as exc:
            status = 404 if exc.code == "not_found" else 403 if exc.code == "not_reviewer" else 400
            self.store.audit(p.sub, p.role.value, "review_recording", "refused",
                             lesson_id=rec.lesson_id if rec is not None else None, address=request.remote,
                             reason=f"recording {rid}: {exc.message}")
            raise Refusal(status, exc.code, exc.message) from None
        decision = f"approved for {','.join(uses)}" if approved else "refused"
        # replays still to come that no longer may show it: the technicians are alerted before each window
        waiting = [] if "replay" in uses else await asyncio.to_thread(self._replays_waiting, rid)
        if waiting:
            decision += f" (replays still scheduled: {', '.join(f'#{i}' for i in waiting)})"
        self.store.audit(p.sub, p.role.value, "review_recording", "admitted", lesson_id=done.lesson_id,
                         address=request.remote, reason=f"recording {rid} {decision}: {reason}"[:500])
        return web.json_response({**done.to_json(), "replays_waiting": waiting})

    def _replays_waiting(self, recording_id: int) -> list[int]:
        with self.t.db.read() as conn:
            rows = conn.execute("SELECT id FROM lesson WHERE replay_of = ? AND status IN ('scheduled', 'open') "
                                "ORDER BY start_utc", (recording_id,)).fetchall()
        return [int(r[0]) for r in rows]

    async def review_history(self, request: web.Request) -> web.Response:
        p = principal_of(request, Role.ADMIN, Role.TEACHER)
        rec, _lesson = self._entitled(p, request)
        return web.json_response(await asyncio.to_thread(self.recordings.reviews, rec.id))

    def _county_of_admin(self, p: Claims, body_county: Any) -> int:
        county = p.county_id if p.county_id is not None else _opt_int(body_county, "county_id")
        if county is None:
            raise Refusal(400, "bad_field", "county_id: which county the reviewer reviews for")
        if p.county_id is not None and body_county not in (None, "", p.county_id, str(p.county_id)):
            raise Refusal(403, "not_entitled", "you grant reviewers of your own county only")
        if county not in {c.id for c in self.t.repo.counties()}:
            raise Refusal(404, "not_found", "no such county")
        return county

    async def list_reviewers(self, request: web.Request) -> web.Response:
        p = principal_of(request, Role.ADMIN)
        return web.json_response(await asyncio.to_thread(self.recordings.reviewers, p.county_id))

    async def grant_reviewer(self, request: web.Request) -> web.Response:
        """The county's administrator makes a teacher (e.g. a 教研员) a reviewer of the county's recordings."""
        p = principal_of(request, Role.ADMIN)
        teacher_id = _opt_int(request.match_info["teacher_id"], "teacher_id") or 0
        body = await _body(request) if request.can_read_body else {}
        county = self._county_of_admin(p, body.get("county_id"))
        if teacher_id not in {t.id for t in self.t.repo.teachers()}:
            raise Refusal(404, "not_found", "no such teacher")
        await asyncio.to_thread(self.recordings.grant_reviewer, teacher_id, county, p.sub)
        self.store.audit(p.sub, p.role.value, "grant_reviewer", "admitted", address=request.remote,
                         reason=f"teacher {teacher_id} reviews county {county}")
        return web.json_response({"teacher_id": teacher_id, "county_id": county})

    async def revoke_reviewer(self, request: web.Request) -> web.Response:
        p = principal_of(request, Role.ADMIN)
        teacher_id = _opt_int(request.match_info["teacher_id"], "teacher_id") or 0
        county = self._county_of_admin(p, request.query.get("county_id"))
        if not await asyncio.to_thread(self.recordings.revoke_reviewer, teacher_id, county):
            raise Refusal(404, "not_found", "this teacher is not a reviewer of this county")
        self.store.audit(p.sub, p.role.value, "revoke_reviewer", "admitted", address=request.remote,
                         reason=f"teacher {teacher_id} no longer reviews county {county}")
        return web.json_response({"teacher_id": teacher_id, "county_id": county, "revoked": True})


    # ---- a county's policy: retention, quota, whether replays credit the recorded lesson's lead -----------
    def _policy_json(self, county_id: int) -> dict[str, Any]:
        policy = self.recordings.policies().get(county_id)
        cfg = self.recordings.config
        with self.t.db.read() as conn:
            row = conn.execute("SELECT replay_credits_lead FROM county WHERE id = ?", (county_id,)).fetchone()
        return {"county_id": county_id,
                "retention_days": policy.retention_days if policy else None,
                "quota_mb": policy.quota_mb if policy else None,
                "default_retention_days": cfg.retention_days, "default_quota_gb": cfg.quota_gb,
                "replay_credits_lead": bool(row[0]) if row else False}

    def _own_county(self, p: Claims, request: web.Request) -> int:
        county = _opt_int(request.match_info["id"], "id") or 0
        if p.county_id is not None and p.county_id != county:
            raise Refusal(403, "not_entitled", "you set your own county's policy only")
        if county not in {c.id for c in self.t.repo.counties()}:
            raise Refusal(404, "not_found", "no such county")
        return county

    async def get_policy(self, request: web.Request) -> web.Response:
        p = principal_of(request, Role.ADMIN)
        return web.json_response(self._policy_json(self._own_county(p, request)))

    async def set_policy(self, request: web.Request) -> web.Response:
        """`retention_days`, `quota_mb` (null: the installation's default), `replay_credits_lead` (bool)."""
        p = principal_of(request, Role.ADMIN)
        county = self._own_county(p, request)
        body = await _body(request)
        current = self._policy_json(county)
        retention = body.get("retention_days", current["retention_days"])
        quota = body.get("quota_mb", current["quota_mb"])
        try:
            await asyncio.to_thread(self.recordings.set_policy, county, _opt_int(retention, "retention_days"),
                                    _opt_int(quota, "quota_mb"))
        except ValueError as exc:
            raise Refusal(400, "bad_field", str(exc)) from None
        credits = body.get("replay_credits_lead")
        if credits is not None:
            if not isinstance(credits, bool):
                raise Refusal(400, "bad_field", "replay_credits_lead is true or false")
            await asyncio.to_thread(self.t.set_replay_credit, county, credits, p.sub)
        done = self._policy_json(county)
        self.store.audit(p.sub, p.role.value, "recording_policy", "admitted", address=request.remote,
                         reason=f"county {county}: retention {done['retention_days']} days, quota "
                         f"{done['quota_mb']} MB, replays credit the lead: {done['replay_credits_lead']}")
        return web.json_response(done)


def _opt_int(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Refusal(400, "bad_field", f"{name}: {str(value)[:20]!r} is not an integer") from None


def _day(value: str | None, name: str, tz: Any) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise Refusal(400, "bad_field", f"{name}: {value[:20]!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, dtime(0), tz)


def add_routes(app: web.Application, api: RecordingsApi) -> None:
    r = app.router
    r.add_get("/api/v1/recordings", api.list, name="sig.recordings")
    r.add_get("/api/v1/recordings/{id}", api.one, name="sig.recording")
    r.add_delete("/api/v1/recordings/{id}", api.delete, name="sig.recording_delete")
    r.add_put("/api/v1/lessons/{id}/recording", api.choose, name="sig.recording_choice")
    r.add_post("/api/v1/recordings/{id}/review", api.review, name="sig.recording_review")
    r.add_get("/api/v1/recordings/{id}/reviews", api.review_history, name="sig.recording_reviews")
    r.add_get("/api/v1/reviewers", api.list_reviewers, name="sig.reviewers")
    r.add_get("/api/v1/counties/{id}/recording-policy", api.get_policy, name="sig.recording_policy")
    r.add_put("/api/v1/counties/{id}/recording-policy", api.set_policy, name="sig.recording_policy_set")
    r.add_put("/api/v1/reviewers/{teacher_id}", api.grant_reviewer, name="sig.reviewer_grant")
    r.add_delete("/api/v1/reviewers/{teacher_id}", api.revoke_reviewer, name="sig.reviewer_revoke")
    r.add_get("/recordings/{id}/{part}", api.file, name="recording_file")
