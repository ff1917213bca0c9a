"""A technician moves a playing classroom to another node, in real Chromium, through the real program:
`classroom serve --redis` (the control node), two `classroom edge` processes (edge A of the classroom's
county, edge B of its region) and a real redis-server.

The teacher broadcasts from Chromium (a red camera); the classroom's kiosk, opened once, plays on edge A
(placed by county). On /tech the technician opens the nodes tab, sees where the classroom was placed and
why, picks edge B and moves it there. The kiosk reconnects by itself and shows the teacher again, its
media now on edge B; the nodes tab shows the new placement with who moved it, and the move is audited."""

from __future__ import annotations

import time
from typing import Any

from playwright.async_api import async_playwright

from tests.browser.conftest import ARTIFACTS, CHROMIUM, FLAGS, teacher_on_air, tech_nodes_tab
from tests.browser.screens import COLOURS, ScreenWatcher, write_y4m
from tests.edge.cluster_world import start_cluster, wait_for
from tests.edge.conftest import RedisProcess, redis_server  # noqa: F401 - the fixture
from tests.edge.test_edge_node import edge_factory  # noqa: F401 - the fixture

VIEW = {"width": 1366, "height": 768}
MAIN = (683, 300)


async def test_a_technician_moves_a_playing_classroom_to_another_node_and_its_kiosk_follows(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess, tmp_path: Any) -> None:  # noqa: F811 - fixtures
    c = await start_cluster(server_factory, edge_factory, redis_server)
    api, lesson = c.api, c.lesson
    classroom = c.world.receiving_classroom_ids[0]
    participant = f"classroom-{classroom}"
    [county_id] = [x["id"] for x in await api.ok("GET", "/api/v1/counties") if x["name"] == c.county]
    await api.ok("POST", "/api/v1/accounts", {"username": "wang", "password": "correct horse 1",
                                              "role": "teacher", "teacher_id": c.world.lead_teacher_id})
    await api.ok("POST", "/api/v1/accounts", {"username": "tech1", "password": "correct horse 1",
                                              "role": "technician", "county_id": county_id})
    c.start_edge("edge-a", c.county)
    c.start_edge("edge-b", "中宁县")
    await c.nodes_shown("edge-a", "edge-b")

    async def on(node: str) -> bool:
        return await c.node_of(participant) == node

    async def _not_on(node: str) -> bool:
        media = await c.media()
        return participant in media["participants"] and media["participants"][participant].get("node") != node

    async with async_playwright() as p:
        red = str(write_y4m(tmp_path / "teacher.y4m", COLOURS["teacher"]))
        teacher_browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=[*FLAGS, f"--use-file-for-fake-video-capture={red}"])
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            teacher = await (await teacher_browser.new_context(viewport=VIEW)).new_page()
            await teacher_on_air(teacher, c.control.url, lesson)
            link = (await api.ok("POST", "/api/v1/enrolments", {"classroom_id": classroom}))["url"]
            kiosk = await (await browser.new_context(viewport=VIEW)).new_page()
            await kiosk.goto(link)
            watcher = await ScreenWatcher(kiosk).start()
            shown, seen = await watcher.until({MAIN: "teacher"}, time.time(), 40)
            assert shown >= 0, seen
            await wait_for(lambda: on("edge-a"), 10, "the kiosk's media on edge A")

            # the technician's nodes tab: where the classroom went and why, and a move to edge B
            tech = await (await browser.new_context(viewport=VIEW)).new_page()
            await tech_nodes_tab(tech, c.control.url)
            row = f"#placements tr[data-participant='{participant}']"
            await tech.wait_for_selector(f"{row}[data-node='edge-a'] button.move", timeout=15000)
            assert "本县" in await tech.inner_text(f"{row}[data-node='edge-a'] .reason")
            await tech.select_option(f"{row}[data-node='edge-a'] select.move-node", "edge-b")
            await tech.click(f"{row}[data-node='edge-a'] button.move")
            moved = time.time()

            # the kiosk reconnects by itself and shows the teacher again, from edge B
            await kiosk.wait_for_function(
                "() => window.__classroom.drops.some((d) => d.reason === 'moved')", timeout=10000)
            back, seen = await watcher.until({MAIN: "teacher"}, moved, 15)
            assert back >= 0, seen
            await wait_for(lambda: on("edge-b"), 15, "the kiosk's media on edge B")
            await kiosk.screenshot(path=str(ARTIFACTS / "kiosk-moved.png"))
            await tech.wait_for_selector(f"{row}[data-node='edge-b'] .reason:has-text('由 tech1 移到此节点')",
                                         timeout=15000)
            await tech.screenshot(path=str(ARTIFACTS / "tech-placements.png"), full_page=True)
            audit = await api.ok("GET", f"/api/v1/audit?lesson_id={lesson}")
            rows = audit if isinstance(audit, list) else audit.get("rows", audit.get("entries", []))
            assert any(r["action"] == "classroom_move" and r["outcome"] == "ok" for r in rows), rows

            # edge B dies (SIGKILL): the kiosk is told, reconnects by itself and shows the teacher again
            # within 5 s, from another node (the technician's choice cannot be had, so the usual rule)
            edge_b = c.edges.pop("edge-b")
            assert edge_b.proc is not None
            edge_b.proc.kill()
            killed_at = await kiosk.evaluate("() => performance.now()")
            # a new connection's first picture (the old one's last frame may still be on the screen)
            await kiosk.wait_for_function(
                "(t) => { const m = window.__classroom.conn.marks; return m.picture_camera > t; }",
                arg=killed_at, timeout=15000)
            again = (await kiosk.evaluate("() => window.__classroom.conn.marks.picture_camera") - killed_at) / 1000
            assert again < 5, again
            assert (await watcher.until({MAIN: "teacher"}, time.time(), 5))[0] >= 0
            await wait_for(lambda: _not_on("edge-b"), 10, "the kiosk's media off edge B")
            await kiosk.screenshot(path=str(ARTIFACTS / "kiosk-after-edge-lost.png"))
            c.logs_clean()
            print(f"teacher back on the kiosk {back:.2f} s after the move, {again:.2f} s after its edge died")
        finally:
            await teacher_browser.close()
            await browser.close()
