"""A district administrator runs a late-entered semester through the admin page in Chromium: the directory
and the timetable from Excel, a bad file refused by sheet and line, evidence for the lessons entered late,
the rest settled in bulk with a reason, a correction, its history and the audit trail."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from playwright.async_api import Browser, Page

from tests.browser.conftest import ARTIFACTS

LEAD, RECEIVER = "中卫市第一小学", "迎水桥镇中心小学"


def _xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for r in rows:
            ws.append(r)
    buf = io.BytesIO()
    book.save(buf)
    path.write_bytes(buf.getvalue())
    return path


def directory_sheets(start: date, end: date) -> dict[str, list[list[Any]]]:
    return {
        "区县": [["地区", "市", "区县", "折算系数", "标准课时长度"], ["宁夏回族自治区", "中卫市", "沙坡头区", 1.5, 40]],
        "学校": [["学校", "区县", "角色", "带宽"], [LEAD, "沙坡头区", "主讲", 1000],
                 [RECEIVER, "沙坡头区", "接收", 100]],
        "教室": [["学校", "教室"], [LEAD, "录播教室1"], [RECEIVER, "三年级1班"]],
        "教师": [["教师", "学校", "骨干级别", "学科"], ["马丽", LEAD, "塞上名师", "英语"]],
        "学期": [["学期", "开始日期", "结束日期"], ["本学期", start.isoformat(), end.isoformat()]],
        "假期": [["学期", "假期", "开始日期", "结束日期", "类型"]],
    }


def timetable_rows(days: list[date]) -> list[list[Any]]:
    header = ["日期", "开始时间", "结束时间", "类型", "学科", "年级", "主讲学校", "主讲教师", "主讲教室", "接收教室"]
    return [header, *([d.isoformat(), "09:00", "09:40", "专递课堂", "英语", "三年级", LEAD, "马丽", "录播教室1",
                       f"{RECEIVER}/三年级1班"] for d in days)]


async def upload(page: Page, panel: str, file: Path) -> str:
    """Choose the file in the panel's file input, press import, and return what the page says."""
    await page.set_input_files(f"#{panel}-file", str(file))
    await page.click(f"#{panel}-go")
    status = page.locator(f"#{panel}-result [role=status]")
    await status.wait_for(timeout=20000)
    return await status.inner_text()


async def test_an_administrator_runs_a_late_entered_semester_from_excel(
    server_factory: Any, browser: Browser, tmp_path: Path
) -> None:
    srv = server_factory()
    today = date.today()
    monday = today - timedelta(days=today.weekday()) - timedelta(days=14)
    days = [monday + timedelta(days=i) for i in range(3)]  # three lessons, all two weeks in the past
    semester = (monday - timedelta(days=7), today + timedelta(days=60))
    directory = _xlsx(tmp_path / "directory.xlsx", directory_sheets(*semester))
    bad_sheets = directory_sheets(*semester)
    bad_sheets["学校"].append(["香山乡红泉教学点", "沙坡头区", "旁听", 200])  # no such role
    bad_sheets["教师"].append(["张伟", "中卫市第—小学", "县级", "数学"])  # a look-alike school name
    bad = _xlsx(tmp_path / "bad-directory.xlsx", bad_sheets)
    timetable = _xlsx(tmp_path / "timetable.xlsx", {"课表": timetable_rows(days)})

    page = await (await browser.new_context(viewport={"width": 1366, "height": 900})).new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    await page.goto(srv.url + "/login")
    await page.fill("#admin-token", srv.token)
    await page.click("#login-button")
    await page.wait_for_url("**/admin#import")

    # a bad directory file: every problem by sheet and line, and nothing written
    said = await upload(page, "directory", bad)
    assert said.startswith("有错误，未导入任何数据"), said
    errors = await page.inner_text("#directory-errors")
    assert "学校 4" in errors and "教师 3" in errors, errors
    assert "中卫市第一小学" in errors  # the closest match for the look-alike name
    await page.screenshot(path=str(ARTIFACTS / "admin-directory-errors.png"), full_page=True)
    assert srv.json("GET", "/api/v1/schools")[1] == []

    said = await upload(page, "directory", directory)
    assert "+" in said and "(" in said, said
    schools = srv.json("GET", "/api/v1/schools")[1]
    assert sorted(s["name"] for s in schools) == sorted([LEAD, RECEIVER])
    said = await upload(page, "import", timetable)
    assert said.startswith(("导入成功", "Imported")) or "3 +" in said, said

    # the lessons entered after their time wait for evidence; evidence for the first settles it
    lessons = sorted(srv.json("GET", "/api/v1/lessons")[1], key=lambda x: x["start"])
    assert [x["status"] for x in lessons] == ["awaiting_evidence"] * 3
    evidence = _xlsx(tmp_path / "evidence.xlsx", {"出勤证据": [
        ["课程编号", "日期", "开始时间", "主讲学校", "主讲教室", "主讲时长(分钟)", "接收教室", "出勤时长(分钟)"],
        [lessons[0]["id"], None, None, None, None, 40, f"{RECEIVER}/三年级1班", 38]]})
    said = await upload(page, "evidence", evidence)
    assert srv.json("GET", f"/api/v1/lessons/{lessons[0]['id']}")[1]["status"] == "delivered", said

    # the other two are settled in bulk, with a reason
    await page.click("#tab-settle")
    await page.wait_for_selector("#awaiting .pick")
    assert await page.locator("#awaiting .pick").count() == 2
    await page.check("#settle-all")
    await page.select_option("#settle-how", "delivered")
    await page.fill("#settle-reason", "按教务处纸质记录")
    await page.click("#settle-go")
    await page.wait_for_selector("#settle-result [role=status]")
    assert "2" in await page.inner_text("#settle-result")
    await page.wait_for_selector("#awaiting td.muted")
    assert [srv.json("GET", f"/api/v1/lessons/{x['id']}")[1]["status"] for x in lessons] == ["delivered"] * 3

    # a correction of a settled lesson: in its history and in the audit trail, by the signed-in account
    await page.click("#tab-corrections")
    await page.fill("#correct-ids", str(lessons[2]["id"]))
    await page.select_option("#correct-status", "missed")
    await page.fill("#correct-reason", "主讲端停电，未开课")
    await page.click("#correct-go")
    await page.wait_for_selector("#correct-result [role=status]")
    await page.fill("#filter-lesson", str(lessons[2]["id"]))
    await page.dispatch_event("#filter-lesson", "change")
    await page.wait_for_function(
        "() => document.querySelector('#corrections').innerText.includes('主讲端停电')", timeout=10000)
    rows = await page.locator("#corrections tr").all_inner_texts()
    assert all(str(lessons[2]["id"]) in r for r in rows[1:]), rows
    mine = [r for r in rows if "主讲端停电" in r]
    assert len(mine) == 1 and "已完成\t未上课" in mine[0], rows  # before and after, in the page's language
    assert "按教务处纸质记录" in "".join(rows)  # the bulk settlement is in the lesson's history too
    await page.screenshot(path=str(ARTIFACTS / "admin-corrections.png"), full_page=True)
    assert srv.json("GET", f"/api/v1/lessons/{lessons[2]['id']}")[1]["status"] == "missed"

    await page.click("#tab-audit")
    await page.wait_for_selector("#audit tr:nth-child(2)")
    await page.fill("#audit-lesson", str(lessons[2]["id"]))
    await page.dispatch_event("#audit-lesson", "change")
    await page.wait_for_function(
        "() => document.querySelector('#audit').innerText.includes('主讲端停电')", timeout=10000)
    audit = await page.locator("#audit tr").all_inner_texts()
    assert all(str(lessons[2]["id"]) in r for r in audit[1:]), audit
    await page.fill("#audit-text", "correct")
    await page.dispatch_event("#audit-text", "change")
    await page.wait_for_function("() => document.querySelectorAll('#audit tr').length >= 2")
    audit = await page.locator("#audit tr").all_inner_texts()
    assert len(audit) >= 2 and all("correct" in r for r in audit[1:]), audit
    await page.screenshot(path=str(ARTIFACTS / "admin-audit.png"), full_page=True)
    assert page_errors == []
    await page.context.close()
