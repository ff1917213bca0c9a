"""Reading a spreadsheet as administrators keep it: XLSX workbooks or CSV files, into rows of text cells.

Every import (timetable, evidence, directory) reads through here, so they share one set of rules: UTF-8
(with or without BOM) or GBK CSV; XLSX sheets with their header in the first non-empty row; empty rows
skipped; dates and times as Excel stores them turned into text the parsers read (2026-09-07, 08:00);
merged cells and formulas refused with the cell named, because a merged cell leaves every row but the
first empty and a formula's value is whatever Excel last computed (paste values instead).
Nothing here knows what a row means.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time

from scheduler.model import Problem

MAX_BYTES = 50 * 1024 * 1024


class CsvFormatError(ValueError):
    """The file as a whole cannot be read (encoding, headers); no row is looked at."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.message_zh = message_zh


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        size, limit = len(data) // 1048576, MAX_BYTES // 1048576
        raise CsvFormatError(
            f"the file is {size} MiB, over the {limit} MiB limit", f"文件有 {size} MiB，超过 {limit} MiB 上限"
        )
    if b"\x00" in data[:4096]:
        raise CsvFormatError(
            "the file is not a text CSV (it looks like a binary file, e.g. .xlsx): save it as CSV",
            "这不是文本 CSV 文件（像是 .xlsx 等二进制文件），请在 Excel 中另存为 CSV",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise CsvFormatError(
            f"the file is neither UTF-8 nor GBK/GB18030 text (bad byte at offset {exc.start}); "
            "in Excel choose 'CSV UTF-8 (逗号分隔)'",
            f"文件既不是 UTF-8 也不是 GBK/GB18030 文本（第 {exc.start} 字节有误），"
            "请在 Excel 中选择“CSV UTF-8（逗号分隔）”",
        ) from exc
    return text


@dataclass
class Sheet:
    """One table: a CSV file, or one sheet of a workbook (`name` then says which, for error messages)."""

    name: str
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (line of the CSV or row of the sheet, cells)
    problems: list[Problem] = field(default_factory=list)  # cells that cannot be read, by line


def is_xlsx(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def read_sheets(data: bytes) -> list[Sheet]:
    """Every non-empty table of the file. Raises CsvFormatError when the file as a whole is unreadable."""
    return _xlsx(data) if is_xlsx(data) else [_csv(data)]


def _csv(data: bytes) -> Sheet:
    reader = csv.reader(io.StringIO(decode(data), newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    problems: list[Problem] = []
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(
                Problem(
                    "bad_csv", f"cannot read this row: {exc}", line=reader.line_num, message_zh=f"无法读取这一行：{exc}"
                )
            )
            continue
        if header is None:
            header = record
            continue
        if any(cell.strip() for cell in record):
            rows.append((reader.line_num, [cell.strip() for cell in record]))
    if header is None:
        raise CsvFormatError("the file is empty", "文件是空的")
    return Sheet("", header, rows, problems)


MERGE_CELL = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')


def _xlsx(data: bytes) -> list[Sheet]:
    from openpyxl import load_workbook

    try:
        # read-only: streams the cells (a region's 45,000 teachers in seconds, not tens of them)
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise CsvFormatError(
            f"the file is not a readable Excel workbook (.xlsx): {exc}",
            f"文件不是可读取的 Excel 工作簿（.xlsx）：{exc}",
        ) from exc
    sheets: list[Sheet] = []
    try:
        for ws in book.worksheets:
            header: list[str] | None = None
            header_row = 0
            rows: list[tuple[int, list[str]]] = []
            problems: list[Problem] = []
            for cells in ws.iter_rows():
                present = [c for c in cells if getattr(c, "row", None) is not None]
                if not present:
                    continue
                number = int(present[0].row)
                texts: list[str] = []
                for c in cells:
                    value = getattr(c, "value", None)
                    if getattr(c, "data_type", None) == "f" or (isinstance(value, str) and value.startswith("=")):
                        problems.append(
                            Problem(
                                "formula",
                                f"cell {c.coordinate} holds a formula ({value}); "
                                "copy the column and paste it as values",
                                line=number,
                                sheet=ws.title,
                                message_zh=f"单元格 {c.coordinate} 是公式（{value}），请复制该列并“粘贴为数值”",
                            )
                        )
                        texts.append("")
                        continue
                    texts.append(cell_text(value))
                if not any(texts):
                    continue
                if header is None:
                    header, header_row = texts, number
                    continue
                rows.append((number, texts))
            if header is None:
                continue
            # merged cells leave every row but the first empty: refused, at the first row of each range
            path = getattr(ws, "_worksheet_path", None)
            xml = archive.read(path) if isinstance(path, str) and path in archive.namelist() else b""
            for m in MERGE_CELL.finditer(xml):
                first, last = int(m[2]), int(m[4])
                if last > header_row:
                    ref = f"{m[1].decode()}{first}:{m[3].decode()}{last}"
                    problems.append(
                        Problem(
                            "merged_cells",
                            f"cells {ref} are merged; unmerge them and fill in every row",
                            line=max(first, header_row + 1),
                            sheet=ws.title,
                            message_zh=f"单元格 {ref} 是合并单元格，请取消合并并逐行填写",
                        )
                    )
            sheets.append(Sheet(ws.title, header, rows, problems))
    finally:
        book.close()
    if not sheets:
        raise CsvFormatError("the workbook is empty", "工作簿是空的")
    return sheets


def cell_text(value: object) -> str:
    """A cell's value as the text a CSV would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.date() in (date(1899, 12, 30), date(1899, 12, 31), date(1900, 1, 1)) and value.time() != time(0):
            return f"{value:%H:%M}"  # a time of day Excel stored as a date-time on its epoch
        if value.time() == time(0):
            return value.date().isoformat()
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def to_csv_bytes(sheet: Sheet) -> bytes:
    """A sheet as a UTF-8 CSV with its rows at their original line numbers (blank lines fill the gaps)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(sheet.header)
    line = 1
    for number, cells in sheet.rows:
        while line + 1 < number:
            buf.write("\n")
            line += 1
        writer.writerow(cells)
        line += 1
    return buf.getvalue().encode("utf-8")
