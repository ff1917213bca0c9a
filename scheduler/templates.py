"""Empty workbooks with the Chinese headers every import reads, for administrators to fill in."""

from __future__ import annotations

import io
from collections.abc import Sequence

from scheduler.csvimport import CHINESE_HEADER
from scheduler.directoryimport import TABLE_ZH, TEMPLATE_HEADERS
from scheduler.evidenceimport import TEMPLATE_HEADER as EVIDENCE_HEADER

NOTES: dict[str, Sequence[str]] = {
    "directory": (
        "每个工作表一张表：区县、学校、教室、教师、研修共同体、学期、假期；不需要的表可以删除。",
        "学校角色：主讲、接收、教学点（可填多个，用、分隔）；带宽单位 Mbps。",
        "骨干级别：自治区级（塞上名师）、市级、县级或无；也可写 region、city、county、none。",
        "研修共同体成员写成 学校/教师，多名成员用；分隔，或每行一名。",
        "假期按日期范围填写（开始日期至结束日期）；类型为“调休”的是周末补课日。",
        "全部正确才会导入；同一文件再次导入不会改变任何数据。",
    ),
    "timetable": (
        "接收教室写成 学校/教室，多个用；分隔；每周重复至：每周同一时间重复到该日期（节假日自动跳过）。",
        "课时可不填：按课程时长与区县标准课时长度计算。",
        "授课方式可不填（直播）；录播:N 表示在该时间向本行接收教室播放课程 N 经审查批准录播的录像，"
        "类型、学科、主讲学校、主讲教师、主讲教室可不填（取自课程 N）。",
    ),
    "evidence": (
        "课程编号，或 日期+开始时间+主讲学校+主讲教室，确定一节课；每个接收教室一行。",
        "只接受“待补证据”的课程；已结算的课程请用更正。",
    ),
}


def template_xlsx(name: str) -> bytes:
    """`directory`, `timetable` or `evidence`."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    if name == "directory":
        sheets = {TABLE_ZH[t]: header for t, header in TEMPLATE_HEADERS.items()}
    elif name == "timetable":
        sheets = {"课表": CHINESE_HEADER}
    elif name == "evidence":
        sheets = {"出勤证据": EVIDENCE_HEADER}
    else:
        raise ValueError("a template is directory, timetable or evidence")
    book = Workbook()
    book.remove(book.active)
    for title, header in sheets.items():
        ws = book.create_sheet(title)
        ws.append(list(header))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for i in range(len(header)):
            ws.column_dimensions[chr(ord("A") + i)].width = 16
    notes = book.create_sheet("说明")
    for line in NOTES[name]:
        notes.append([line])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
