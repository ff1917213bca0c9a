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
    await page.wait_for_selector("#report .chart canvas", timeout=20000)
    # the charts are ECharts canvases: what they plot, and that they drew it (pixels, not only the DOM)
    bars = await page.eval_on_selector_all("#report .chart", """(nodes) => nodes.map((n) => {
        const chart = window.echarts.getInstanceByDom(n);
        return chart ? chart.getOption().series[0].data.map((d) => d.value) : [];
    })""")
    assert len(bars) == 3 and len(bars[0]) > 5 and max(bars[0]) > 0  # delivered lessons of the demo county
    painted = await page.eval_on_selector("#report .chart canvas", """(c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
    }""")
    assert painted > 2000
    assert "骨干教师开课进度" in await page.inner_text("#report")
    await page.screenshot(path=str(ARTIFACTS / "admin-reports-demo.png"), full_page=True)
    await page.click("#tab-calendar")
    await page.wait_for_selector("#calendar .day", timeout=10000)
    await page.screenshot(path=str(ARTIFACTS / "admin-calendar-demo.png"))
    await page.click("#tab-live")
    await page.wait_for_selector("#live", timeout=10000)
    await page.context.close()
