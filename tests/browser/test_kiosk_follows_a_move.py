"""A technician moves a playing classroom to another node, in real Chromium, through the real program:
`classroom serve --redis` (the control node), two `classroom edge` processes (edge A of the classroom's
county, edge B of its region) and a real redis-server.

The teacher broadcasts from Chromium (a red camera); the classroom's kiosk, opened once, plays on edge A
(placed by county). On /tech the technician opens the nodes tab, sees where the classroom was placed and
why, picks edge B and moves it there. The kiosk reconnects by itself and shows the teacher again, its
media now on edge B; the nodes tab shows the new placement with who moved it, and the move is audited."""

from __future__ import annotations

import secrets
import time
from typing import Any

from playwright.async_api import async_playwright

from signaling.trial import AdminApi, build_world, lesson_now_timezone
from tests.browser.conftest import ARTIFACTS, CHROMIUM, FLAGS, teacher_on_air
from tests.browser.screens import COLOURS, ScreenWatcher, write_y4m
from tests.edge.conftest import RedisProcess, redis_server  # noqa: F401 - the fixture
from tests.edge.test_edge_node import EdgeProcess, edge_factory  # noqa: F401 - the fixture
from tests.edge.test_edge_placement_serve import wait_for
from tests.signaling.test_websocket_server import ENV

VIEW = {"width": 1366, "height": 768}
MAIN = (683, 300)
SECRET = secrets.token_urlsafe(24)


async def test_a_technician_moves_a_playing_classroom_to_another_node_and_its_kiosk_follows(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess, tmp_path: Any) -> None:  # noqa: F811 - fixtures
    tz = lesson_now_timezone()
    env = {**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz, "CLASSROOM_CLUSTER__HEARTBEAT_S": "1",
           "CLASSROOM_CLUSTER__NODE_SECRET": SECRET}
    control = server_factory("--media", "local", "--redis", redis_server.url,
                             env={**env, "CLASSROOM_CLUSTER__NODE_ID": "control-1"})
    api = AdminApi(control.url, control.token)
    world = await build_world(api, tz, receivers=1)
    lesson = world.lesson_ids[0]
    classroom = world.receiving_classroom_ids[0]
    participant = f"classroom-{classroom}"
    [region] = [r for r in await api.ok("GET", "/api/v1/regions") if r["name"].startswith("宁夏-")]
    [county] = [c for c in await api.ok("GET", "/api/v1/counties") if c["name"].startswith("沙坡头区-")]
    await api.ok("POST", "/api/v1/accounts", {"username": "wang", "password": "correct horse 1",
                                              "role": "teacher", "teacher_id": world.lead_teacher_id})
    await api.ok("POST", "/api/v1/accounts", {"username": "tech1", "password": "correct horse 1",
                                              "role": "technician", "county_id": county["id"]})
    for name, county_name, ports in (("edge-a", county["name"], ("48000", "48299")),
                                     ("edge-b", "中宁县", ("48300", "48599"))):
        edge: EdgeProcess = edge_factory(name)
        edge.start(control.url, redis_server.url,
                   {**env, "CLASSROOM_MEDIA__UDP_PORT_MIN": ports[0], "CLASSROOM_MEDIA__UDP_PORT_MAX": ports[1]},
                   "--media", "local", "--node-id", name, region=region["name"], county=county_name)
        edge.wait_listening()

    async def both_live() -> bool:
        shown = {n["node"]["id"] for n in (await api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]}
        return {"edge-a", "edge-b"} <= shown

    await wait_for(both_live, 20, "both edges on the control node's nodes page")

    async def on_node() -> str | None:
        [live] = [x for x in (await api.ok("GET", "/api/v1/live?detail=1"))["lessons"] if x["lesson_id"] == lesson]
        return live["media"]["participants"].get(participant, {}).get("node")

    async with async_playwright() as p:
        red = str(write_y4m(tmp_path / "teacher.y4m", COLOURS["teacher"]))
        teacher_browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=[*FLAGS, f"--use-file-for-fake-video-capture={red}"])
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            teacher = await (await teacher_browser.new_context(viewport=VIEW)).new_page()
            await teacher_on_air(teacher, control.url, lesson)
            link = (await api.ok("POST", "/api/v1/enrolments", {"classroom_id": classroom}))["url"]
            kiosk = await (await browser.new_context(viewport=VIEW)).new_page()
            await kiosk.goto(link)
            watcher = await ScreenWatcher(kiosk).start()
            shown, seen = await watcher.until({MAIN: "teacher"}, time.time(), 40)
            assert shown >= 0, seen
            assert await wait_for(on_node, 10, "the kiosk in the lesson's media") == "edge-a"

            # the technician's nodes tab: where the classroom went and why, and a move to edge B
            tech = await (await browser.new_context(viewport=VIEW)).new_page()
            await tech.goto(control.url + "/login?next=/tech")
            await tech.fill("#username", "tech1")
            await tech.fill("#password", "correct horse 1")
            await tech.click("#login-button")
            await tech.wait_for_url("**/tech")
            await tech.click("nav.tabs button[data-tab='nodes_tab']")
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
            assert await wait_for(lambda: _is(on_node, "edge-b"), 15, "the kiosk's media on edge B")
            await kiosk.screenshot(path=str(ARTIFACTS / "kiosk-moved.png"))
            await tech.wait_for_selector(f"{row}[data-node='edge-b'] .reason:has-text('由 tech1 移到此节点')",
                                         timeout=15000)
            await tech.screenshot(path=str(ARTIFACTS / "tech-placements.png"), full_page=True)
            audit = await api.ok("GET", f"/api/v1/audit?lesson_id={lesson}")
            rows = audit if isinstance(audit, list) else audit.get("rows", audit.get("entries", []))
            assert any(r["action"] == "classroom_move" and r["outcome"] == "ok" for r in rows), rows
            assert "Traceback" not in control.log, control.log[-3000:]
            print(f"teacher back on the kiosk {back:.2f} s after the move")
        finally:
            await teacher_browser.close()
            await browser.close()


async def _is(check: Any, want: str) -> bool:
    return bool(await check() == want)
