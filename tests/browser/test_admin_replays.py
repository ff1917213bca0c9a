"""Review and replay scheduling on the admin page in Chromium: a reviewer (教研员) logs in with a teacher account,
finds the recording in the review list and approves it with a reason; the administrator then sees it approved
in the 录播 tab and schedules it for another school's classroom; a replay into a busy classroom is refused
with the reason in Chinese."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Browser

from signaling.trial import AdminApi, build_world, lesson_now_timezone
from tests.browser.conftest import ARTIFACTS
from tests.signaling.test_replay_api import _catalogue


async def test_a_reviewer_approves_and_the_administrator_schedules_a_replay(
    server_factory: Any, browser: Browser
) -> None:
    tz = lesson_now_timezone()
    srv = server_factory(env={"CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=1)
    county = max(c["id"] for c in await api.ok("GET", "/api/v1/counties"))
    rid = _catalogue(srv.data_dir, world.lesson_ids[0])
    reviewer = world.community_teacher_id
    await api.ok("POST", "/api/v1/accounts", {"username": "jiaoyan", "password": "correct horse 9", "role": "teacher",
                                              "teacher_id": reviewer})
    await api.ok("PUT", f"/api/v1/reviewers/{reviewer}", {"county_id": county})

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    await page.goto(srv.url + "/login?next=/admin")
    await page.fill("#username", "jiaoyan")
    await page.fill("#password", "correct horse 9")
    await page.click("#login-button")
    await page.wait_for_selector(f"#recording-{rid}", timeout=20000)
    assert await page.locator("#tab-import").count() == 0  # a reviewer sees the review list only
    assert "待审查" in await page.inner_text(f"#recording-{rid}")
    await page.fill(f"#reason-{rid}", "适合三年级进度")
    await page.click(f"#approve-{rid}")
    await page.wait_for_selector("#review-result .notice.ok", timeout=10000)
    await page.select_option("#review-filter", "")
    await page.locator(f"#recording-{rid}", has_text="已批准").wait_for(timeout=10000)
    await page.screenshot(path=str(ARTIFACTS / "admin-review.png"), full_page=True)
    await context.close()

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    await page.goto(srv.url + "/login")
    await page.fill("#admin-token", srv.token)
    await page.click("#login-button")
    await page.wait_for_url("**/admin#import")
    await page.click("#tab-replays")
    await page.wait_for_selector(f"#recordings #recording-{rid}", timeout=20000)
    assert "适合三年级进度" in await page.inner_text(f"#recordings #recording-{rid}")
    at = (datetime.now(ZoneInfo(tz)) + timedelta(hours=3)).replace(second=0, microsecond=0)
    await page.select_option("#replay-classrooms", str(world.other_classroom_id))  # picked by school and name
    await page.fill("#replay-start", at.strftime("%Y-%m-%dT%H:%M"))
    await page.click("#replay-go")
    await page.wait_for_selector("#replay-result .notice.ok", timeout=10000)
    assert "已安排录播" in await page.inner_text("#replay-result")
    replays = [x for x in await api.ok("GET", "/api/v1/lessons") if x["replay_of"] == rid]
    assert [x["receiving_classroom_ids"] for x in replays] == [[world.other_classroom_id]]
    # the same classroom 20 minutes later, while the first replay runs: refused, the page says why in Chinese
    await page.fill("#replay-start", (at + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M"))
    await page.click("#replay-go")
    await page.wait_for_selector("#replay-result .notice:not(.ok)", timeout=10000)
    assert f"已在课程 #{replays[0]['id']} 中" in await page.inner_text("#replay-result")
    await page.screenshot(path=str(ARTIFACTS / "admin-replays.png"), full_page=True)
    await context.close()
