"""`classroom serve` as a subprocess, used the way an administrator and the media side use it."""

from __future__ import annotations

import io
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

TZ = ZoneInfo("Asia/Shanghai")


def build_county(
    srv: Any,
    semester_start: str,
    semester_end: str,
    makeup: list[str] | None = None,
    holidays: tuple[str, ...] = ("2026-10-01",),
) -> dict[str, int]:
    """A county made through the REST API, as an administrator's script would."""
    ids: dict[str, int] = {}

    def post(what: str, body: dict[str, Any]) -> int:
        status, data = srv.json("POST", f"/api/v1/{what}", body)
        assert status == 201, data
        return int(data["id"])

    ids["region"] = post("regions", {"name": "宁夏回族自治区"})
    ids["city"] = post("cities", {"name": "中卫市", "region_id": ids["region"]})
    ids["county"] = post("counties", {"name": "沙坡头区", "city_id": ids["city"]})
    ids["lead"] = post("schools", {"name": "第一小学", "county_id": ids["county"], "is_lead": True})
    ids["recv"] = post("schools", {"name": "迎水桥小学", "county_id": ids["county"], "is_receiving": True})
    ids["lead_room"] = post("classrooms", {"name": "录播教室1", "school_id": ids["lead"]})
    ids["recv_room"] = post("classrooms", {"name": "三年级1班", "school_id": ids["recv"]})
    ids["teacher"] = post(
        "teachers", {"name": "马丽", "school_id": ids["lead"], "level": "region", "subjects": ["英语"]}
    )
    ids["semester"] = post(
        "semesters",
        {
            "name": "测试学期",
            "start": semester_start,
            "end": semester_end,
            "holidays": list(holidays),
            "makeup_days": makeup or [],
        },
    )
    return ids


CSV = (
    "\ufeff日期,开始时间,结束时间,类型,学科,年级,主讲学校,主讲教师,主讲教室,接收教室,研修共同体,每周重复至\n"
    "2026-09-07,08:00,08:40,专递课堂,英语,三年级,第一小学,马丽,录播教室1,迎水桥小学/三年级1班,,2026-09-28\n"
)


def test_admin_imports_over_http_records_evidence_and_reads_reports(server_factory: Any) -> None:
    srv = server_factory()
    build_county(srv, "2026-09-01", "2027-01-15")

    # a bad file: nothing imported, the line and a suggestion come back
    bad = CSV.replace("马丽", "马莉").encode()
    status, result = srv.json("POST", "/api/v1/timetable/import?filename=bad.csv", bad, content_type="text/csv")
    assert status == 422 and result["errors"][0]["line"] == 2 and "马丽" in result["errors"][0]["message"]
    assert srv.json("GET", "/api/v1/lessons")[1] == []

    # the good file, as a browser form upload; then again: nothing changes
    boundary = "XyZ"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="课表.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{CSV}\r\n--{boundary}--\r\n"
    ).encode()
    status, result = srv.json(
        "POST", "/api/v1/timetable/import", form, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert status == 200 and result["lessons_added"] == 4 and result["filename"] == "课表.csv"
    status, result = srv.json("POST", "/api/v1/timetable/import", CSV.encode(), content_type="text/csv")
    assert status == 200 and result["lessons_added"] == 0 and result["lessons_unchanged"] == 4

    lessons = srv.json("GET", "/api/v1/lessons")[1]
    assert [x["start"][:16] for x in lessons] == [f"2026-09-{d}T08:00" for d in ("07", "14", "21", "28")]
    room = lessons[0]["receiving_classroom_ids"][0]

    # these lessons are in the past (entered late): they wait for evidence instead of being settled as missed
    time.sleep(1.5)  # the timed jobs have planned at start; nothing may settle them
    assert [x["status"] for x in srv.json("GET", "/api/v1/lessons")[1]] == ["awaiting_evidence"] * 4
    # evidence sent afterwards counts: the first lesson is settled from it, the others explicitly, in bulk
    status, after = srv.json(
        "POST", f"/api/v1/lessons/{lessons[0]['id']}/evidence", {"lead_minutes": 40, "attendance": {str(room): 38}}
    )
    assert status == 200 and after["status"] == "awaiting_evidence"
    status, _ = srv.json("POST", f"/api/v1/lessons/{lessons[0]['id']}/evidence", {"lead_minutes": "lots"})
    assert status == 400
    status, _ = srv.json("POST", f"/api/v1/lessons/{lessons[0]['id']}/evidence", {"attendance": {"999": 3}})
    assert status == 400
    body = {"lesson_ids": [lessons[0]["id"]], "how": "evidence", "reason": "recording system export"}
    status, settled = srv.json("POST", "/api/v1/lessons/settle", body)
    assert status == 200 and settled["lessons"][0]["status"] == "delivered", settled
    body = {"lesson_ids": [x["id"] for x in lessons[1:]], "how": "missed", "reason": "no recording of these weeks"}
    status, settled = srv.json("POST", "/api/v1/lessons/settle", body)
    assert status == 200 and [x["status"] for x in settled["lessons"]] == ["missed"] * 3
    # settled means settled: late attendance is kept, changes nothing, and leaves a trace in the audit
    status, late = srv.json(
        "POST", f"/api/v1/lessons/{lessons[2]['id']}/evidence", {"lead_minutes": 40, "attendance": {str(room): 38}}
    )
    assert status == 200 and late["status"] == "missed"

    # one is corrected to delivered by the district office; who did it is the authenticated account
    status, fixed = srv.json(
        "POST",
        f"/api/v1/lessons/{lessons[1]['id']}/corrections",
        {"status": "delivered", "actor": "李主任", "reason": "taught from the backup room, recording attached"},
    )
    assert status == 200 and fixed["status"] == "delivered"
    status, ledger = srv.json("GET", f"/api/v1/lessons/{lessons[1]['id']}/ledger")
    assert ledger[0]["actor"] == "admin-token" and ledger[0]["weighted_hours"] == 1.5
    status, corrections = srv.json("GET", f"/api/v1/lessons/{lessons[1]['id']}/corrections")
    assert [c["kind"] for c in corrections] == ["settlement", "status"]
    assert corrections[1]["from_status"] == "missed" and "backup room" in corrections[1]["reason"]
    assert corrections[1]["actor"] == "admin-token"
    status, refused = srv.json(
        "POST", f"/api/v1/lessons/{lessons[2]['id']}/corrections", {"status": "delivered", "actor": "李主任"}
    )
    assert status == 400 and "why" in refused["error"]
    audit = srv.json("GET", "/api/v1/audit")[1]
    actions = {r["action"] for r in audit}
    assert {"settle", "correction", "evidence_after_settlement"} <= actions

    status, report = srv.json("GET", "/api/v1/reports")
    assert status == 200
    (teacher,) = report["teachers"]
    assert (teacher["minimum"], teacher["delivered"], teacher["missed"], teacher["status"]) == (15, 2, 2, "at_risk")
    assert report["workload"][0]["weighted_hours"] == 3.0
    receiving = next(r for r in report["schools"] if r["role"] == "receiving")
    assert receiving["delivered"] == 2  # the corrected lesson credits the receiving school too
    # as of the lessons' own month nothing of this was known yet: it was all entered in December
    september = srv.json("GET", "/api/v1/reports?as_of=2026-09-30")[1]
    assert september["teachers"][0]["delivered"] == 0 and september["workload"] == []

    status, _headers, body = srv.request("GET", "/api/v1/reports?format=csv&section=teachers&as_of=2026-09-30")
    assert status == 200 and body.startswith("\ufeff教师编号".encode())
    status, _headers, body = srv.request("GET", "/api/v1/reports?format=xlsx")
    sheets = load_workbook(io.BytesIO(body)).sheetnames
    assert status == 200 and {"teachers", "schools", "workload", "famous_school"} <= set(sheets)
    status, _headers, body = srv.request("GET", f"/api/v1/classrooms/{room}/calendar.ics")
    assert status == 200 and body.count(b"BEGIN:VEVENT") == 4 and b"DTSTART:20260907T000000Z" in body

    # offline activities are logged, and do not change any count
    status, _ = srv.json(
        "POST",
        "/api/v1/offline-activities",
        {"lead_school_id": 1, "receiving_school_id": 2, "day": "2026-09-20", "title": "送教下乡: 英语教研"},
    )
    assert status == 201
    assert srv.json("GET", "/api/v1/offline-activities?school_id=2")[1][0]["title"] == "送教下乡: 英语教研"
    assert srv.json("POST", "/api/v1/offline-activities", {"lead_school_id": 1, "day": "soon", "title": "x"})[0] == 400
    assert srv.json("GET", "/api/v1/reports")[1]["teachers"][0]["delivered"] == 2

    # a promotion changes the teacher's minimum at once; junk changes are refused
    status, teacher = srv.json("PATCH", "/api/v1/teachers/1", {"level": "county"})
    assert status == 200 and teacher["level"] == "county"
    assert srv.json("GET", "/api/v1/reports")[1]["teachers"][0]["minimum"] == 5
    assert srv.json("PATCH", "/api/v1/teachers/1", {"level": "emperor"})[0] == 400
    assert srv.json("PATCH", "/api/v1/teachers/1", {"password": "x"})[0] == 400
    assert srv.json("PATCH", "/api/v1/teachers/999", {"level": "city"})[0] == 404
    assert srv.json("PATCH", "/api/v1/schools/2", {"is_lead": "yes"})[0] == 400

    # without the token nothing is served
    assert srv.request("GET", "/api/v1/lessons", token=None)[0] == 401
    assert srv.request("GET", "/api/v1/lessons", token="forged")[0] == 401


def test_kill_9_between_window_open_and_settlement_loses_no_job_and_settles_once(server_factory: Any) -> None:
    env = {"CLASSROOM_SCHEDULER__WINDOW_OPEN_BEFORE_MIN": "0", "CLASSROOM_SCHEDULER__WINDOW_CLOSE_GRACE_MIN": "0"}
    srv = server_factory(env=env)
    now = datetime.now(TZ)
    today = now.date().isoformat()
    ids = build_county(
        srv,
        (now - timedelta(days=30)).date().isoformat(),
        (now + timedelta(days=30)).date().isoformat(),
        makeup=[today] if now.weekday() >= 5 else [],
        holidays=(),  # today must be a school day whatever the date of the run
    )
    if (now + timedelta(seconds=55)).date() != now.date():
        time.sleep(45)  # a lesson must start and end on the same local day
        now = datetime.now(TZ)

    def lesson(start_s: int, end_s: int) -> int:
        body = {
            "kind": "specialised",
            "subject": "英语",
            "grade": "三年级",
            "lead_teacher_id": ids["teacher"],
            "lead_classroom_id": ids["lead_room"],
            "receiving_classroom_ids": [ids["recv_room"]],
            "start": (now + timedelta(seconds=start_s)).isoformat(),
            "end": (now + timedelta(seconds=end_s)).isoformat(),
        }
        status, data = srv.json("POST", "/api/v1/lessons", body)
        assert status == 201, data
        return int(data["lessons"][0]["id"])

    first = lesson(3, 12)
    second = lesson(35, 41)  # room for two restarts of the media workers on a busy machine

    def status_of(lid: int) -> str:
        return str(srv.json("GET", f"/api/v1/lessons/{lid}")[1]["status"])

    deadline = time.monotonic() + 20
    while status_of(first) != "open" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status_of(first) == "open"
    srv.json(
        "POST", f"/api/v1/lessons/{first}/evidence", {"lead_minutes": 0.15, "attendance": {str(ids["recv_room"]): 0.15}}
    )
    srv.kill9()

    time.sleep(max(0.0, (now + timedelta(seconds=14) - datetime.now(TZ)).total_seconds()))
    srv.start()  # the first lesson's close passed while the server was dead
    assert status_of(first) == "delivered"
    srv.kill9()
    srv.start()  # a second restart must not settle it again
    _status, ledger = srv.json("GET", f"/api/v1/lessons/{first}/ledger")
    assert len(ledger) == 1 and ledger[0]["weighted_hours"] == 1.5

    # the second lesson's jobs were derived again from the database after the crash
    deadline = time.monotonic() + 55
    seen = set()
    while time.monotonic() < deadline:
        seen.add(status_of(second))
        if "missed" in seen:
            break
        time.sleep(0.2)
    assert "open" in seen and "missed" in seen


def test_healthz_answers_without_a_token(server_factory: Any) -> None:
    srv = server_factory()
    status, data = srv.json("GET", "/healthz", token=None)
    assert status == 200 and data["status"] == "ok"


def test_an_administrator_runs_a_late_entered_semester_from_excel_files(server_factory: Any) -> None:
    from openpyxl import Workbook

    from tests.scheduler.test_directory_import import workbook, xlsx

    srv = server_factory("--media", "local")
    status, _headers, body = srv.request("GET", "/api/v1/templates/directory.xlsx")
    assert status == 200 and "区县" in load_workbook(io.BytesIO(body)).sheetnames
    xlsx_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    status, result = srv.json(
        "POST", "/api/v1/directory/import?filename=d.xlsx", xlsx(workbook()), content_type=xlsx_type
    )
    assert status == 200 and result["ok"] and result["added"] > 10, result
    status, again = srv.json(
        "POST", "/api/v1/directory/import?filename=d.xlsx", xlsx(workbook()), content_type=xlsx_type
    )
    assert status == 200 and again["added"] == 0 and again["changed"] == 0

    book = Workbook()
    ws = book.active
    ws.title = "课表"
    ws.append(
        [
            "日期",
            "开始时间",
            "结束时间",
            "类型",
            "学科",
            "年级",
            "主讲学校",
            "主讲教师",
            "主讲教室",
            "接收教室",
            "每周重复至",
        ]
    )
    ws.append(
        [
            "2026-09-07",
            "08:00",
            "08:40",
            "专递课堂",
            "英语",
            "三年级",
            "中卫市第一小学",
            "马丽",
            "录播教室1",
            "迎水桥镇中心小学/三年级1班；香山乡红泉教学点/复式教室",
            "2026-09-21",
        ]
    )
    status, result = srv.json("POST", "/api/v1/timetable/import?filename=t.xlsx", xlsx(book), content_type=xlsx_type)
    assert status == 200 and result["lessons_added"] == 3, result
    lessons = srv.json("GET", "/api/v1/lessons")[1]
    assert {x["status"] for x in lessons} == {"awaiting_evidence"}  # the past, entered in December

    evidence = "课程编号,主讲时长(分钟),接收教室,出勤时长(分钟)\n" + "".join(
        f"{x['id']},40,迎水桥镇中心小学/三年级1班,39\n" for x in lessons[:2]
    )
    status, result = srv.json(
        "POST", "/api/v1/evidence/import?filename=e.csv&settle=1", evidence.encode(), content_type="text/csv"
    )
    assert status == 200 and result["settled"] == 2, result
    body = {"lesson_ids": [lessons[2]["id"]], "how": "missed", "reason": "no recording"}
    assert srv.json("POST", "/api/v1/lessons/settle", body)[0] == 200
    body = {"lesson_ids": [x["id"] for x in lessons[:2]], "status": "missed", "reason": "a substitute taught"}
    status, bulk = srv.json("POST", "/api/v1/corrections", body)
    assert status == 200 and [x["status"] for x in bulk["lessons"]] == ["missed", "missed"]
    status, rows = srv.json("GET", "/api/v1/corrections?kind=status")
    assert len(rows) == 2 and rows[0]["batch"] == rows[1]["batch"] and rows[0]["actor"] == "admin-token"
    body = {"classroom_id": 2, "attended": True, "reason": "x"}
    assert srv.json("POST", f"/api/v1/lessons/{lessons[0]['id']}/attendance-corrections", body)[0] == 400  # missed
    assert srv.json("PUT", "/api/v1/counties/1/lesson-length", {"standard_lesson_minutes": 45})[1] == {
        "county_id": 1,
        "standard_lesson_minutes": 45,
    }
    actions = [r["action"] for r in srv.json("GET", "/api/v1/audit")[1]]
    assert {"directory_import", "evidence_import", "settle", "correction"} <= set(actions)
    teacher = next(r for r in srv.json("GET", "/api/v1/reports")[1]["teachers"] if r["teacher"] == "马丽")
    assert (teacher["delivered"], teacher["missed"]) == (0, 3)
