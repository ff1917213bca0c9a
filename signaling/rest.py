"""The REST API of the school domain (documented with examples in docs/api.md).

Every handler is a thin shell: parse and validate the request, call `scheduler`, answer JSON. Bad
input gets HTTP 400/404/409/422 with `{"error": ..., "problems": [...]}` and changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from aiohttp import web

from scheduler.export import CONTENT_TYPES, KIND_LABELS, calendar_ics, report_csv, report_json, report_xlsx
from scheduler.model import Kind, Lesson, LessonDraft, LessonStatus, Level, School, Semester, Teacher
from scheduler.reports import SECTIONS, build_report
from scheduler.rules.calendar import current_semester
from scheduler.rules.workload import FactorTooLow, validate_factor
from scheduler.templates import template_xlsx
from scheduler.timetable import LessonRefused, NotFound, ReplayRefused, Timetable, problem_json
from signaling.access import community_may_watch

log = logging.getLogger(__name__)

TIMETABLE = web.AppKey("timetable", Timetable)
MAX_IMPORT_BYTES = 50 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(ValueError):
    pass


def error(status: int, message: str, problems: list[dict[str, Any]] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if problems is not None:
        body["problems"] = problems
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn the domain's refusals into clear HTTP answers; never let one crash the server."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except ReplayRefused as exc:  # the recording is missing or not approved for replay: a bad request
        body = {"error": exc.problems[0].message if exc.problems else str(exc), "code": exc.code,
                "problems": [problem_json(p) for p in exc.problems]}
        return web.json_response(body, status=400, dumps=_dumps)
    except LessonRefused as exc:
        return error(422, "the lesson breaks a rule", [problem_json(p) for p in exc.problems])
    except NotFound as exc:
        return error(404, str(exc))
    except sqlite3.IntegrityError as exc:
        log.info("refused write %s %s: %s", request.method, request.path, exc)  # the details stay in the log
        return error(409, "this change conflicts with data already stored (a duplicate or a missing reference)")
    except (BadRequest, FactorTooLow, ValueError, KeyError, TypeError) as exc:
        log.info("bad request %s %s: %s", request.method, request.path, exc)
        return error(400, str(exc) if not isinstance(exc, KeyError) else f"missing field {exc}")
    except Exception:
        log.exception("error in %s %s", request.method, request.path)
        return error(500, "internal error; the administrator can find details in the server log")


async def body_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None


async def body_object(request: web.Request, example: str) -> dict[str, Any]:
    data = await body_json(request)
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, e.g. {example}")
    return data


LIMIT_MAX = 10000


def _limit(request: web.Request, default: int = 1000) -> int:
    """`?limit=` between 1 and LIMIT_MAX (larger asks get LIMIT_MAX); 0, negatives and junk are refused."""
    value = _opt_int(request, "limit")
    if value is None:
        return default
    if value < 1:
        raise BadRequest(f"limit must be between 1 and {LIMIT_MAX}, not {value}")
    return min(value, LIMIT_MAX)


# what each entity's references name, for messages that do not echo SQLite's constraint names
REFERENCES: Mapping[str, str] = MappingProxyType({
    "cities": "region (region_id)",
    "counties": "city (city_id)",
    "schools": "county (county_id)",
    "classrooms": "school (school_id)",
    "teachers": "school (school_id)",
    "communities": "county (county_id) or member teacher (member_teacher_ids)",
})


def constraint_message(exc: sqlite3.IntegrityError, what: str, name: str) -> tuple[int, str]:
    """A clear HTTP status and message for a refused write, without SQLite's table and column names."""
    text = str(exc)
    thing = what[:-1] if what.endswith("s") else what
    thing = {"citie": "city", "countie": "county"}.get(thing, thing)
    if "UNIQUE" in text:
        return 409, f"there is already a {thing} named '{name}' there: choose another name"
    if "FOREIGN KEY" in text:
        return 400, f"the {REFERENCES.get(what, 'record')} this {thing} names does not exist"
    if "NOT NULL" in text:
        return 400, f"a {thing} needs every required field"
    return 400, f"this {thing} breaks a rule of the data (a value is out of range)"


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer, not {value!r}") from None


def _opt_int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    return None if value in (None, "") else _int(value, name)


def _moment(value: Any, tz: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO date and time, e.g. 2026-09-07T08:00")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} '{value}' is not a date and time (write 2026-09-07T08:00)") from None
    if len(value.strip()) <= 10 and "T" not in value and " " not in value.strip():
        raise BadRequest(f"{name} '{value}' has a date but no time")
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).astimezone(UTC)


class Api:
    """Handlers bound to one application's timetable."""

    def __init__(self, timetable: Timetable) -> None:
        self.t = timetable
        self.tz = timetable.config.tz

    # ---- representation ---------------------------------------------------------------------
    def lesson_json(self, lesson: Lesson) -> dict[str, Any]:
        opens, closes = self.t.window(lesson)
        return {
            "id": lesson.id,
            "kind": lesson.kind.value,
            "kind_label": KIND_LABELS[lesson.kind.value],
            "subject": lesson.subject,
            "grade": lesson.grade,
            "lead_teacher_id": lesson.lead_teacher_id,
            "lead_classroom_id": lesson.lead_classroom_id,
            "receiving_classroom_ids": list(lesson.receiving_classroom_ids),
            "community_id": lesson.community_id,
            "semester_id": lesson.semester_id,
            "series_id": lesson.series_id,
            "start": lesson.start.astimezone(self.tz).isoformat(),
            "end": lesson.end.astimezone(self.tz).isoformat(),
            "window_opens": opens.astimezone(self.tz).isoformat(),
            "window_closes": closes.astimezone(self.tz).isoformat(),
            "status": lesson.status.value,
            "hours": lesson.hours,
            "replay_of": lesson.replay_of,
            "credits_lead": lesson.credits_lead,
        }

    def draft(self, data: Any) -> LessonDraft:
        if not isinstance(data, dict):
            raise BadRequest("a lesson is a JSON object")
        start = _moment(data.get("start"), self.tz, "start")
        if data.get("replay_of") is not None:  # a replay (录播): the rest comes from the recorded lesson
            receivers = data.get("receiving_classroom_ids", [])
            if not isinstance(receivers, list):
                raise BadRequest("receiving_classroom_ids must be a list of ids")
            return self.t.replay_draft(
                _int(data.get("replay_of"), "replay_of"),
                [_int(x, "receiving_classroom_ids") for x in receivers],
                start,
                _moment(data.get("end"), self.tz, "end") if data.get("end") is not None else None,
            )
        end = _moment(data.get("end"), self.tz, "end")
        try:
            kind = Kind(data.get("kind"))
        except ValueError:
            raise BadRequest("kind must be specialised, master or famous_school") from None
        receivers = data.get("receiving_classroom_ids", [])
        if not isinstance(receivers, list):
            raise BadRequest("receiving_classroom_ids must be a list of ids")
        day = start.astimezone(self.tz).date()
        semester = next((s for s in self.t.repo.semesters() if s.start <= day <= s.end), None)
        community = data.get("community_id")
        if community is not None and not community_may_watch(kind):
            raise BadRequest(
                f"a research community (community_id) watches master lessons only; a {kind.value} lesson has "
                "no community: leave community_id out"
            )
        return LessonDraft(
            kind=kind,
            subject=str(data.get("subject") or "").strip() or _missing("subject"),
            grade=str(data.get("grade") or ""),
            lead_teacher_id=_int(data.get("lead_teacher_id"), "lead_teacher_id"),
            lead_classroom_id=_int(data.get("lead_classroom_id"), "lead_classroom_id"),
            start=start,
            end=end,
            receiving_classroom_ids=tuple(_int(x, "receiving_classroom_ids") for x in receivers),
            community_id=None if community is None else _int(community, "community_id"),
            semester_id=semester.id if semester else None,
            hours=None if data.get("hours") is None else _int(data.get("hours"), "hours"),
        )

    # ---- places and people ----------------------------------------------------------------
    async def list_entities(self, request: web.Request) -> web.Response:
        what = request.match_info["what"]
        repo = self.t.repo
        if what == "regions":
            data: list[Any] = [_dc(x) for x in repo.regions()]
        elif what == "cities":
            data = [_dc(x) for x in repo.cities()]
        elif what == "counties":
            data = [_dc(x) for x in repo.counties()]
        elif what == "schools":
            data = [_dc(x) for x in repo.schools(_opt_int(request, "county_id"))]
        elif what == "classrooms":
            data = [_dc(x) for x in repo.classrooms(_opt_int(request, "school_id"))]
        elif what == "teachers":
            data = [_dc(x) for x in repo.teachers(_opt_int(request, "school_id"))]
        elif what == "semesters":
            data = [_semester_json(x) for x in repo.semesters()]
        elif what == "communities":
            data = [_dc(x) for x in repo.communities()]
        else:
            raise web.HTTPNotFound()
        return ok(data)

    async def create_entity(self, request: web.Request) -> web.Response:
        what = request.match_info["what"]
        data = await body_json(request)
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        repo = self.t.repo
        name = str(data.get("name") or "").strip()
        if not name:
            raise BadRequest("name is required")
        try:
            with self.t.db.write() as conn:
                if what == "regions":
                    new_id = repo.add_region(conn, name)
                elif what == "cities":
                    new_id = repo.add_city(conn, _int(data.get("region_id"), "region_id"), name)
                elif what == "counties":
                    factor = float(data.get("workload_factor", self.t.config.default_workload_factor))
                    new_id = repo.add_county(conn, _int(data.get("city_id"), "city_id"), name, validate_factor(factor))
                elif what == "schools":
                    new_id = repo.add_school(
                        conn,
                        School(
                            0,
                            _int(data.get("county_id"), "county_id"),
                            name,
                            bool(data.get("is_lead", False)),
                            bool(data.get("is_receiving", False)),
                            bool(data.get("is_teaching_point", False)),
                            float(data.get("bandwidth_mbps", 100.0)),
                        ),
                    )
                elif what == "classrooms":
                    new_id = repo.add_classroom(conn, _int(data.get("school_id"), "school_id"), name)
                elif what == "teachers":
                    subjects = data.get("subjects", [])
                    if not isinstance(subjects, list):
                        raise BadRequest("subjects must be a list")
                    new_id = repo.add_teacher(
                        conn,
                        Teacher(
                            0,
                            _int(data.get("school_id"), "school_id"),
                            name,
                            Level(data.get("level", "none")),
                            tuple(str(s) for s in subjects),
                        ),
                    )
                elif what == "semesters":
                    holidays = data.get("holidays", [])
                    if not isinstance(holidays, list):
                        raise BadRequest("holidays must be a list of dates")
                    makeups = data.get("makeup_days", [])
                    if not isinstance(makeups, list):
                        raise BadRequest("makeup_days must be a list of dates")
                    days = {date.fromisoformat(str(h)) for h in holidays}
                    new_id = repo.add_semester(
                        conn,
                        Semester(
                            0,
                            name,
                            date.fromisoformat(str(data["start"])),
                            date.fromisoformat(str(data["end"])),
                            frozenset(days),
                            frozenset(date.fromisoformat(str(m)) for m in makeups),
                        ),
                    )
                elif what == "communities":
                    members = data.get("member_teacher_ids", [])
                    new_id = repo.add_community(
                        conn, _int(data.get("county_id"), "county_id"), name, [_int(m, "member") for m in members]
                    )
                else:
                    raise web.HTTPNotFound()
        except sqlite3.IntegrityError as exc:
            status, message = constraint_message(exc, what, name)
            return error(status, f"cannot create it: {message}")
        return ok({"id": new_id}, status=201)

    async def update_entity(self, request: web.Request) -> web.Response:
        """PATCH a teacher (name, level, subjects) or a school (name, roles, bandwidth)."""
        what = request.match_info["what"]
        ident = _int(request.match_info["id"], "id")
        data = await body_json(request)
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        changes: dict[str, object] = {}
        for key, value in data.items():
            if key == "name":
                changes[key] = str(value).strip() or _missing("name")
            elif key == "level":
                changes[key] = Level(value).value
            elif key == "subjects":
                if not isinstance(value, list):
                    raise BadRequest("subjects must be a list")
                changes[key] = ",".join(str(s) for s in value)
            elif key in ("is_lead", "is_receiving", "is_teaching_point"):
                if not isinstance(value, bool):
                    raise BadRequest(f"{key} must be true or false")
                changes[key] = int(value)
            elif key == "bandwidth_mbps":
                changes[key] = float(value)
                if not 0 < float(value) < 1e6:
                    raise BadRequest("bandwidth_mbps must be positive")
            else:
                changes[key] = value  # the repository names what cannot be changed
        try:
            with self.t.db.write() as conn:
                update = self.t.repo.update_teacher if what == "teachers" else self.t.repo.update_school
                found = update(conn, ident, changes)
        except sqlite3.IntegrityError as exc:
            status, message = constraint_message(exc, what, str(changes.get("name", "")))
            return error(status, f"cannot change #{ident}: {message}")
        if not found:
            raise NotFound(f"no {what[:-1]} #{ident}")
        rows = self.t.repo.teachers() if what == "teachers" else self.t.repo.schools()
        return ok(next(_dc(x) for x in rows if x.id == ident))

    async def set_factor(self, request: web.Request) -> web.Response:
        data = await body_json(request)
        county_id = _int(request.match_info["id"], "id")
        if not isinstance(data, dict) or "workload_factor" not in data:
            raise BadRequest('send {"workload_factor": 1.5}')
        since = date.fromisoformat(str(data["since"])) if data.get("since") else None
        day = self.t.set_county_factor(county_id, data["workload_factor"], since, _account(request))
        return ok({"county_id": county_id, "workload_factor": float(data["workload_factor"]), "since": day})

    async def set_lesson_length(self, request: web.Request) -> web.Response:
        data = await body_json(request)
        county_id = _int(request.match_info["id"], "id")
        if not isinstance(data, dict) or "standard_lesson_minutes" not in data:
            raise BadRequest('send {"standard_lesson_minutes": 40}')
        minutes = self.t.set_standard_minutes(county_id, data["standard_lesson_minutes"], _account(request))
        return ok({"county_id": county_id, "standard_lesson_minutes": minutes})

    # ---- lessons --------------------------------------------------------------------------------
    async def list_lessons(self, request: web.Request) -> web.Response:
        q = request.query
        statuses = [LessonStatus(s) for s in q["status"].split(",")] if q.get("status") else None
        lessons = self.t.repo.lessons(
            start=_moment(q["from"], self.tz, "from") if q.get("from") else None,
            end=_moment(q["to"], self.tz, "to") if q.get("to") else None,
            teacher_id=_opt_int(request, "teacher_id"),
            classroom_id=_opt_int(request, "classroom_id"),
            school_id=_opt_int(request, "school_id"),
            statuses=statuses,
            limit=_limit(request),
        )
        return ok([self.lesson_json(x) for x in lessons])

    async def get_lesson(self, request: web.Request) -> web.Response:
        lesson = self.t.repo.lesson(_int(request.match_info["id"], "id"))
        if lesson is None:
            raise NotFound(f"no lesson #{request.match_info['id']}")
        return ok(self.lesson_json(lesson))

    async def create_lessons(self, request: web.Request) -> web.Response:
        data = await body_json(request)
        items = data if isinstance(data, list) else [data]
        drafts = [self.draft(x) for x in items]
        if request.query.get("dry_run") in ("1", "true"):
            problems = self.t.check([(None, d) for d in drafts])
            errors = [p for p in problems if p.severity == "error"]
            return ok({"ok": not errors, "problems": [problem_json(p) for p in problems]})
        lessons, warnings = self.t.add_lessons(drafts)
        return ok(
            {"lessons": [self.lesson_json(x) for x in lessons], "warnings": [problem_json(p) for p in warnings]},
            status=201,
        )

    async def cancel_lesson(self, request: web.Request) -> web.Response:
        data = await body_object(request, '{"reason": "..."}')
        lesson = self.t.cancel(_int(request.match_info["id"], "id"), _account(request), str(data.get("reason", "")))
        return ok(self.lesson_json(lesson))

    async def evidence(self, request: web.Request) -> web.Response:
        data = await body_json(request)
        if not isinstance(data, dict):
            raise BadRequest("evidence is a JSON object")
        attendance = data.get("attendance", {})
        if not isinstance(attendance, dict):
            raise BadRequest("attendance maps classroom ids to attended minutes")
        teachers = data.get("teacher_attendance", {})
        if not isinstance(teachers, dict):
            raise BadRequest("teacher_attendance maps community members' teacher ids to attended minutes")
        lead = data.get("lead_minutes")
        lesson = self.t.record_evidence(
            _int(request.match_info["id"], "id"),
            None if lead is None else float(lead),
            {_int(k, "classroom id"): float(v) for k, v in attendance.items()},
            str(data.get("source", "api")),
            {_int(k, "teacher id"): float(v) for k, v in teachers.items()},
        )
        return ok(self.lesson_json(lesson))

    async def correct(self, request: web.Request) -> web.Response:
        """One lesson's correction, or (POST /api/v1/corrections with lesson_ids) many as one operation. Who
        made it is the authenticated account, never a name in the body."""
        data = await body_json(request)
        if not isinstance(data, dict):
            raise BadRequest("a correction is a JSON object")
        ident = request.match_info.get("id")
        ids = [_int(ident, "id")] if ident else _ids(data.get("lesson_ids"), "lesson_ids")
        lessons = self.t.correct_many(
            ids,
            LessonStatus(data.get("status")),
            _account(request),
            str(data.get("reason", "")),
            _opt_ids(data.get("classroom_ids"), "classroom_ids"),
        )
        if ident:
            return ok(self.lesson_json(lessons[0]))
        return ok({"lessons": [self.lesson_json(x) for x in lessons]})

    async def correct_attendance(self, request: web.Request) -> web.Response:
        data = await body_json(request)
        if not isinstance(data, dict) or not isinstance(data.get("attended"), bool):
            raise BadRequest('send {"classroom_id": 7, "attended": true, "reason": "..."}')
        lesson = self.t.correct_attendance(
            _int(request.match_info["id"], "id"),
            _int(data.get("classroom_id"), "classroom_id"),
            data["attended"],
            _account(request),
            str(data.get("reason", "")),
        )
        return ok(self.lesson_json(lesson))

    async def settle(self, request: web.Request) -> web.Response:
        """Lessons entered after their time, settled by the administrator in one operation."""
        data = await body_json(request)
        if not isinstance(data, dict):
            raise BadRequest('send {"lesson_ids": [...], "how": "evidence"|"delivered"|"missed", "reason": "..."}')
        lessons = self.t.settle_awaiting(
            _ids(data.get("lesson_ids"), "lesson_ids"),
            str(data.get("how", "")),
            _account(request),
            str(data.get("reason", "")),
            _opt_ids(data.get("classroom_ids"), "classroom_ids"),
        )
        return ok({"lessons": [self.lesson_json(x) for x in lessons]})

    async def corrections(self, request: web.Request) -> web.Response:
        ident = request.match_info.get("id")
        lesson_id = _int(ident, "id") if ident else _opt_int(request, "lesson_id")
        rows = self.t.repo.corrections(lesson_id)
        for key in ("actor", "kind", "batch"):
            if request.query.get(key):
                rows = [r for r in rows if str(r.get(key)) == request.query[key]]
        return ok(rows)

    async def ledger(self, request: web.Request) -> web.Response:
        lesson_id = request.match_info.get("id")
        entries = self.t.repo.ledger(
            lesson_id=_int(lesson_id, "id") if lesson_id else _opt_int(request, "lesson_id"),
            teacher_id=_opt_int(request, "teacher_id"),
        )
        return ok([{**_dc(e), "created_at": e.created_at.isoformat()} for e in entries])

    async def import_evidence(self, request: web.Request) -> web.Response:
        """Attendance from a recording system (CSV or XLSX) for lessons awaiting evidence; `settle=1` settles
        them from it at once."""
        filename, data = await _upload(request, "evidence.csv")
        q = request.query
        result = await asyncio.to_thread(
            lambda: self.t.import_evidence(
                data,
                filename,
                _account(request),
                dry_run=q.get("dry_run") in ("1", "true"),
                settle=q.get("settle") in ("1", "true"),
            )
        )
        return ok(result.to_json(), status=200 if result.ok else 422)

    async def import_directory(self, request: web.Request) -> web.Response:
        """Counties, schools, classrooms, teachers, communities, semesters and holidays from XLSX or CSV."""
        filename, data = await _upload(request, "directory.xlsx")
        dry_run = request.query.get("dry_run") in ("1", "true")
        result = await asyncio.to_thread(self.t.import_directory, data, filename, _account(request), dry_run)
        return ok(result.to_json(), status=200 if result.ok else 422)

    async def template(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await asyncio.to_thread(template_xlsx, name)
        filename = {"directory": "名册模板.xlsx", "timetable": "课表模板.xlsx", "evidence": "出勤证据模板.xlsx"}[name]
        return web.Response(
            body=body,
            headers={
                "Content-Type": CONTENT_TYPES["xlsx"],
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            },
        )

    async def import_timetable(self, request: web.Request) -> web.Response:
        filename, data = await _upload(request, "timetable.csv")
        dry_run = request.query.get("dry_run") in ("1", "true")
        result = await asyncio.to_thread(self.t.import_csv, data, filename, _actor(request, {}), dry_run)
        return ok(result.to_json(), status=200 if result.ok else 422)

    async def list_offline(self, request: web.Request) -> web.Response:
        return ok(self.t.repo.offline_activities(_opt_int(request, "school_id")))

    async def add_offline(self, request: web.Request) -> web.Response:
        data = await body_json(request)
        if not isinstance(data, dict):
            raise BadRequest("an activity is a JSON object")
        title = str(data.get("title") or "").strip() or _missing("title")
        receiving = data.get("receiving_school_id")
        try:
            with self.t.db.write() as conn:
                new_id = self.t.repo.add_offline_activity(
                    conn,
                    _int(data.get("lead_school_id"), "lead_school_id"),
                    None if receiving is None else _int(receiving, "receiving_school_id"),
                    date.fromisoformat(str(data.get("day"))),
                    title,
                    str(data.get("note") or ""),
                    _actor(request, data),
                )
        except sqlite3.IntegrityError:
            raise NotFound("no such school") from None
        return ok({"id": new_id}, status=201)

    # ---- reports and calendars ------------------------------------------------------------
    async def report(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        semesters = self.t.repo.semesters()
        if not semesters:
            raise NotFound("no semester yet: create one first")
        today = datetime.now(self.tz).date()
        if q.get("as_of"):
            today = date.fromisoformat(q["as_of"])
        semester_id = _opt_int(request, "semester_id")
        if semester_id is not None:
            semester = next((s for s in semesters if s.id == semester_id), None)
            if semester is None:
                raise NotFound(f"no semester #{semester_id}")
        else:
            semester = current_semester(semesters, today) or semesters[0]
        fmt = q.get("format", "json")
        lang = q.get("lang", "zh")
        sections = [s for s in q.get("section", ",".join(SECTIONS)).split(",") if s]
        for s in sections:
            if s not in SECTIONS:
                raise BadRequest(f"unknown section '{s}' (one of {', '.join(SECTIONS)})")
        report = await asyncio.to_thread(build_report, self.t.db, self.t.config, semester, today)
        if fmt == "json":
            body = report_json(report, sections)
        elif fmt == "csv":
            if len(sections) != 1:
                raise BadRequest("a CSV report holds one section: add section=teachers (or schools, workload, ...)")
            body = report_csv(report, sections[0], lang)
        elif fmt == "xlsx":
            body = await asyncio.to_thread(report_xlsx, report, sections, lang)
        else:
            raise BadRequest("format must be json, csv or xlsx")
        name = f"report-{semester.name}-{'-'.join(sections) if len(sections) < 4 else 'all'}.{fmt}"
        return web.Response(
            body=body,
            headers={
                "Content-Type": CONTENT_TYPES[fmt],
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            },
        )

    async def calendar(self, request: web.Request) -> web.Response:
        what = request.match_info["what"]
        ident = _int(request.match_info["id"], "id")
        if what == "teachers":
            lessons = self.t.repo.lessons(teacher_id=ident, limit=100_000)
            name = next((t.name for t in self.t.repo.teachers() if t.id == ident), None)
        else:
            lessons = self.t.repo.lessons(classroom_id=ident, limit=100_000)
            name = next((c.name for c in self.t.repo.classrooms() if c.id == ident), None)
        if name is None:
            raise NotFound(f"no {what[:-1]} #{ident}")
        rooms = {c.id: c for c in self.t.repo.classrooms()}
        schools = {s.id: s.name for s in self.t.repo.schools()}
        events = []
        for x in lessons:
            lead = rooms[x.lead_classroom_id]
            receivers = "、".join(f"{schools[rooms[c].school_id]}{rooms[c].name}" for c in x.receiving_classroom_ids)
            events.append(
                {
                    "id": x.id,
                    "start": x.start,
                    "end": x.end,
                    "summary": f"{KIND_LABELS[x.kind.value]} {x.subject} {x.grade}".strip(),
                    "description": f"主讲: {schools[lead.school_id]}{lead.name}; 接收: {receivers}",
                    "location": f"{schools[lead.school_id]} {lead.name}",
                    "status": x.status.value,
                }
            )
        body = calendar_ics(name, events, (request.host or "live-classroom").split(":")[0])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPES["ics"]})


async def _upload(request: web.Request, default_name: str) -> tuple[str, bytes]:
    """The file of an import: the request body itself, or the form field `file` of a browser upload."""
    filename = request.query.get("filename", default_name)
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        part = await reader.next()
        while part is not None and getattr(part, "name", None) != "file":
            part = await reader.next()
        if part is None:
            raise BadRequest("send the file as the form field 'file'")
        filename = getattr(part, "filename", None) or filename
        data = await part.read(decode=False)  # type: ignore[union-attr]
    else:
        data = await request.read()
    if len(data) > MAX_IMPORT_BYTES:
        raise BadRequest("the file is over 50 MiB")
    return filename, bytes(data)


def _missing(name: str) -> str:
    raise BadRequest(f"{name} is required")


def _account(request: web.Request) -> str:
    """The authenticated account that makes a change (set by the access layer), never free text."""
    return str(request.get("actor") or "admin")


def _ids(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{name} must be a non-empty list of ids")
    return [_int(x, name) for x in value]


def _opt_ids(value: Any, name: str) -> list[int] | None:
    return None if value is None else ([_int(x, name) for x in value] if isinstance(value, list) else _ids(value, name))


def _actor(request: web.Request, data: Any) -> str:
    who = data.get("actor") if isinstance(data, dict) else None
    return str(who or request.get("actor") or "admin")


def _dc(obj: Any) -> dict[str, Any]:
    out = dataclasses.asdict(obj)
    for k, v in out.items():
        if isinstance(v, tuple):
            out[k] = list(v)
    return out


def _semester_json(s: Semester) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "start": s.start.isoformat(),
        "end": s.end.isoformat(),
        "holidays": sorted(d.isoformat() for d in s.holidays),
        "makeup_days": sorted(d.isoformat() for d in s.makeup_days),
    }


def add_routes(app: web.Application, timetable: Timetable) -> None:
    api = Api(timetable)
    r = app.router
    entities = "{what:regions|cities|counties|schools|classrooms|teachers|semesters|communities}"
    r.add_get(f"/api/v1/{entities}", api.list_entities)
    r.add_post(f"/api/v1/{entities}", api.create_entity)
    r.add_put("/api/v1/counties/{id}/workload-factor", api.set_factor)
    r.add_put("/api/v1/counties/{id}/lesson-length", api.set_lesson_length)
    r.add_patch("/api/v1/{what:teachers|schools}/{id}", api.update_entity)
    r.add_get("/api/v1/lessons", api.list_lessons)
    r.add_post("/api/v1/lessons", api.create_lessons)
    r.add_get("/api/v1/lessons/{id}", api.get_lesson)
    r.add_post("/api/v1/lessons/{id}/cancel", api.cancel_lesson)
    r.add_post("/api/v1/lessons/{id}/evidence", api.evidence)
    r.add_post("/api/v1/lessons/settle", api.settle)
    r.add_post("/api/v1/lessons/{id}/corrections", api.correct)
    r.add_get("/api/v1/lessons/{id}/corrections", api.corrections)
    r.add_post("/api/v1/lessons/{id}/attendance-corrections", api.correct_attendance)
    r.add_post("/api/v1/corrections", api.correct)
    r.add_get("/api/v1/corrections", api.corrections)
    r.add_get("/api/v1/lessons/{id}/ledger", api.ledger)
    r.add_get("/api/v1/ledger", api.ledger)
    r.add_post("/api/v1/timetable/import", api.import_timetable)
    r.add_post("/api/v1/evidence/import", api.import_evidence)
    r.add_post("/api/v1/directory/import", api.import_directory)
    r.add_get("/api/v1/templates/{name:directory|timetable|evidence}.xlsx", api.template)
    r.add_get("/api/v1/reports", api.report)
    r.add_get("/api/v1/offline-activities", api.list_offline)
    r.add_post("/api/v1/offline-activities", api.add_offline)
    r.add_get("/api/v1/{what:teachers|classrooms}/{id}/calendar.ics", api.calendar)
