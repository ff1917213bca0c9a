"""The technician's page in real Chromium: a live lesson, its classrooms' figures and charts, an alert
with its acknowledgement, a classroom that drops, and the lesson's history. Screenshots in artifacts/.

The lead and the receiving classroom are aiortc peers (a camera that can be paused); the technician is a
county technician account logged in on /tech. Pixels are checked where the page draws charts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from playwright.async_api import Browser, Page

from tests.browser.conftest import ARTIFACTS
from tests.live_lesson import LiveLesson, lead_and_classroom
from tests.signaling.test_websocket_server import _setup


async def _canvas_drawn(page: Page, selector: str) -> int:
    """How many non-transparent pixels the first canvas under `selector` has."""
    return int(await page.evaluate("""(sel) => {
        const c = document.querySelector(sel + ' canvas');
        if (!c) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
    }""", selector))


async def test_the_technician_sees_the_lesson_its_alert_a_drop_and_the_history(server_factory: Any,
                                                                              browser: Browser) -> None:
    srv, api, world, ws_url = await _setup(server_factory, CLASSROOM_ALERTS__CLEAR_AFTER_S="2")
    lesson = world.lesson_ids[0]
    county = (await api.ok("GET", "/api/v1/counties"))[0]["id"]
    await api.ok("POST", "/api/v1/accounts", {"username": "tech1", "password": "correct horse 1",
                                              "role": "technician", "county_id": county})
    pid = f"classroom-{world.receiving_classroom_ids[0]}"
    page = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
    async with lead_and_classroom(api, ws_url, lesson, world.receiving_classroom_ids[0]) as live:
        await _watch(page, srv.url, lesson, pid, world.receiving_classroom_ids[1], live)
    await page.context.close()
    del srv


async def _watch(page: Page, base: str, lesson: int, pid: str, absent_id: int, live: LiveLesson) -> None:
    camera = live.camera
    await page.goto(base + "/login?next=/tech")
    await page.fill("#username", "tech1")
    await page.fill("#password", "correct horse 1")
    await page.click("#login-button")
    await page.wait_for_url("**/tech")
    panel = f".lesson[data-lesson='{lesson}']"
    await page.wait_for_selector(f"{panel}[data-lead-state='on_air']", timeout=20000)
    row = f"{panel} tr[data-participant='{pid}']"
    await page.wait_for_selector(f"{row}[data-link='ok']:not([data-score=''])", timeout=20000)
    assert "正常" in await page.inner_text(row)
    # the absent classroom is listed too, as not joined
    absent = f"{panel} tr[data-participant='classroom-{absent_id}']"
    assert "未进入" in await page.inner_text(absent)
    assert await page.inner_text("#stream-state") == "实时更新中"
    # the ten-minute chart fills in as points arrive (one every 5 s)
    deadline = time.monotonic() + 30
    while await _canvas_drawn(page, f"{row} .spark") < 50:
        assert time.monotonic() < deadline, "the classroom's chart stays empty"
        await asyncio.sleep(1)
    await page.screenshot(path=str(ARTIFACTS / "tech-live.png"))

    # the nodes: this one machine, its load (the connected classroom's subscriptions, heartbeated every
    # 5 s) and the live lesson on it, a link to that lesson's history
    await page.click("nav.tabs button[data-tab='nodes_tab']")
    node_row = "#nodes tr[data-node]"
    await page.wait_for_selector(f"{node_row} a.node-lesson:has-text('#{lesson} ')", timeout=15000)
    nodes_text = await page.inner_text("#nodes")
    assert "本机" in nodes_text and "单机" in nodes_text and "定时任务在本机运行" in nodes_text, nodes_text
    assert await page.locator(node_row).count() == 1
    deadline = time.monotonic() + 15
    while True:
        cells = await page.locator(f"{node_row} td").all_inner_texts()
        subs, capacity = (int(x) for x in cells[3].split("/"))
        if subs >= 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert subs >= 1 and capacity > 0, cells
    assert 0 <= int(cells[6]) < 10_000, cells  # its event loop's worst lag of the last seconds, in ms
    assert 0 <= int(cells[7].split()[0]) < 15, cells  # heard of within three heartbeats
    await page.screenshot(path=str(ARTIFACTS / "tech-nodes.png"))

    await page.click("nav.tabs button[data-tab='live']")
    await page.wait_for_selector(f"{row}[data-link='ok']", timeout=10000)

    # the lead's camera stops: the alert is on the page within 10 s, critical, in Chinese
    camera.pause()
    stopped = time.monotonic()
    alert = "#alerts .alert.critical[data-rule='stream_frozen']"
    await page.wait_for_selector(alert, timeout=10000)
    shown_after = time.monotonic() - stopped
    assert "摄像头画面中断" in await page.inner_text(alert)
    assert (await page.title()).startswith("(")  # the tab says how many alerts fire
    await page.screenshot(path=str(ARTIFACTS / "tech-alert.png"))
    await page.click(f"{alert} button")
    await page.wait_for_selector(f"{alert} .acked:has-text('tech1')", timeout=10000)
    camera.resume()
    await page.wait_for_selector(alert, state="detached", timeout=15000)

    # the classroom's link drops: its row says so within a few seconds, with no stale figures
    await live.drop_classroom()
    dropped = time.monotonic()
    await page.wait_for_selector(f"{row}:not([data-link='ok'])", timeout=10000)
    drop_shown = time.monotonic() - dropped
    text = await page.inner_text(row)
    assert "已断线" in text or "已离开" in text, text
    assert "kbps" not in text and "%" not in text

    # the lesson's history: attendance timeline, bitrate and quality charts, the alert with who took it
    await page.click("nav.tabs button[data-tab='history_tab']")
    await page.click(f"#history-lessons tr:has-text('#{lesson} ') button")
    await page.wait_for_selector("#bitrate-chart canvas", timeout=10000)
    await asyncio.sleep(0.5)
    for chart in ("#attendance-chart", "#bitrate-chart", "#quality-chart"):
        assert await _canvas_drawn(page, chart) > 500, chart
    assert "tech1" in await page.inner_text("#history")
    await page.screenshot(path=str(ARTIFACTS / "tech-history.png"), full_page=True)
    print(f"alert on the page {shown_after:.1f} s after the camera stopped; drop shown after {drop_shown:.1f} s")
