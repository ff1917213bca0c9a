"""HTTP side of access control: who is calling (middleware), logins, enrolment, join tokens, accounts,
enrolment links, audit, revocation, and the security headers of every response.

Routes named `sig.*` decide access themselves; every other `/api/` route (the school domain's REST
API) is for administrators: the administrator's bearer token from the data folder, or an admin login.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from monitoring.history import lesson_attendance, lesson_summary
from scheduler.model import Lesson
from scheduler.timetable import Timetable
from signaling import protocol
from signaling.access import LessonFacts, check_window, community_may_watch, in_scope, may_issue
from signaling.config import SignalingConfig
from signaling.hub import Hub
from signaling.passwords import MIN_LENGTH, WeakPassword
from signaling.ratelimit import RateLimiter
from signaling.rest import Handler, error, ok
from signaling.store import AccessStore
from signaling.tokens import Claims, Role, TokenRefused, TokenService, TokenType

log = logging.getLogger(__name__)

PRINCIPAL = "principal"  # request key: the caller's Claims, or None
STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "index.html", "/login": "login.html", "/teacher": "teacher.html", "/classroom": "classroom.html",
         "/admin": "admin.html", "/tech": "tech.html", "/player": "player.html"}


def admin_claims() -> Claims:
    """The administrator's bearer token from the data folder, seen as an admin principal."""
    return Claims(jti="admin-token", typ=TokenType.SESSION, role=Role.ADMIN, sub="admin-token", iat=0, exp=2**62)


def auth_middleware(admin_token: str, tokens: TokenService, store: AccessStore) -> Any:
    expected = admin_token.encode()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        principal: Claims | None = None
        refusal: TokenRefused | None = None
        if given and hmac.compare_digest(given.encode(), expected):
            principal = admin_claims()
        elif given:
            try:
                principal = tokens.verify(given, (TokenType.SESSION, TokenType.DEVICE))
                # a disabled account, a reset password, a replaced device: refused from that second on
                store.check_current(principal)
            except TokenRefused as exc:
                principal = None
                refusal = exc
        request[PRINCIPAL] = principal
        route = request.match_info.route.name or ""
        if route.startswith("sig."):
            if refusal is not None and not route.startswith("sig.open."):
                return _refused(401, refusal)
            return await handler(request)
        if principal is None or principal.role != Role.ADMIN:
            log.warning("refused %s %s from %s: not an administrator", request.method, request.path, request.remote)
            if refusal is not None:
                return _refused(401, refusal)
            return error(401 if principal is None else 403, "this needs an administrator (Authorization: Bearer ...)")
        request["actor"] = principal.sub
        return await handler(request)

    return auth


def security_headers(tls: bool, hsts: bool) -> Any:
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )

    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        h = response.headers
        h.setdefault("Content-Security-Policy", csp)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault(
            "Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self)"
        )
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.path.startswith("/api/"):
            h.setdefault("Cache-Control", "no-store")
        if tls and hsts:
            h.setdefault("Strict-Transport-Security", "max-age=31536000")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    return headers


def _refused(status: int, exc: TokenRefused) -> web.Response:
    return web.json_response({"error": exc.message, "code": exc.code}, status=status)


class AccessApi:
    def __init__(
        self,
        timetable: Timetable,
        tokens: TokenService,
        store: AccessStore,
        hub: Hub,
        config: SignalingConfig,
        admin_token: str,
    ) -> None:
        self.t = timetable
        self.tokens = tokens
        self.store = store
        self.hub = hub
        self.config = config
        self.admin_token = admin_token
        self.login_limiter = RateLimiter(config.login_per_minute, config.login_burst, config.rate_limit_addresses)
        # failed logins per username, from any address: guessing spread over many addresses stops too
        self.account_limiter = RateLimiter(config.login_failures_per_account_per_minute,
                                           config.login_failures_per_account_burst, config.rate_limit_addresses)

    # ---- helpers ------------------------------------------------------------------------------
    def _principal(self, request: web.Request, *roles: Role) -> Claims:
        return principal_of(request, *roles)

    def _lesson_json(self, lesson: Lesson, now: float, my_role: str = "") -> dict[str, Any]:
        opens, closes = self.t.window(lesson)
        tz = self.t.config.tz
        names = self.hub.classroom_names(LessonFacts(lesson, 0, 0))
        return {
            "id": lesson.id,
            "kind": lesson.kind.value,
            "subject": lesson.subject,
            "grade": lesson.grade,
            "status": lesson.status.value,
            "start": lesson.start.astimezone(tz).isoformat(),
            "end": lesson.end.astimezone(tz).isoformat(),
            "window_opens": opens.astimezone(tz).isoformat(),
            "window_closes": closes.astimezone(tz).isoformat(),
            "window_open": opens.timestamp() <= now < closes.timestamp()
            and lesson.status.value in ("scheduled", "open", "live"),
            "lead": names.get(lesson.lead_classroom_id, ""),
            "lead_teacher_id": lesson.lead_teacher_id,
            "receivers": [{"classroom_id": c, "name": names.get(c, "")} for c in lesson.receiving_classroom_ids],
            "live": lesson.id in self.hub.lessons,
            "my_role": my_role,
        }

    # ---- open routes --------------------------------------------------------------------------
    async def client_config(self, request: web.Request) -> web.Response:
        # the district's time zone: pages show lesson times and alert times in it, whatever the PC's clock says
        return ok({"protocol": protocol.VERSION, "ice_servers": self.hub.ice_servers, "languages": ["zh", "en"],
                   "timezone": str(self.t.config.tz)})

    async def login(self, request: web.Request) -> web.Response:
        address = request.remote or ""
        if not self.login_limiter.allow(address):
            self.store.audit("unknown", "", "login", "refused", address=address, reason="rate_limited")
            retry = max(1, round(self.login_limiter.retry_after(address)))
            return web.json_response(
                {"error": "too many login attempts; wait a minute", "code": "rate_limited"},
                status=429,
                headers={"Retry-After": str(retry)},
            )
        data = await _body(request)
        if isinstance(data.get("admin_token"), str):
            if not hmac.compare_digest(data["admin_token"].strip().encode(), self.admin_token.encode()):
                self.store.audit("admin-token", "admin", "login", "refused", address=address, reason="bad_token")
                return error(401, "wrong administrator token")
            sub, role, extra = "admin-token", Role.ADMIN, {}
        else:
            username, password = data.get("username"), data.get("password")
            if not isinstance(username, str) or not isinstance(password, str) or len(password) > 1024:
                return error(400, "send username and password")
            key = username.strip().lower()[:64]
            if not self.account_limiter.has_room(key):
                self.store.audit(f"login:{username[:64]}", "", "login", "refused", address=address,
                                 reason="account_rate_limited")
                retry = max(1, round(self.account_limiter.retry_after(key)))
                return web.json_response(
                    {"error": "too many failed logins for this account; wait a few minutes", "code": "rate_limited"},
                    status=429,
                    headers={"Retry-After": str(retry)},
                )
            account = self.store.check_login(username, password)
            if account is None:
                self.account_limiter.allow(key)
                # the reason stays vague on purpose: it must not tell which usernames exist
                self.store.audit(f"login:{username[:64]}", "", "login", "refused", address=address,
                                 reason="bad_credentials")
                return web.json_response({"error": "wrong username or password", "code": "bad_credentials"},
                                         status=401)
            sub = f"account:{account.id}"
            role = {"admin": Role.ADMIN, "teacher": Role.TEACHER, "technician": Role.TECHNICIAN}[account.role]
            extra = {"teacher_id": account.teacher_id, "county_id": account.county_id, "account_id": account.id,
                     "region_id": account.region_id, "generation": account.generation}
        expires = self.tokens.clock() + self.config.session_hours * 3600
        token, claims = self.tokens.issue(TokenType.SESSION, role, sub, expires_at=expires, **extra)
        self.store.audit(sub, role.value, "login", "admitted", address=address)
        return ok({"token": token, "role": role.value, "expires": claims.exp, "teacher_id": claims.teacher_id})

    async def logout(self, request: web.Request) -> web.Response:
        principal = self._principal(request)
        if principal.jti != "admin-token":
            self.tokens.revoke(principal, principal.sub, "logout")
        return ok({"ok": True})

    async def enrol(self, request: web.Request) -> web.Response:
        """A classroom PC opens its enrolment link: it becomes the classroom's device, replacing any other."""
        address = request.remote or ""
        if not self.hub.join_limiter.allow(address):
            return web.json_response({"error": "too many attempts; wait a minute", "code": "rate_limited"},
                                     status=429)
        data = await _body(request)
        try:
            claims = self.tokens.verify(data.get("token"), (TokenType.ENROL,))
            row = self.store.enrolment(claims.jti)
            if row is None or row["revoked_at"] is not None:
                raise TokenRefused("revoked", "this enrolment link has been withdrawn")
        except TokenRefused as exc:
            peek = self.tokens.peek(data["token"]) if isinstance(data.get("token"), str) else None
            self.store.audit(peek.sub if peek else "unknown", "receiver", "enrol", "refused", address=address,
                             reason=exc.code)
            return _refused(403, exc)
        cid = claims.classroom_id
        assert cid is not None
        device_id, replaced = self.store.enrol_device(cid, address)
        self.store.audit(claims.sub, "receiver", "enrol", "admitted", address=address,
                         reason=f"device {device_id}" + (f" replaces device {replaced}" if replaced else ""))
        if replaced:
            self.store.audit(claims.sub, "receiver", "device_replaced", "replaced", address=address,
                             reason=f"device {replaced} replaced by {device_id}")
            closed = self.hub.kick_classroom(cid, "replaced", keep_device=device_id)
            self.store.audit(claims.sub, "receiver", "device_replaced", "done", address=address,
                             reason=f"{closed} live connection(s) of device {replaced} closed")
        expires = self.tokens.clock() + self.config.device_days * 86400
        token, _ = self.tokens.issue(TokenType.DEVICE, Role.RECEIVER, claims.sub, expires_at=expires,
                                     classroom_id=cid, device_id=device_id)
        return ok({"device_token": token, "classroom_id": cid, "name": self._classroom_name(cid),
                   "replaced_device": replaced is not None})

    def _classroom_name(self, classroom_id: int) -> str:
        rooms = {c.id: c for c in self.t.repo.classrooms()}
        schools = {s.id: s.name for s in self.t.repo.schools()}
        c = rooms.get(classroom_id)
        return f"{schools.get(c.school_id, '')} {c.name}".strip() if c else ""

    # ---- a logged-in person or an enrolled device ---------------------------------------------
    async def me(self, request: web.Request) -> web.Response:
        p = self._principal(request)
        out = p.to_json()
        if p.classroom_id is not None:
            out["name"] = self._classroom_name(p.classroom_id)
        if p.teacher_id is not None:
            out["name"] = next((t.name for t in self.t.repo.teachers() if t.id == p.teacher_id), "")
        return ok(out)

    async def my_lessons(self, request: web.Request) -> web.Response:
        p = self._principal(request, Role.TEACHER, Role.RECEIVER, Role.ADMIN)
        self._check_device(p)
        tz = self.t.config.tz
        now = self.tokens.clock()
        day = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
        days = min(max(int(request.query.get("days", "1") or 1), 1), 14)
        start, end = day.astimezone(UTC), (day + timedelta(days=days)).astimezone(UTC)
        roles: dict[int, str] = {}
        if p.typ == TokenType.DEVICE:
            lessons = [x for x in self.t.repo.lessons(start=start, end=end, classroom_id=p.classroom_id)
                       if p.classroom_id in x.receiving_classroom_ids]
            roles = {x.id: "receiver" for x in lessons}
        elif p.role == Role.TEACHER:
            lessons = self.t.repo.lessons(start=start, end=end, teacher_id=p.teacher_id)
            roles = {x.id: "lead" for x in lessons}
            # master lessons of the research communities this teacher belongs to: watched as an observer
            communities = {c.id for c in self.t.repo.communities() if p.teacher_id in c.member_teacher_ids}
            if communities:
                watched = [x for x in self.t.repo.lessons(start=start, end=end, limit=5000)
                           if x.community_id in communities and community_may_watch(x.kind) and x.id not in roles]
                roles.update({x.id: "observer" for x in watched})
                lessons = sorted([*lessons, *watched], key=lambda x: x.start)
        else:
            lessons = self.t.repo.lessons(start=start, end=end, limit=500)
            roles = {x.id: "lead" for x in lessons}
        return ok([self._lesson_json(x, now, roles.get(x.id, "")) for x in lessons if x.status.value != "cancelled"])

    def _check_device(self, p: Claims) -> None:
        if p.typ == TokenType.DEVICE and (
            p.classroom_id is None or self.store.current_device(p.classroom_id) != p.device_id
        ):
            raise Refusal(401, "device_replaced", "another device has been enrolled for this classroom")

    async def join_token(self, request: web.Request) -> web.Response:
        """A join token for one lesson, valid only in its window; refusals are audited."""
        p = self._principal(request)
        lesson_id = _int(request.match_info["id"])
        data = await _body(request) if request.can_read_body else {}
        default = Role.RECEIVER if p.typ == TokenType.DEVICE else Role.LEAD if p.role == Role.TEACHER else None
        try:
            role = Role(data.get("role") or (default.value if default else ""))
        except ValueError:
            return error(400, "role is lead, receiver or observer")
        classroom_id = p.classroom_id if p.typ == TokenType.DEVICE else data.get("classroom_id")
        if classroom_id is not None and (isinstance(classroom_id, bool) or not isinstance(classroom_id, int)):
            return error(400, "classroom_id must be an integer")
        facts = self.hub.facts(lesson_id)
        try:
            if role not in (Role.LEAD, Role.RECEIVER, Role.OBSERVER):
                raise TokenRefused("not_entitled", "join tokens are for lead, receiver or observer")
            self._check_device(p)
            if facts is None:
                raise TokenRefused("unknown_lesson", f"no lesson #{lesson_id}")
            via = may_issue(role, p, facts, classroom_id)
            check_window(facts, self.tokens.clock())
        except Refusal as exc:
            self.store.audit(p.sub, role.value, "join_token", "refused", lesson_id=lesson_id,
                             address=request.remote, reason=exc.code)
            raise
        except TokenRefused as exc:
            self.store.audit(p.sub, role.value, "join_token", "refused", lesson_id=lesson_id,
                             address=request.remote, reason=exc.code)
            return _refused(403, exc)
        lesson = facts.lesson
        token, claims = self.tokens.issue(
            TokenType.JOIN,
            role,
            p.sub if p.typ != TokenType.DEVICE else f"classroom:{classroom_id}",
            expires_at=facts.closes,
            not_before=facts.opens,
            lesson_id=lesson.id,
            classroom_id=classroom_id if role == Role.RECEIVER else None,
            teacher_id=lesson.lead_teacher_id if role == Role.LEAD else p.teacher_id,
            device_id=p.device_id,
            # bound to the credential it came from: a disabled account or replaced device ends it too
            account_id=p.account_id,
            generation=p.generation,
            via=via.value,
        )
        self.store.audit(p.sub, role.value, "join_token", "issued", lesson_id=lesson_id, address=request.remote)
        return ok({"token": token, "role": role.value, "lesson_id": lesson.id, "expires": claims.exp,
                   "not_before": claims.nbf})

    # ---- administration -----------------------------------------------------------------------
    async def list_accounts(self, request: web.Request) -> web.Response:
        self._principal(request, Role.ADMIN)
        return ok([a.to_json() for a in self.store.accounts()])

    async def create_account(self, request: web.Request) -> web.Response:
        p = self._principal(request, Role.ADMIN)
        data = await _body(request)
        try:
            account = self.store.create_account(
                str(data.get("username", "")),
                str(data.get("password", "")),
                str(data.get("role", "")),
                _opt(data.get("teacher_id")),
                _opt(data.get("county_id")),
                _opt(data.get("region_id")),
            )
        except (ValueError, WeakPassword) as exc:
            return error(400, str(exc))
        self.store.audit(p.sub, "admin", "account_create", "done", reason=f"account {account.id} {account.role}")
        return ok(account.to_json(), status=201)

    async def change_account(self, request: web.Request) -> web.Response:
        """A new password, disabled or enabled, a new role or scope. Each ends every session and join token
        of the account at once: open WebSockets are closed now, and older tokens are refused from now on."""
        p = self._principal(request, Role.ADMIN)
        account_id = _int(request.match_info["id"])
        data = await _body(request)
        unknown = sorted(set(data) - {"password", "disabled", "role", "teacher_id", "county_id", "region_id"})
        if unknown or not data:
            return error(400, "an account change names password, disabled, role, teacher_id, county_id or "
                              f"region_id{', not ' + ', '.join(unknown) if unknown else ''}")
        if "disabled" in data and not isinstance(data["disabled"], bool):
            return error(400, "disabled must be true or false")
        before = self.store.account(account_id)
        if before is None:
            return error(404, f"no account #{account_id}")
        if "password" in data and (not isinstance(data["password"], str) or len(data["password"]) < MIN_LENGTH):
            return error(400, f"password must be a string of at least {MIN_LENGTH} characters")
        try:  # the scope first (it may be refused); the rest was checked above and cannot fail after it
            if {"role", "teacher_id", "county_id", "region_id"} & set(data):
                self.store.set_scope(
                    account_id,
                    str(data.get("role", before.role)),
                    _opt(data["teacher_id"]) if "teacher_id" in data else before.teacher_id,
                    _opt(data["county_id"]) if "county_id" in data else before.county_id,
                    _opt(data["region_id"]) if "region_id" in data else before.region_id,
                )
            if "password" in data:
                self.store.set_password(account_id, data["password"])
            if "disabled" in data:
                self.store.set_disabled(account_id, data["disabled"])
        except (ValueError, WeakPassword) as exc:
            return error(400, str(exc))
        except LookupError as exc:
            return error(404, str(exc))
        reason = ("account_disabled" if data.get("disabled") is True
                  else "password_reset" if "password" in data else "credential_changed")
        closed = self.hub.kick_account(account_id, reason)
        self.store.audit(p.sub, "admin", "account_change", "done",
                         reason=f"account {account_id}: {sorted(data)}; {reason}: earlier sessions and join tokens "
                                f"refused, {closed} live connection(s) closed")
        account = self.store.account(account_id)
        return ok(account.to_json() if account else {})

    async def list_enrolments(self, request: web.Request) -> web.Response:
        self._principal(request, Role.ADMIN)
        cid = request.query.get("classroom_id")
        rows = self.store.enrolments(_int(cid) if cid else None)
        for r in rows:
            r["name"] = self._classroom_name(r["classroom_id"])
            r.pop("jti", None)
        return ok(rows)

    async def create_enrolment(self, request: web.Request) -> web.Response:
        """An enrolment link for a receiving classroom. The token rides in the URL fragment, which browsers
        never send to servers or in referrers, so it does not end up in access logs."""
        p = self._principal(request, Role.ADMIN)
        data = await _body(request)
        cid = data.get("classroom_id")
        if isinstance(cid, bool) or not isinstance(cid, int) or not self._classroom_name(cid):
            return error(400, "classroom_id must name a classroom")
        expires = int(self.tokens.clock() + self.config.enrolment_days * 86400)
        token, claims = self.tokens.issue(TokenType.ENROL, Role.RECEIVER, f"classroom:{cid}", expires_at=expires,
                                          classroom_id=cid)
        enrolment_id = self.store.add_enrolment(cid, claims.jti, expires, p.sub)
        base = self.config.public_url.rstrip("/") or f"{request.scheme}://{request.host}"
        self.store.audit(p.sub, "admin", "enrolment_create", "done", reason=f"classroom {cid}")
        return ok({"id": enrolment_id, "classroom_id": cid, "name": self._classroom_name(cid), "token": token,
                   "url": f"{base}/classroom#enrol={token}", "expires": expires,
                   "public_url_configured": bool(self.config.public_url)}, status=201)

    async def revoke_enrolment(self, request: web.Request) -> web.Response:
        p = self._principal(request, Role.ADMIN)
        try:
            row = self.store.revoke_enrolment(_int(request.match_info["id"]))
        except LookupError as exc:
            return error(404, str(exc))
        closed = self.hub.kick_classroom(row["classroom_id"], "revoked")
        self.store.audit(p.sub, "admin", "enrolment_revoke", "done",
                         reason=f"classroom {row['classroom_id']}: its device withdrawn, {closed} live connection(s) "
                                "closed")
        return ok({"ok": True})

    async def audit(self, request: web.Request) -> web.Response:
        self._principal(request, Role.ADMIN)
        q = request.query
        rows = self.store.audit_rows(
            _int(q["lesson_id"]) if q.get("lesson_id") else None, q.get("outcome") or None,
            _int(q.get("limit", "200")),
        )
        return ok(rows)

    async def revoke_token(self, request: web.Request) -> web.Response:
        p = self._principal(request, Role.ADMIN)
        data = await _body(request)
        claims = self.tokens.peek(data.get("token", "")) if isinstance(data.get("token"), str) else None
        if claims is None:
            return error(400, "send the token to revoke (it must be one this server signed)")
        self.tokens.revoke(claims, p.sub, str(data.get("reason", ""))[:200])
        kicked = self.hub.kick_token(claims.jti, "revoked")
        self.store.audit(p.sub, "admin", "token_revoke", "done", lesson_id=claims.lesson_id,
                         reason=f"{claims.typ.value} token of {claims.sub}; {kicked} session(s) closed")
        return ok({"revoked": claims.jti, "sessions_closed": kicked})

    async def live(self, request: web.Request) -> web.Response:
        p = self._principal(request, Role.ADMIN, Role.TECHNICIAN)
        detail = request.query.get("detail") in ("1", "true")
        out = []
        places = self._places()
        for live in list(self.hub.lessons.values()):
            lesson = live.facts.lesson
            counties = frozenset(places[c][0] for c in (lesson.lead_classroom_id, *lesson.receiving_classroom_ids)
                                 if c in places)
            regions = frozenset(places[c][1] for c in (lesson.lead_classroom_id, *lesson.receiving_classroom_ids)
                                if c in places)
            if not in_scope(p, counties, regions):
                continue  # another county's or region's lesson: its technicians look after it
            timeline = self.hub.attendance.timelines.get(live.lesson_id)
            lead_minutes, rooms, _teachers = timeline.minutes() if timeline is not None else (0.0, {}, {})
            media: dict[str, Any] | None = None
            if detail:
                try:
                    media = await self.hub.plane.stats(live.room_id)
                except Exception as exc:  # a lost worker: show why instead of failing the whole page
                    media = {"error": str(exc)[:200]}
            out.append(
                {
                    "media": media,
                    "lesson_id": live.lesson_id,
                    "subject": live.facts.lesson.subject,
                    "lead": live.names.get(live.facts.lesson.lead_classroom_id, ""),
                    "lead_on_air": live.lead_on_air,
                    "participants": len(live.sessions),
                    "roster": self.hub.roster(live),
                    "lead_minutes": round(lead_minutes, 2),
                    "attended_minutes": {str(k): round(v, 2) for k, v in rooms.items()},
                }
            )
        return ok({"lessons": out, "sessions": len(self.hub.sessions) if p.role == Role.ADMIN else None})

    # ---- attendance history (docs/api.md, "Attendance") ------------------------------------------
    def _may_see(self, p: Claims, lesson: Lesson, places: dict[int, tuple[int, int]]) -> bool:
        """The administrator, a technician of a county (or region) the lesson touches, its lead teacher."""
        if p.role == Role.TEACHER and p.typ == TokenType.SESSION:
            return p.teacher_id is not None and p.teacher_id == lesson.lead_teacher_id
        rooms = [c for c in (lesson.lead_classroom_id, *lesson.receiving_classroom_ids) if c in places]
        return in_scope(p, frozenset(places[c][0] for c in rooms), frozenset(places[c][1] for c in rooms))

    def _attendance_of(self, lesson: Lesson, classrooms: dict[int, str], teachers: dict[int, str]) -> dict[str, Any]:
        members = self.t.repo.community_members(lesson.community_id)
        th = self.t.config.thresholds
        return lesson_attendance(lesson, self.hub.attendance.timeline(lesson, members), classrooms, teachers,
                                 self.t.config.tz, live=lesson.id in self.hub.lessons, lead_share=th.lead_share,
                                 receiver_share=th.receiver_share)

    def _names(self) -> tuple[dict[int, str], dict[int, str]]:
        repo = self.t.repo
        schools = {s.id: s.name for s in repo.schools()}
        classrooms = {c.id: f"{schools.get(c.school_id, '')} {c.name}".strip() for c in repo.classrooms()}
        return classrooms, {t.id: t.name for t in repo.teachers()}

    async def attendance(self, request: web.Request) -> web.Response:
        p = self._principal(request, Role.ADMIN, Role.TECHNICIAN, Role.TEACHER)
        lesson = self.t.repo.lesson(_int(request.match_info["id"]))
        if lesson is None:
            raise Refusal(404, "unknown_lesson", "no such lesson")
        if not self._may_see(p, lesson, self._places()):
            raise Refusal(403, "not_entitled", "only the lesson's lead teacher, its county's technicians and the "
                                                "administrator see its attendance")
        return ok(self._attendance_of(lesson, *self._names()))

    async def attendance_list(self, request: web.Request) -> web.Response:
        """Recent lessons the caller may see, newest first, each with its attendance summary."""
        p = self._principal(request, Role.ADMIN, Role.TECHNICIAN, Role.TEACHER)
        days, limit = _int(request.query.get("days", 7)), _int(request.query.get("limit", 100))
        if not 1 <= days <= 62 or not 1 <= limit <= 500:
            raise Refusal(400, "bad_field", "days is 1 to 62 and limit 1 to 500")
        now = datetime.now(UTC)
        teacher = p.teacher_id if p.role == Role.TEACHER else None
        if p.role == Role.TEACHER and teacher is None:
            return ok({"lessons": []})
        found = self.t.repo.lessons(start=now - timedelta(days=days),
                                    end=now + timedelta(minutes=self.t.config.window_open_before_min),
                                    teacher_id=teacher)
        places = self._places()
        names = self._names()
        mine = [x for x in reversed(found) if x.status.value != "cancelled" and self._may_see(p, x, places)]
        return ok({"lessons": [lesson_summary(self._attendance_of(x, *names)) for x in mine[:limit]]})

    def _places(self) -> dict[int, tuple[int, int]]:
        """classroom id -> (county id, region id)"""
        repo = self.t.repo
        region_of_city = {c.id: c.region_id for c in repo.cities()}
        county_region = {c.id: region_of_city.get(c.city_id, -1) for c in repo.counties()}
        school_county = {s.id: s.county_id for s in repo.schools()}
        out = {}
        for room in repo.classrooms():
            county = school_county.get(room.school_id, -1)
            out[room.id] = (county, county_region.get(county, -1))
        return out


def principal_of(request: web.Request, *roles: Role) -> Claims:
    """Who calls (the auth middleware put it on the request), refused unless one of `roles`."""
    principal: Claims | None = request.get(PRINCIPAL)
    if principal is None:
        raise Refusal(401, "missing_token", "log in first")
    if roles and principal.role not in roles:
        raise Refusal(403, "not_entitled", "your role may not do this")
    return principal


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@web.middleware
async def refusal_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as exc:
        return web.json_response({"error": exc.message, "code": exc.code}, status=exc.status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise Refusal(400, "bad_json", "the request body is not JSON") from None
    if not isinstance(data, dict):
        raise Refusal(400, "bad_json", "the request body is a JSON object")
    return data


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Refusal(400, "bad_field", f"{str(value)[:20]!r} is not an integer") from None


def _opt(value: Any) -> int | None:
    return None if value in (None, "") else _int(value)


async def page(request: web.Request) -> web.FileResponse:
    name = PAGES[request.path.rstrip("/") or "/"] if request.path != "/" else PAGES["/"]
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application, api: AccessApi, hub: Hub) -> None:
    r = app.router
    r.add_get("/api/v1/client-config", api.client_config, name="sig.open.client_config")
    r.add_post("/api/v1/auth/login", api.login, name="sig.open.login")
    r.add_post("/api/v1/enrol", api.enrol, name="sig.open.enrol")
    r.add_post("/api/v1/auth/logout", api.logout, name="sig.logout")
    r.add_get("/api/v1/me", api.me, name="sig.me")
    r.add_get("/api/v1/me/lessons", api.my_lessons, name="sig.my_lessons")
    r.add_post("/api/v1/lessons/{id}/join-token", api.join_token, name="sig.join_token")
    r.add_get("/api/v1/accounts", api.list_accounts, name="sig.accounts")
    r.add_post("/api/v1/accounts", api.create_account, name="sig.account_create")
    r.add_post("/api/v1/accounts/{id}", api.change_account, name="sig.account_change")
    r.add_get("/api/v1/enrolments", api.list_enrolments, name="sig.enrolments")
    r.add_post("/api/v1/enrolments", api.create_enrolment, name="sig.enrolment_create")
    r.add_post("/api/v1/enrolments/{id}/revoke", api.revoke_enrolment, name="sig.enrolment_revoke")
    r.add_get("/api/v1/audit", api.audit, name="sig.audit")
    r.add_post("/api/v1/tokens/revoke", api.revoke_token, name="sig.token_revoke")
    r.add_get("/api/v1/live", api.live, name="sig.live")
    r.add_get("/api/v1/lessons/{id}/attendance", api.attendance, name="sig.attendance")
    r.add_get("/api/v1/attendance", api.attendance_list, name="sig.attendance_list")
    r.add_get("/ws", hub.handle, name="ws")
    for path in PAGES:
        r.add_get(path, page)
    r.add_static("/static/", STATIC, name="static", append_version=False)
