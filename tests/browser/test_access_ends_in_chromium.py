"""Access that ends, ends at once, in real Chromium (issue #14): a re-enrolled classroom's old PC stops
playing while the new one plays, and a teacher on air whom an administrator disables is told so and taken
off air within 2 seconds."""

from __future__ import annotations

import time
from typing import Any

from playwright.async_api import Browser

from signaling.trial import AdminApi, build_world, lesson_now_timezone
from tests.browser.conftest import ARTIFACTS, teacher_on_air
from tests.browser.test_lesson_in_chromium import FRAMES_JS, _moving, _poll


async def test_disabled_teacher_and_replaced_classroom_pc_stop_at_once(server_factory: Any, browser: Browser) -> None:
    tz = lesson_now_timezone()
    srv = server_factory(env={"CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1"})
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=1)
    lesson = world.lesson_ids[0]
    account = await api.ok("POST", "/api/v1/accounts", {"username": "wang", "password": "correct horse 1",
                                                        "role": "teacher", "teacher_id": world.lead_teacher_id})
    link = (await api.ok("POST", "/api/v1/enrolments", {"classroom_id": world.receiving_classroom_ids[0]}))["url"]

    teacher = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
    await teacher_on_air(teacher, srv.url, lesson)

    # the classroom's PC plays the lesson
    old_pc = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
    await old_pc.goto(link, wait_until="domcontentloaded", timeout=60000)
    await old_pc.wait_for_function("() => document.body.dataset.state === 'live'", timeout=20000)
    await _moving(old_pc, "old-pc")

    # the classroom is re-enrolled on a new PC: the old one stops playing at once, the new one plays
    new_pc = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
    await new_pc.goto(link, wait_until="domcontentloaded", timeout=60000)
    await old_pc.wait_for_function("() => document.body.dataset.state === 'refused'", timeout=10000)
    assert await old_pc.evaluate("() => document.body.dataset.reason") == "replaced"
    await _poll(old_pc, FRAMES_JS, lambda v: v == -1, 5, "old-pc-stopped")  # its peer connection is gone
    await old_pc.screenshot(path=str(ARTIFACTS / "old-pc-replaced.png"))
    await new_pc.wait_for_function("() => document.body.dataset.state === 'live'", timeout=20000)
    await _moving(new_pc, "new-pc")
    # reloading the old PC does not bring it back: its device token is dead
    await old_pc.reload()
    await old_pc.wait_for_function("() => document.body.dataset.state === 'refused'", timeout=10000)
    assert await old_pc.evaluate(FRAMES_JS) == -1

    # the administrator disables the teacher while on air: the page is told and off air within 2 s
    started = time.monotonic()
    await api.ok("POST", f"/api/v1/accounts/{account['id']}", {"disabled": True})
    await teacher.wait_for_selector("#kicked[data-reason='account_disabled']", timeout=2000)
    await teacher.wait_for_function("() => window.__teacher.conn === null && !window.__teacher.local", timeout=2000)
    told = time.monotonic() - started
    assert told < 2.0, told
    assert not await teacher.evaluate("() => document.getElementById('air').classList.contains('live')")
    assert await teacher.evaluate("() => !sessionStorage.getItem('session')")
    await teacher.screenshot(path=str(ARTIFACTS / "teacher-disabled.png"))
    # the classroom sees the teacher go off air: its layout says so and the screen waits for the teacher
    await new_pc.wait_for_function(
        "() => window.__classroom && window.__classroom.layout && window.__classroom.layout.lead === 'off_air'",
        timeout=10000)
    assert "等待老师开始上课" in await new_pc.inner_text("#overlay")


async def test_the_admin_page_gives_a_technician_a_county(server_factory: Any, browser: Browser) -> None:
    srv = server_factory("--media", "local")
    region = srv.json("POST", "/api/v1/regions", {"name": "宁夏"})[1]["id"]
    city = srv.json("POST", "/api/v1/cities", {"name": "中卫市", "region_id": region})[1]["id"]
    county = srv.json("POST", "/api/v1/counties", {"name": "沙坡头区", "city_id": city})[1]["id"]
    page = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
    await page.goto(srv.url + "/login")
    await page.fill("#admin-token", srv.token)
    await page.click("#login-button")
    await page.wait_for_url("**/admin#import")
    await page.click("#tab-accounts")
    await page.wait_for_selector("#new-county", timeout=10000)
    # without a county the server says what is missing, on the page
    await page.fill("#new-username", "tech1")
    await page.fill("#new-password", "correct horse 1")
    await page.select_option("#new-role", "technician")
    await page.click("#create-account")
    await page.wait_for_selector(".notice:has-text('county')", timeout=10000)
    await page.select_option("#new-county", str(county))
    await page.click("#create-account")
    await page.wait_for_selector("#accounts td:has-text('tech1')", timeout=10000)
    accounts = srv.json("GET", "/api/v1/accounts")[1]
    assert [(a["username"], a["role"], a["county_id"]) for a in accounts] == [("tech1", "technician", county)]
    await page.context.close()
