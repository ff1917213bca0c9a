"""Reports as CSV, XLSX and JSON; lessons as an ICS calendar."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from scheduler.reports import COLUMNS, SECTIONS, Report

CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ics": "text/calendar; charset=utf-8",
}
KIND_LABELS = {"specialised": "专递课堂", "master": "名师课堂", "famous_school": "名校网络课堂"}


def _headers(section: str, lang: str) -> list[str]:
    return [zh if lang == "zh" else key for key, zh in COLUMNS[section]]


def report_json(report: Report, sections: Sequence[str] = SECTIONS) -> bytes:
    data = report.to_json()
    for s in SECTIONS:
        if s not in sections:
            data.pop(s, None)
    return json.dumps(data, ensure_ascii=False, indent=1).encode()


def report_csv(report: Report, section: str, lang: str = "zh") -> bytes:
    """One section as CSV with a BOM, so Excel opens the Chinese text correctly."""
    if section not in SECTIONS:
        raise ValueError(f"unknown report section '{section}' (one of {', '.join(SECTIONS)})")
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(_headers(section, lang))
    keys = [k for k, _ in COLUMNS[section]]
    for row in report.sections[section]:
        writer.writerow([row[k] for k in keys])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def report_xlsx(report: Report, sections: Sequence[str] = SECTIONS, lang: str = "zh") -> bytes:
    """One worksheet per section, with a header row frozen and column widths fitted to the content."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for section in sections:
        sheet = book.create_sheet(title=section)
        sheet.append(_headers(section, lang))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        keys = [k for k, _ in COLUMNS[section]]
        widths = [len(h) * 2 + 2 for h in _headers(section, lang)]
        for row in report.sections[section]:
            values = [row[k] for k in keys]
            sheet.append(values)
            widths = [max(w, min(40, len(str(v)) * 2 + 2)) for w, v in zip(widths, values, strict=True)]
        for i, width in enumerate(widths):
            sheet.column_dimensions[sheet.cell(row=1, column=i + 1).column_letter].width = width
        sheet.freeze_panes = "A2"
    meta = book.create_sheet(title="about")
    meta.append(["semester", report.semester.name])
    meta.append(["as_of", report.as_of.isoformat()])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _ics_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> Iterable[str]:
    """RFC 5545 folds lines longer than 75 octets."""
    data = line.encode()
    while len(data) > 75:
        cut = 75
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # do not split a UTF-8 sequence
            cut -= 1
        yield data[:cut].decode()
        data = b" " + data[cut:]
    yield data.decode()


def calendar_ics(name: str, events: Iterable[Mapping[str, Any]], host: str = "live-classroom") -> bytes:
    """events: dicts with id, start, end (aware datetimes), summary, description, location, status."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//live-classroom//timetable//ZH",
        "CALSCALE:GREGORIAN",
        f"X-WR-CALNAME:{_ics_text(name)}",
    ]
    for e in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:lesson-{e['id']}@{host}",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{e['start'].astimezone(UTC):%Y%m%dT%H%M%SZ}",
            f"DTEND:{e['end'].astimezone(UTC):%Y%m%dT%H%M%SZ}",
            f"SUMMARY:{_ics_text(e['summary'])}",
            f"DESCRIPTION:{_ics_text(e.get('description', ''))}",
            f"LOCATION:{_ics_text(e.get('location', ''))}",
            f"STATUS:{'CANCELLED' if e.get('status') == 'cancelled' else 'CONFIRMED'}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(part for line in lines for part in _fold(line)) + "\r\n").encode()
