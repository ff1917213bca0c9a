"""The administrator of the demo county reads the quota and workload reports as charts, in Chinese."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser

from tests.browser.conftest import ARTIFACTS


async def test_demo_county_reports_and_calendar(server_factory: Any, browser: Browser) -> None:
    srv = server_factory("--demo")
    page = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
    await page.goto(srv.url + "/login")
    await page.fill("#admin-token", srv.token)
    await page.click("#login-button")
    await page.wait_for_url("**/admin#import")
    await page.click("#tab-reports")
    await page.wait_for_selector("#report .chart svg rect", timeout=20000)
    bars = await page.eval_on_selector_all(
        "#report .chart svg rect", "(rs) => rs.map((r) => Number(r.getAttribute('width')))"
    )
    assert len(bars) > 5 and max(bars) > 1  # delivered lessons of the demo county show as bars
    assert "骨干教师开课进度" in await page.inner_text("#report")
    await page.screenshot(path=str(ARTIFACTS / "admin-reports-demo.png"), full_page=True)
    await page.click("#tab-calendar")
    await page.wait_for_selector("#calendar .day", timeout=10000)
    await page.screenshot(path=str(ARTIFACTS / "admin-calendar-demo.png"))
    await page.click("#tab-live")
    await page.wait_for_selector("#live", timeout=10000)
    await page.context.close()
