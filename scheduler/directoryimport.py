"""The directory from Excel: counties, schools, classrooms, teachers, research communities, semesters
and their holidays, from one XLSX workbook (a sheet each) or CSV files (one table each).

The rules are the timetable import's: all or nothing, every problem with its line (sheet and row for a
workbook) in English and Chinese, the closest name for an unknown one, and importing the same file again
changes nothing (rows are matched by name: a row that says what the database already holds is
unchanged, one that differs updates it). A table is recognised by its sheet name or by its header.
Parsing and checking here are pure: they see the current directory as plain data and return a plan;
`Timetable.import_directory` writes the plan in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from scheduler.csvimport import closest, parse_date
from scheduler.model import Level, Problem
from scheduler.rules.hours import validate_standard
from scheduler.rules.workload import FactorTooLow, validate_factor
from scheduler.sheets import Sheet

# column -> accepted header spellings (compared without spaces, case-insensitively)
COLUMNS: Mapping[str, tuple[str, ...]] = {
    "region": ("region", "地区", "自治区", "省份", "省"),
    "city": ("city", "市", "城市", "地市"),
    "county": ("county", "区县", "县区", "县(区)", "县（区）"),
    "factor": ("workload_factor", "factor", "折算系数", "工作量系数"),
    "standard": ("standard_lesson_minutes", "标准课时长度", "标准课时(分钟)", "标准课时（分钟）", "课时长度"),
    "school": ("school", "学校"),
    "roles": ("roles", "role", "角色", "学校角色"),
    "bandwidth": ("bandwidth_mbps", "bandwidth", "带宽", "带宽(mbps)", "带宽（mbps）"),
    "classroom": ("classroom", "教室"),
    "teacher": ("teacher", "教师", "姓名"),
    "staff_no": ("staff_no", "工号", "教师工号", "教师编号"),
    "level": ("level", "骨干级别", "级别"),
    "subjects": ("subjects", "学科", "任教学科"),
    "community": ("community", "研修共同体", "共同体"),
    "member": ("members", "member", "成员", "成员教师"),
    "semester": ("semester", "学期"),
    "start": ("start", "开始日期", "开始"),
    "end": ("end", "结束日期", "结束"),
    "holiday": ("holiday", "假期", "假日", "假期名称", "名称"),
    "day_type": ("type", "类型"),
}
# table -> (its sheet names, required columns, optional columns); the order is the order of writing
TABLES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "counties": (("区县", "counties"), ("region", "city", "county"), ("factor", "standard")),
    "schools": (("学校", "schools"), ("school", "county", "roles"), ("bandwidth",)),
    "classrooms": (("教室", "classrooms"), ("school", "classroom"), ()),
    "teachers": (("教师", "teachers"), ("teacher", "school"), ("level", "subjects", "staff_no")),
    "communities": (("研修共同体", "communities"), ("community", "county", "member"), ()),
    "semesters": (("学期", "semesters"), ("semester", "start", "end"), ()),
    "holidays": (("假期", "holidays"), ("semester", "holiday", "start", "end"), ("day_type",)),
}
TABLE_ZH = {
    "counties": "区县",
    "schools": "学校",
    "classrooms": "教室",
    "teachers": "教师",
    "communities": "研修共同体",
    "semesters": "学期",
    "holidays": "假期",
}
# the template's header row of each table: each column's first Chinese spelling
TEMPLATE_HEADERS: Mapping[str, tuple[str, ...]] = {
    table: tuple(next(s for s in COLUMNS[c] if not s.isascii()) for c in (*req, *opt))
    for table, (_names, req, opt) in TABLES.items()
}
ROLE_NAMES: Mapping[str, str] = {
    "主讲": "lead",
    "主讲端": "lead",
    "主讲学校": "lead",
    "lead": "lead",
    "接收": "receiving",
    "接收端": "receiving",
    "接收学校": "receiving",
    "receiving": "receiving",
    "教学点": "teaching_point",
    "teaching_point": "teaching_point",
}
LEVEL_NAMES: Mapping[str, Level] = {
    "region": Level.REGION,
    "塞上名师": Level.REGION,
    "自治区级": Level.REGION,
    "自治区级骨干": Level.REGION,
    "自治区级骨干教师": Level.REGION,
    "city": Level.CITY,
    "市级": Level.CITY,
    "市级骨干": Level.CITY,
    "市级骨干教师": Level.CITY,
    "county": Level.COUNTY,
    "县级": Level.COUNTY,
    "县区级": Level.COUNTY,
    "县(区)级": Level.COUNTY,
    "县（区）级": Level.COUNTY,
    "县级骨干": Level.COUNTY,
    "县(区)级骨干教师": Level.COUNTY,
    "县（区）级骨干教师": Level.COUNTY,
    "none": Level.NONE,
    "无": Level.NONE,
    "": Level.NONE,
}
DAY_TYPES: Mapping[str, str] = {
    "": "holiday",
    "假期": "holiday",
    "holiday": "holiday",
    "调休": "makeup",
    "补课": "makeup",
    "makeup": "makeup",
}
LIST_SEPARATORS = re.compile(r"[;；、,，|/\n]")
MEMBER_SEPARATORS = re.compile(r"[;；、,，|\n]")
MAX_HOLIDAY_DAYS = 60


def _norm(h: str) -> str:
    return re.sub(r"\s+", "", h).lower()


@dataclass
class Known:
    """The directory as the database holds it, by natural key (what a row is matched against)."""

    regions: set[str] = field(default_factory=set)
    cities: set[tuple[str, str]] = field(default_factory=set)  # (region, city)
    counties: dict[str, tuple[str, str, float, int]] = field(default_factory=dict)  # name -> region, city, factor, std
    schools: dict[str, tuple[str, frozenset[str], float]] = field(default_factory=dict)  # name -> county, roles, bw
    classrooms: set[tuple[str, str]] = field(default_factory=set)  # (school, classroom)
    teachers: dict[tuple[str, str], tuple[Level, tuple[str, ...]]] = field(default_factory=dict)  # (school, name)
    staff: dict[str, tuple[str, str]] = field(default_factory=dict)  # staff number (工号) -> (school, name)
    communities: dict[str, tuple[str, frozenset[tuple[str, str]]]] = field(default_factory=dict)  # county, members
    semesters: dict[str, tuple[date, date]] = field(default_factory=dict)
    days: set[tuple[str, date, str]] = field(default_factory=set)  # (semester, day, "holiday"|"makeup")


@dataclass
class Plan:
    """What an import would write, and what it found wrong."""

    counties: dict[str, tuple[str, str, float | None, int | None]] = field(default_factory=dict)
    schools: dict[str, tuple[str, frozenset[str], float]] = field(default_factory=dict)
    classrooms: list[tuple[str, str]] = field(default_factory=list)
    teachers: dict[tuple[str, str], tuple[Level, tuple[str, ...]]] = field(default_factory=dict)
    staff: dict[str, tuple[str, str]] = field(default_factory=dict)  # staff number -> (school, name)
    communities: dict[str, tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)
    semesters: dict[str, tuple[date, date]] = field(default_factory=dict)
    days: dict[tuple[str, date], tuple[str, str]] = field(default_factory=dict)  # (semester, day) -> type, name
    problems: list[Problem] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)  # table -> sheet name (or "" for a CSV)
    rows: int = 0
    lines: dict[str, dict[object, int]] = field(default_factory=dict)  # table -> key -> first line with it


class _Row:
    def __init__(self, sheet: Sheet, columns: Mapping[str, int], line: int, cells: Sequence[str], plan: Plan) -> None:
        self.sheet, self.columns, self.line, self.cells, self.plan = sheet, columns, line, cells, plan
        self.failed = False

    def get(self, name: str) -> str:
        i = self.columns.get(name)
        return self.cells[i].strip() if i is not None and i < len(self.cells) else ""

    def error(self, code: str, en: str, zh: str) -> None:
        self.failed = True
        self.plan.problems.append(Problem(code, en, line=self.line, message_zh=zh, sheet=self.sheet.name))


def table_of(sheet: Sheet) -> tuple[str, dict[str, int]] | None:
    """Which table a sheet holds (by its name, else by its header), and where each column is."""
    spellings = {_norm(s): c for c, names in COLUMNS.items() for s in names}
    columns: dict[str, int] = {}
    for i, h in enumerate(sheet.header):
        c = spellings.get(_norm(h))
        if c is not None and c not in columns:
            columns[c] = i
    by_name = next((t for t, (names, _r, _o) in TABLES.items() if _norm(sheet.name) in {_norm(n) for n in names}), None)
    if by_name is not None:
        return by_name, columns
    # by header: the table whose required columns are all there, the most specific first
    for table in ("holidays", "communities", "counties", "teachers", "schools", "classrooms", "semesters"):
        _names, required, _opt = TABLES[table]
        if all(c in columns for c in required):
            return table, columns
    return None


def plan_import(sheets: Sequence[Sheet], known: Known) -> Plan:
    plan = Plan()
    recognised: dict[str, tuple[Sheet, dict[str, int]]] = {}
    for sheet in sheets:
        found = table_of(sheet)
        plan.problems.extend(sheet.problems)
        if found is None:
            continue  # an instructions sheet, a chart: not part of the directory
        table, columns = found
        if table in recognised:
            plan.problems.append(
                Problem(
                    "duplicate_table",
                    f"the {table} table appears twice (sheets '{recognised[table][0].name}' and '{sheet.name}')",
                    message_zh=f"{TABLE_ZH[table]}表出现了两次（工作表“{recognised[table][0].name}”和“{sheet.name}”）",
                    sheet=sheet.name,
                )
            )
            continue
        missing = [c for c in TABLES[table][1] if c not in columns]
        if missing:
            zh = "、".join(next(s for s in COLUMNS[c] if not s.isascii()) for c in missing)
            plan.problems.append(
                Problem(
                    "missing_column",
                    f"the {table} table lacks the columns {', '.join(missing)}",
                    message_zh=f"{TABLE_ZH[table]}表缺少列：{zh}",
                    sheet=sheet.name,
                )
            )
            continue
        recognised[table] = (sheet, columns)
        plan.tables[table] = sheet.name
    if not recognised and not plan.problems:
        plan.problems.append(
            Problem(
                "bad_file",
                "no directory table found: use the template's headers (区县, 学校, 教室, 教师, 研修共同体, 学期, 假期)",
                message_zh="没有找到名册表：请使用模板的表头（区县、学校、教室、教师、研修共同体、学期、假期）",
            )
        )
    for table in TABLES:
        if table in recognised:
            sheet, columns = recognised[table]
            for line, cells in sheet.rows:
                plan.rows += 1
                HANDLERS[table](_Row(sheet, columns, line, cells, plan), known)
    return plan


def _first(plan_lines: dict[object, int], key: object, row: _Row, what: str, what_zh: str) -> bool:
    """False (and an error) if the key was already on an earlier line of the file."""
    if key in plan_lines:
        row.error(
            "duplicate_name", f"{what} is already on line {plan_lines[key]}", f"{what_zh}与第 {plan_lines[key]} 行重复"
        )
        return False
    plan_lines[key] = row.line
    return True


def _lines(row: _Row, table: str) -> dict[object, int]:
    return row.plan.lines.setdefault(table, {})


def _counties(row: _Row, known: Known) -> None:
    region, city, name = row.get("region"), row.get("city"), row.get("county")
    for value, col, zh in ((region, "region", "地区"), (city, "city", "市"), (name, "county", "区县")):
        if not value:
            row.error("missing_value", f"no value for '{col}'", f"“{zh}”没有填写")
    factor: float | None = None
    if row.get("factor"):
        try:
            factor = validate_factor(row.get("factor"))
        except FactorTooLow as exc:
            row.error("bad_factor", str(exc), f"折算系数“{row.get('factor')}”无效：不得低于 1.5（1:1.5）")
    standard: int | None = None
    if row.get("standard"):
        try:
            standard = validate_standard(row.get("standard"))
        except ValueError as exc:
            row.error("bad_standard", str(exc), f"标准课时长度“{row.get('standard')}”应为 10 到 240 的整数分钟")
    if row.failed or not _first(_lines(row, "counties"), name, row, f"county {name}", f"区县“{name}”"):
        return
    row.plan.counties[name] = (region, city, factor, standard)


def _county_exists(row: _Row, known: Known, name: str) -> bool:
    if name in row.plan.counties or name in known.counties:
        return True
    en, zh = closest(name, [*row.plan.counties, *known.counties])
    row.error("unknown_county", f"unknown county '{name}'{en}", f"没有区县“{name}”{zh}")
    return False


def _school_exists(row: _Row, known: Known, name: str) -> bool:
    if name in row.plan.schools or name in known.schools:
        return True
    en, zh = closest(name, [*row.plan.schools, *known.schools])
    row.error("unknown_school", f"unknown school '{name}'{en}", f"没有学校“{name}”{zh}")
    return False


def _schools(row: _Row, known: Known) -> None:
    name, county = row.get("school"), row.get("county")
    if not name or not county:
        row.error("missing_value", "a school needs its name and county", "学校须填写名称和区县")
        return
    _county_exists(row, known, county)
    roles: set[str] = set()
    for item in (x.strip() for x in LIST_SEPARATORS.split(row.get("roles"))):
        if not item:
            continue
        role = ROLE_NAMES.get(item) or ROLE_NAMES.get(item.lower())
        if role is None:
            en, zh = closest(item, [k for k in ROLE_NAMES if not k.isascii()])
            row.error(
                "unknown_role",
                f"unknown school role '{item}' (主讲, 接收 or 教学点){en}",
                f"未知的学校角色“{item}”（应为主讲、接收或教学点）{zh}",
            )
        else:
            roles.add(role)
    if not roles and not row.failed:
        row.error(
            "missing_value", "a school needs a role (主讲, 接收 or 教学点)", "学校须填写角色（主讲、接收或教学点）"
        )
    bandwidth = 100.0
    if row.get("bandwidth"):
        try:
            bandwidth = float(row.get("bandwidth").lower().replace("mbps", "").replace("m", ""))
        except ValueError:
            bandwidth = -1
        if not 0 < bandwidth < 1e6:
            row.error("bad_bandwidth", f"bandwidth '{row.get('bandwidth')}' is not Mbit/s", "带宽应为正数（Mbps）")
    if row.failed or not _first(_lines(row, "schools"), name, row, f"school {name}", f"学校“{name}”"):
        return
    if name in known.schools and known.schools[name][0] != county:
        row.error(
            "school_elsewhere",
            f"school {name} is already in county {known.schools[name][0]}",
            f"学校“{name}”已属于区县“{known.schools[name][0]}”",
        )
        return
    row.plan.schools[name] = (county, frozenset(roles), bandwidth)


def _classrooms(row: _Row, known: Known) -> None:
    school, name = row.get("school"), row.get("classroom")
    if not school or not name:
        row.error("missing_value", "a classroom needs its school and name", "教室须填写学校和名称")
        return
    if not _school_exists(row, known, school):
        return
    if _first(_lines(row, "classrooms"), (school, name), row, f"classroom {school}/{name}", f"教室“{school}/{name}”"):
        row.plan.classrooms.append((school, name))


def _teachers(row: _Row, known: Known) -> None:
    name, school = row.get("teacher"), row.get("school")
    if not name or not school:
        row.error("missing_value", "a teacher needs a name and a school", "教师须填写姓名和学校")
        return
    _school_exists(row, known, school)
    text = row.get("level")
    level = LEVEL_NAMES.get(text) or LEVEL_NAMES.get(text.lower()) or LEVEL_NAMES.get(text.replace(" ", ""))
    if level is None:
        en, zh = closest(text, [k for k in LEVEL_NAMES if k])
        row.error(
            "unknown_level",
            f"unknown backbone level '{text}' (region/塞上名师·自治区级, city/市级, county/县级, none/无){en}",
            f"未知的骨干级别“{text}”（应为自治区级、市级、县级或无）{zh}",
        )
    subjects = tuple(x.strip() for x in LIST_SEPARATORS.split(row.get("subjects")) if x.strip())
    if row.failed:
        return
    assert level is not None
    lines = _lines(row, "teachers")
    if not _first(lines, (school, name), row, f"teacher {name} of {school}", f"{school}的教师“{name}”"):
        return
    # namesakes at different schools are common (王芳); the staff number (工号) tells one person from another
    staff = row.get("staff_no")
    if staff:
        other = row.plan.staff.get(staff) or known.staff.get(staff)
        if other is not None and other != (school, name):
            where = "this file" if staff in row.plan.staff else "the directory"
            row.error(
                "teacher_in_two_schools",
                f"staff number {staff} is already {other[1]} of {other[0]} in {where}: a teacher belongs to one "
                "school (a transfer: change the school in the existing row)",
                f"工号 {staff} 已是{other[0]}的“{other[1]}”：一名教师只属于一所学校",
            )
            return
        row.plan.staff[staff] = (school, name)
    row.plan.teachers[(school, name)] = (level, subjects)


def _communities(row: _Row, known: Known) -> None:
    name, county = row.get("community"), row.get("county")
    if not name or not county:
        row.error("missing_value", "a research community needs its name and county", "研修共同体须填写名称和区县")
        return
    _county_exists(row, known, county)
    members: list[tuple[str, str]] = []
    for item in (x.strip() for x in MEMBER_SEPARATORS.split(row.get("member"))):
        if not item:
            continue
        school, _, teacher = item.replace("／", "/").rpartition("/")
        school = school.strip()
        if not school:
            row.error("bad_member", f"member '{item}': write 学校/教师", f"成员“{item}”：请写成 学校/教师")
            continue
        if not _school_exists(row, known, school):
            continue
        key = (school, teacher.strip())
        if key not in row.plan.teachers and key not in known.teachers:
            en, zh = closest(key[1], [n for s, n in (*row.plan.teachers, *known.teachers) if s == school])
            row.error("unknown_teacher", f"no teacher '{key[1]}' at {school}{en}", f"{school}没有教师“{key[1]}”{zh}")
            continue
        members.append(key)
    if row.failed:
        return
    current = row.plan.communities.get(name)
    if current is not None:  # one row per member: the rows of one community add up
        if current[0] != county:
            row.error("duplicate_name", f"community {name} is given two counties", f"研修共同体“{name}”填写了两个区县")
            return
        current[1].extend(m for m in members if m not in current[1])
        return
    row.plan.communities[name] = (county, members)


def _semesters(row: _Row, known: Known) -> None:
    name = row.get("semester")
    if not name:
        row.error("missing_value", "a semester needs its name", "学期须填写名称")
        return
    start = _date(row, "start", "开始日期")
    end = _date(row, "end", "结束日期")
    if start is None or end is None:
        return
    if end < start:
        row.error(
            "bad_date",
            f"the semester ends ({end}) before it starts ({start})",
            f"学期结束日期 {end} 早于开始日期 {start}",
        )
        return
    if not _first(_lines(row, "semesters"), name, row, f"semester {name}", f"学期“{name}”"):
        return
    if name in known.semesters and known.semesters[name] != (start, end):
        was = known.semesters[name]
        row.error(
            "changed_semester",
            f"semester {name} already runs {was[0]} – {was[1]}; its dates are not changed by an import",
            f"学期“{name}”已存在（{was[0]} 至 {was[1]}），导入不修改学期日期",
        )
        return
    row.plan.semesters[name] = (start, end)


def _holidays(row: _Row, known: Known) -> None:
    semester, title = row.get("semester"), row.get("holiday")
    start = _date(row, "start", "开始日期")
    end = _date(row, "end", "结束日期") if row.get("end") else start
    kind = DAY_TYPES.get(row.get("day_type")) or DAY_TYPES.get(row.get("day_type").lower())
    if kind is None:
        row.error(
            "bad_day_type",
            f"type '{row.get('day_type')}' is 假期 or 调休",
            f"类型“{row.get('day_type')}”应为假期或调休",
        )
    span = row.plan.semesters.get(semester) or known.semesters.get(semester)
    if span is None:
        en, zh = closest(semester, [*row.plan.semesters, *known.semesters])
        row.error("unknown_semester", f"unknown semester '{semester}'{en}", f"没有学期“{semester}”{zh}")
    if row.failed or start is None or end is None or span is None or kind is None:
        return
    if end < start or (end - start).days >= MAX_HOLIDAY_DAYS:
        row.error(
            "bad_date",
            f"the holiday runs from {start} to {end}: the end must follow the start, within {MAX_HOLIDAY_DAYS} days",
            f"假期 {start} 至 {end} 无效：结束不得早于开始，且不超过 {MAX_HOLIDAY_DAYS} 天",
        )
        return
    if start < span[0] or end > span[1]:
        row.error(
            "outside_semester",
            f"{start} – {end} is not inside semester {semester} ({span[0]} – {span[1]})",
            f"{start} 至 {end} 不在学期“{semester}”（{span[0]} 至 {span[1]}）内",
        )
        return
    day = start
    while day <= end:
        if kind == "makeup" and day.weekday() < 5:
            row.error(
                "bad_date",
                f"{day} is a weekday: a make-up day (调休) is a weekend day",
                f"{day} 是工作日：调休补课日应为周末",
            )
            return
        other = row.plan.days.get((semester, day))
        if other is not None and other[0] != kind:
            row.error("duplicate_name", f"{day} is both a holiday and a make-up day", f"{day} 同时是假期和调休日")
            return
        row.plan.days[(semester, day)] = (kind, title)
        day += timedelta(days=1)


def _date(row: _Row, column: str, zh: str) -> date | None:
    text = row.get(column)
    if not text:
        row.error("missing_value", f"no value for '{column}'", f"“{zh}”没有填写")
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        row.error("bad_date", str(exc), f"{zh}“{text}”不是日期（请写成 2026-09-01）")
        return None


HANDLERS = {
    "counties": _counties,
    "schools": _schools,
    "classrooms": _classrooms,
    "teachers": _teachers,
    "communities": _communities,
    "semesters": _semesters,
    "holidays": _holidays,
}
