"""`classroom serve --demo`: a newcomer sees a real county, real reports, and can log in as its teachers."""

from __future__ import annotations

from typing import Any


def test_demo_county_has_reports_of_every_kind_and_teacher_logins(server_factory: Any) -> None:
    srv = server_factory("--demo", "--media", "local")
    status, report = srv.json("GET", "/api/v1/reports")
    assert status == 200
    levels = {row["level"] for row in report["teachers"]}
    assert levels == {"region", "city", "county"}
    assert {row["role"] for row in report["schools"]} == {"lead", "receiving"}
    assert any(row["weighted_hours"] > 0 for row in report["workload"])
    assert report["famous_school"] and report["famous_school"][0]["credit_hours"] > 0
    lessons = srv.json("GET", "/api/v1/lessons?limit=10000")[1]
    assert {x["kind"] for x in lessons} == {"specialised", "master", "famous_school"}
    assert {"delivered", "missed", "scheduled"} <= {x["status"] for x in lessons}

    listing = (srv.data_dir / "demo-accounts.txt").read_text(encoding="utf-8")
    password = listing.splitlines()[0].rsplit(" ", 1)[1]
    assert "teacher1\t马丽" in listing
    status, session = srv.json("POST", "/api/v1/auth/login", {"username": "teacher1", "password": password}, token=None)
    assert status == 200, session
    status, _ = srv.json("POST", "/api/v1/auth/login", {"username": "teacher1", "password": "guess"}, token=None)
    assert status in (401, 403)
