"""A recorded lesson replayed to a classroom that was not in it, in real Chromium, through `classroom serve`.

The teacher broadcasts from Chromium (a red camera) and the lesson is recorded; the teacher plays it on
/player, seeking to its middle (the red camera on the screen); a reviewer approves the
recording for replay; the administrator schedules it for another school's classroom a little later.
That classroom's kiosk, opened once and never touched, joins when the window opens, waits for the
"teacher", shows the recorded teacher full screen at the lesson's start for as long as it was recorded
(paced, not in a burst); restarted mid-way, long after the recording's last keyframe, it shows the
teacher again within a second of joining; and it shows the waiting overlay again when the recording has
ended. The replay
settles as delivered from what the SFU saw, and counts for the receiving school, not for the teacher.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import async_playwright

from signaling.trial import AdminApi, build_world, lesson_now_timezone
from tests.browser.conftest import ARTIFACTS, CHROMIUM, FLAGS, teacher_on_air
from tests.browser.screens import COLOURS, ScreenWatcher, colour_at, decode_png, what_is, write_y4m

VIEW = {"width": 1366, "height": 768}
MAIN = (683, 300)
ENV = {"CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1", "CLASSROOM_RECORDING__KINDS": "master,specialised",
       "CLASSROOM_RECORDING__KEYFRAME_EVERY_S": "8", "CLASSROOM_SCHEDULER__WINDOW_CLOSE_GRACE_MIN": "0",
       "CLASSROOM_SIGNALING__STATS_INTERVAL_S": "0.5", "CLASSROOM_SIGNALING__EVIDENCE_INTERVAL_S": "1"}


async def _until(api: AdminApi, path: str, test: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await api.ok("GET", path)
        if test(got):
            return got
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.5)


async def test_a_replay_plays_on_a_kiosk_as_a_live_lesson_and_counts_for_its_school(server_factory: Any,
                                                                                    tmp_path: Any) -> None:
    tz = lesson_now_timezone()
    srv = server_factory(env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=1, start_in=timedelta(seconds=4), duration=timedelta(seconds=20))
    lesson = world.lesson_ids[0]
    await api.ok("POST", "/api/v1/accounts", {"username": "wang", "password": "correct horse 1",
                                              "role": "teacher", "teacher_id": world.lead_teacher_id})
    async with async_playwright() as p:
        red = str(write_y4m(tmp_path / "teacher.y4m", COLOURS["teacher"]))
        teacher_browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=[*FLAGS, f"--use-file-for-fake-video-capture={red}"])
        kiosk_browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            # 1. the live lesson, broadcast from Chromium and recorded
            teacher = await (await teacher_browser.new_context(viewport=VIEW)).new_page()
            await teacher_on_air(teacher, srv.url, lesson)
            await teacher.wait_for_selector("#rec:not(.hidden)", timeout=10000)
            recs = await _until(api, "/api/v1/recordings",
                                lambda rs: any(r["lesson_id"] == lesson and r["state"] == "ready" for r in rs), 90)
            rec = next(r for r in recs if r["lesson_id"] == lesson)
            assert rec["duration_s"] >= 10, rec

            # 1b. the teacher finds it on /player and plays it, seeking: the recorded camera on the screen
            await teacher.goto(srv.url + "/player")
            await teacher.click(f"#recordings tr[data-id='{rec['id']}'] button.play")
            await teacher.wait_for_function(
                "() => { const v = document.getElementById('camera'); return v.readyState >= 2 && v.duration > 5; }",
                timeout=15000)
            await teacher.evaluate("() => { const v = document.getElementById('camera'); v.muted = true; "
                                   "v.currentTime = v.duration / 2; return v.play(); }")
            await teacher.wait_for_function(
                "() => document.getElementById('camera').currentTime > document.getElementById('camera').duration / 2"
                " + 0.5", timeout=15000)
            box = await teacher.evaluate("""() => { const r = document.getElementById('camera').getBoundingClientRect();
                return [Math.round(r.x + r.width / 2), Math.round(r.y + r.height / 2)]; }""")
            shot = decode_png(await teacher.screenshot(path=str(ARTIFACTS / "player-playing.png")))
            assert what_is(colour_at(shot, box[0], box[1])) == "teacher", colour_at(shot, box[0], box[1])
            # the switch between camera and courseware is offered when the recording has courseware
            assert await teacher.is_visible("#swap") == rec["has_screen"], rec
            await teacher.close()

            # 2. a reviewer of the county approves it for replay (a pending recording cannot be scheduled)
            county = max(c["id"] for c in await api.ok("GET", "/api/v1/counties"))
            start = datetime.now(ZoneInfo(tz)).replace(microsecond=0, tzinfo=None) + timedelta(seconds=25)
            replay_body = {"replay_of": rec["id"], "receiving_classroom_ids": [world.other_classroom_id],
                           "start": start.isoformat(timespec="seconds")}
            status, refused = await api.call("POST", "/api/v1/lessons", replay_body)
            assert status == 400, refused
            await api.ok("PUT", f"/api/v1/reviewers/{world.community_teacher_id}", {"county_id": county})
            await api.ok("POST", "/api/v1/accounts", {"username": "jiaoyan", "password": "correct horse 2",
                                                      "role": "teacher", "teacher_id": world.community_teacher_id})
            status, session = await api.call("POST", "/api/v1/auth/login",
                                             {"username": "jiaoyan", "password": "correct horse 2"}, token="-")
            assert status == 200, session
            reviewer = AdminApi(srv.url, session["token"])
            await reviewer.ok("POST", f"/api/v1/recordings/{rec['id']}/review",
                              {"approved": True, "reason": "内容规范，适合推送", "uses": ["replay"]})

            # 3. the administrator schedules the replay for another school's classroom
            made = await api.ok("POST", "/api/v1/lessons", replay_body)
            replay = int(made["lessons"][0]["id"])
            link = (await api.ok("POST", "/api/v1/enrolments", {"classroom_id": world.other_classroom_id}))["url"]
            kiosk = await (await kiosk_browser.new_context(viewport=VIEW)).new_page()
            await kiosk.goto(link)
            await kiosk.wait_for_function("() => document.body.dataset.state === 'live'", timeout=30000)
            assert "录播课将按时开始" in await kiosk.inner_text("#overlay")
            # nobody at the other end: no hand to raise, no request to speak
            assert not await kiosk.is_visible("#hand") and not await kiosk.is_visible("#talk")
            watcher = await ScreenWatcher(kiosk).start()

            # 4. at the lesson's start the recorded teacher fills the screen
            starts_at = start.replace(tzinfo=ZoneInfo(tz)).timestamp()
            await asyncio.sleep(max(0.0, starts_at - time.time() - 1))
            shown_after, seen = await watcher.until({MAIN: "teacher"}, time.time(), 20)
            assert shown_after >= 0, seen
            on_at = time.time()
            await kiosk.screenshot(path=str(ARTIFACTS / "kiosk-replay.png"))
            assert await kiosk.inner_text("#air") == "录播课"
            assert on_at - starts_at < 5, on_at - starts_at  # joined at the window, on air at the start

            # 5. paced as recorded: still the teacher half-way through
            await asyncio.sleep(rec["duration_s"] / 2 - 3)
            assert (await watcher.until({MAIN: "teacher"}, time.time(), 3))[0] >= 0
            # the classroom PC restarts its page mid-way, seconds after the recording's last keyframe: the
            # teacher is back within a second of joining (the SFU starts it at that keyframe)
            reloaded_at = time.time()
            await kiosk.reload()
            watcher = await ScreenWatcher(kiosk).start()
            back_after, seen = await watcher.until({MAIN: "teacher"}, reloaded_at, 10)
            assert back_after >= 0, seen
            marks = await kiosk.evaluate("() => window.__classroom.conn.marks")
            assert "picture_camera" in marks, marks
            assert marks["picture_camera"] - marks["joined"] < 1000, marks
            # the waiting overlay once it has ended
            await kiosk.wait_for_selector("#overlay:not(.hidden)", timeout=(rec["duration_s"] + 15) * 1000)
            off_at = time.time()
            assert rec["duration_s"] - 4 <= off_at - on_at <= rec["duration_s"] + 6, (off_at - on_at, rec)
            await kiosk.screenshot(path=str(ARTIFACTS / "kiosk-replay-ended.png"))
            # the recording has ended (or, as here where it lasts as long as the lesson, the window has closed)
            ended = await kiosk.inner_text("#overlay")
            assert "本节录播课已播完" in ended or "等待下一节课" in ended, ended
        finally:
            await teacher_browser.close()
            await kiosk_browser.close()

    # 6. settled from what was seen, as a live lesson: delivered, for the school and not the teacher
    info = await _until(api, f"/api/v1/lessons/{replay}", lambda x: x["status"] in ("delivered", "missed"), 60)
    assert info["status"] == "delivered" and info["replay_of"] == rec["id"], info
    ledger = await api.ok("GET", f"/api/v1/lessons/{replay}/ledger")
    entries = ledger if isinstance(ledger, list) else ledger.get("entries", [])
    assert not [e for e in entries if e.get("teacher_id") is not None and e.get("weighted_hours")], entries
    classrooms = await api.ok("GET", "/api/v1/classrooms")
    school_id = next(c["school_id"] for c in classrooms if c["id"] == world.other_classroom_id)
    report = await api.ok("GET", "/api/v1/reports")
    school = next(s for s in report["schools"] if s["school_id"] == school_id and s["role"] == "receiving")
    assert school["delivered"] == 1, school
    teacher = next(x for x in report["teachers"] if x["teacher_id"] == world.lead_teacher_id)
    assert teacher["delivered"] <= 1, teacher  # its own live lesson at most; the replay is not its
