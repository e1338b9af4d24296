"""评议激励: the November summary of each 共同体's year — projects and whether each ran in its
quarter, activities held, participants by unit, volunteer hours, needs raised and adopted —
as a Word document or a workbook, in Chinese, ready to present.

`build()` reads the records into plain data; `to_docx()` / `to_xlsx()` only lay it out.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from activities.exports import csv_safe
from activities.service import fmt_hours
from alliance import groups
from alliance.groups import QUARTER_WORDS, quarter_of_month
from alliance.needs import MODE_WORDS, STATUS_WORDS
from clock import from_db
from storage import needs as need_store
from storage import projects as store

FORMATS = ("docx", "xlsx")
ADOPTED = ("adopted", "claimed", "done")
NO_UNIT = "未登记单位"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
BASIS = "依据沪城管团〔2025〕2号“评议激励机制”：各组11月底前汇总建功联盟情况并进行交流展示。"
HEADS = {
    "projects": ["项目", "类型", "计划季度", "活动次数", "按期开展"],
    "quarters": ["季度", "计划项目", "按期开展", "活动次数", "参与人次", "志愿时长（小时）"],
    "activities": ["日期", "活动", "地点", "所属项目", "参与人次", "志愿时长（小时）"],
    "units": ["单位", "参与人数", "参与人次", "志愿时长（小时）"],
    "needs": ["编号", "需求", "提出单位", "状态", "揭榜方式", "承接单位"],
    "overview": ["共同体", "项目", "按期开展", "活动", "参与人次", "参与人数", "志愿时长（小时）",
                 "需求提出", "需求采纳"],
}


@dataclass
class GroupSummary:
    group: groups.Group
    projects: list[dict] = field(default_factory=list)
    activities: list[dict] = field(default_factory=list)
    units: list[dict] = field(default_factory=list)
    quarters: list[dict] = field(default_factory=list)
    needs: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)


def printable(value):
    """Text without the control characters Word and Excel files cannot hold (a title pasted
    from elsewhere may carry one); numbers unchanged."""
    return _NOT_XML.sub("", value) if isinstance(value, str) else value


def _group_of_activity(a: dict) -> str | None:
    if a["project_grp"]:
        return a["project_grp"]
    g = groups.find(a["grp"])
    return g.key if g else None


def build(db: Database, year: int, now: datetime, tz: ZoneInfo,
          group_key: str | None = None) -> list[GroupSummary]:
    """Every group's summary (or one group's) for the year, counting what was held by `now`."""
    start = datetime(year, 1, 1, tzinfo=tz)
    end = min(datetime(year + 1, 1, 1, tzinfo=tz), now)
    held = store.held_activities(db, start, end) if end > start else []
    rows = store.participants(db, [a["id"] for a in held])
    by_activity: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_activity[r["activity_id"]].append(r)
    projects = store.for_year(db, year)
    today = now.astimezone(tz)
    needs = need_store.listing(db, year_from=start, year_to=datetime(year + 1, 1, 1, tzinfo=tz))
    out = []
    for g in groups.groups():
        if group_key and g.key != group_key:
            continue
        s = GroupSummary(g)
        acts = [a for a in held if _group_of_activity(a) == g.key]
        for a in acts:
            local = from_db(a["start_at"]).astimezone(tz)
            a["date"], a["quarter"] = f"{local:%Y-%m-%d}", quarter_of_month(local.month)
        s.activities = [{"date": a["date"], "title": a["title"], "place": a["location"] or "—",
                         "project": a["project_name"] or "—", "participants": a["participants"],
                         "hours": float(a["hours"]), "quarter": a["quarter"],
                         "project_id": a["project_id"]} for a in acts]
        for p in (p for p in projects if p["grp"] == g.key):
            quarters = store.quarters_of(p)
            mine = [a for a in s.activities if a["project_id"] == p["id"]]
            in_quarter = [a for a in mine if a["quarter"] in quarters]
            current = (today.year, quarter_of_month(today.month))
            if in_quarter:
                ran = "是"
            elif current < (year, min(quarters)):
                ran = "季度未到"
            elif current <= (year, max(quarters)):
                ran = "季度进行中"
            elif mine:
                ran = "否（未在计划季度）"
            else:
                ran = "否（未开展）"
            s.projects.append({"id": p["id"], "name": p["name"], "type": p["type"],
                               "quarters": groups.quarters_words(quarters),
                               "quarter_list": quarters, "activities": len(mine),
                               "in_quarter": bool(in_quarter), "ran": ran})
        units: dict[str, dict] = {}
        people = set()
        for a in acts:
            for r in by_activity[a["id"]]:
                u = units.setdefault(r["unit"] or NO_UNIT, {"unit": r["unit"] or NO_UNIT,
                                                            "openids": set(), "times": 0,
                                                            "hours": 0.0})
                u["openids"].add(r["openid"])
                u["times"] += 1
                u["hours"] += float(r["hours"])
                people.add(r["openid"])
        s.units = sorted(({"unit": u["unit"], "people": len(u["openids"]), "times": u["times"],
                           "hours": u["hours"]} for u in units.values()),
                         key=lambda u: (-u["times"], u["unit"]))
        for q in QUARTER_WORDS:
            in_q = [a for a in s.activities if a["quarter"] == q]
            planned = [p for p in s.projects if q in p["quarter_list"]]
            s.quarters.append({
                "quarter": QUARTER_WORDS[q], "planned": len(planned),
                "ran": sum(1 for p in planned if any(a["quarter"] == q and a["project_id"]
                                                     == p["id"] for a in in_q)),
                "activities": len(in_q), "times": sum(a["participants"] for a in in_q),
                "hours": sum(a["hours"] for a in in_q)})
        mine_needs = [n for n in needs if n["grp"] == g.key]
        s.needs = [{"id": n["id"], "content": n["content"], "unit": n["unit"] or NO_UNIT,
                    "status": STATUS_WORDS[n["status"]],
                    "mode": MODE_WORDS.get(n["mode"] or "", "—"),
                    "claimed": n["claimed_unit"] or "—"} for n in reversed(mine_needs)]
        s.totals = {
            "projects": len(s.projects), "ran": sum(1 for p in s.projects if p["in_quarter"]),
            "activities": len(s.activities), "times": sum(a["participants"] for a in acts),
            "people": len(people), "hours": sum(a["hours"] for a in s.activities),
            "needs": len(mine_needs),
            "adopted": sum(1 for n in mine_needs if n["status"] in ADOPTED)}
        out.append(s)
    return out


def rows(s: GroupSummary) -> dict[str, list[list]]:
    """The group's tables as rows of display values (shared by both formats and the tests)."""
    return {key: [[printable(v) for v in r] for r in body] for key, body in _rows(s).items()}


def _rows(s: GroupSummary) -> dict[str, list[list]]:
    h = fmt_hours
    return {
        "projects": [[p["name"], p["type"], p["quarters"], p["activities"], p["ran"]]
                     for p in s.projects],
        "quarters": [[q["quarter"], q["planned"], q["ran"], q["activities"], q["times"],
                      h(q["hours"])] for q in s.quarters]
                    + [["合计", s.totals["projects"], s.totals["ran"], s.totals["activities"],
                        s.totals["times"], h(s.totals["hours"])]],
        "activities": [[a["date"], a["title"], a["place"], a["project"], a["participants"],
                        h(a["hours"])] for a in s.activities],
        "units": [[u["unit"], u["people"], u["times"], h(u["hours"])] for u in s.units],
        "needs": [[n["id"], n["content"], n["unit"], n["status"], n["mode"], n["claimed"]]
                  for n in s.needs],
    }


def overview(summaries: list[GroupSummary]) -> list[list]:
    out = []
    keys = ("projects", "ran", "activities", "times", "people", "hours", "needs", "adopted")
    for s in summaries:
        t = s.totals
        out.append([s.group.title] + [fmt_hours(t[k]) if k == "hours" else t[k] for k in keys])
    if len(summaries) > 1:
        total = [sum(s.totals[k] for s in summaries) for k in keys]
        total[keys.index("hours")] = fmt_hours(total[keys.index("hours")])
        out.append(["合计"] + total)
    return out


def headline(s: GroupSummary, year: int) -> str:
    t = s.totals
    return (f"{year}年，{s.group.title}（牵头单位：{s.group.lead_unit}）计划项目 {t['projects']} 个，"
            f"按期开展 {t['ran']} 个；举办活动 {t['activities']} 次，参与 {t['times']} 人次"
            f"（{t['people']} 人），累计志愿时长 {fmt_hours(t['hours'])} 小时；"
            f"征集需求 {t['needs']} 条，采纳 {t['adopted']} 条。")


def title(year: int, group_key: str | None = None) -> str:
    scope = f"{groups.by_key(group_key).title}" if group_key else "团建共同体"
    return f"{year}年“诚城”青年建功联盟{scope}工作汇总"


# --- Word ------------------------------------------------------------------------------------

SECTION_TITLES = (("projects", "（一）项目开展情况"), ("quarters", "（二）分季度情况"),
                  ("activities", "（三）活动一览"), ("units", "（四）参与单位"),
                  ("needs", "（五）需求征集"))
CN_NUMBERS = "一二三四五六七八九十"


def to_docx(summaries: list[GroupSummary], year: int, path: str | Path, *,
            generated: str = "", group_key: str | None = None) -> Path:
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Pt

    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "宋体"
    style.font.size = Pt(11)
    style.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")
    head = doc.add_heading(title(year, group_key), level=0)
    head.alignment = WD_ALIGN_PARAGRAPH.CENTER
    doc.add_paragraph(BASIS + (f"生成时间：{generated}。" if generated else ""))
    if len(summaries) > 1:
        doc.add_heading("总览", level=1)
        _docx_table(doc, HEADS["overview"], overview(summaries))
    for n, s in enumerate(summaries):
        doc.add_heading(f"{CN_NUMBERS[n % 10]}、{s.group.title}", level=1)
        doc.add_paragraph(headline(s, year))
        tables = rows(s)
        for key, words in SECTION_TITLES:
            doc.add_heading(words, level=2)
            if tables[key]:
                _docx_table(doc, HEADS[key], tables[key])
            else:
                doc.add_paragraph("无。")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    return path


def _docx_table(doc, header: list[str], body: list[list]) -> None:
    table = doc.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header):
        cell.text = ""
        cell.paragraphs[0].add_run(text).bold = True
    for row in body:
        cells = table.add_row().cells
        for cell, value in zip(cells, row):
            cell.text = str(value)


# --- Excel -----------------------------------------------------------------------------------

SHEETS = (("总览", "overview"), ("项目", "projects"), ("季度", "quarters"), ("活动", "activities"),
          ("参与单位", "units"), ("需求", "needs"))


def to_xlsx(summaries: list[GroupSummary], year: int, path: str | Path, *,
            generated: str = "", group_key: str | None = None) -> Path:
    """One sheet per table; each row starts with its 共同体 so the sheets filter and sort."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    per_group = [(s.group.title, rows(s)) for s in summaries]
    for name, key in SHEETS:
        sheet = book.create_sheet(name)
        sheet.append([title(year, group_key) + (f"（生成时间：{generated}）" if generated else "")])
        sheet.cell(row=1, column=1).font = Font(bold=True)
        if key == "overview":
            header, body = HEADS[key], overview(summaries)
        else:
            header = ["共同体"] + HEADS[key]
            body = [[g] + r for g, tables in per_group for r in tables[key]]
        sheet.append(header)
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        for r in body:
            sheet.append([csv_safe(v) for v in r])  # as the CSV: a leading ' keeps a formula text
        for n, head in enumerate(header, 1):
            width = max([len(str(head))] + [len(str(r[n - 1])) for r in body]) * 2 + 2
            sheet.column_dimensions[get_column_letter(n)].width = min(50, max(8, width))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def write(summaries: list[GroupSummary], year: int, fmt: str, path: str | Path, **kw) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    return (to_docx if fmt == "docx" else to_xlsx)(summaries, year, path, **kw)


def default_name(year: int, fmt: str, group_key: str | None = None) -> str:
    scope = f"-{groups.name_of(group_key)}" if group_key else ""
    return f"联盟工作汇总-{year}{scope}.{fmt}"
