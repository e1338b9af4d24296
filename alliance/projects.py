"""项目化运作: each group's projects for a year, their activities so far, and the flag for a
project whose quarter has come with no activity."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from alliance import groups
from alliance.groups import QUARTER_WORDS, quarter_of_month
from storage import projects as store
from storage.db import immediate

TYPES = ("规定项目", "自选项目", "需求项目")
MAX_NAME = 60


class ProjectError(Exception):
    """An organiser's input for a project cannot be used; str(exc) says why, in Chinese."""


@dataclass
class Flag:
    state: str  # waiting | due | running | done
    words: str


def flag(project: dict, today: datetime) -> Flag:
    """Where a project stands on `today` (local): its first quarter not yet come, come with no
    activity (flagged), under way, or its quarters over."""
    quarters = store.quarters_of(project)
    current = (today.year, quarter_of_month(today.month))
    first, last = (project["year"], min(quarters)), (project["year"], max(quarters))
    held = project.get("activities") or 0
    if current < first:
        return Flag("waiting", f"{QUARTER_WORDS[first[1]]}开展")
    if not held:
        return Flag("due", "季度已到，尚无活动")
    if current > last:
        return Flag("done", f"已开展 {held} 次活动")
    return Flag("running", f"进行中，已开展 {held} 次活动")


def add(db: Database, *, year: int, group_key: str, name: str, type_: str,
        quarters: list[int], actor: str, now: datetime) -> int:
    """Raises ProjectError on unusable input or a duplicate name in the group that year."""
    name = " ".join((name or "").split())
    if not 2 <= len(name) <= MAX_NAME:
        raise ProjectError(f"项目名称应为 2–{MAX_NAME} 个字")
    if groups.by_key(group_key) is None:
        raise ProjectError("请选择共同体")
    if type_ not in TYPES:
        raise ProjectError("请选择项目类型")
    if not 2000 <= year <= 2100:
        raise ProjectError("年度应为四位数字年份")
    quarters = sorted({q for q in quarters if q in QUARTER_WORDS})
    if not quarters:
        raise ProjectError("请至少选择一个季度")
    try:
        with immediate(db):
            return store.insert(db, year=year, grp=group_key, name=name, type_=type_,
                                quarters=quarters, created_by=actor, now=now)
    except sqlite3.IntegrityError as exc:
        raise ProjectError(f"该共同体 {year} 年已有名为“{name}”的项目") from exc


def year_view(db: Database, year: int, today: datetime) -> list[tuple[groups.Group, list[dict]]]:
    """Each group with its projects for the year, progress and flag attached."""
    rows = store.for_year(db, year)
    out = []
    for g in groups.groups():
        mine = []
        for p in rows:
            if p["grp"] != g.key:
                continue
            f = flag(p, today)
            mine.append({**p, "quarters_words": groups.quarters_words(store.quarters_of(p)),
                         "flag": f.state, "flag_words": f.words})
        out.append((g, mine))
    return out


def choices(db: Database) -> list[dict]:
    """Projects for the activity form's select: '2025 · 青春志愿服务 · 组织大学生…'."""
    return [{"id": p["id"], "grp": p["grp"],
             "label": f"{p['year']} · {groups.name_of(p['grp'])} · {p['name']}"}
            for p in store.all_projects(db)]


def quarter_answer(db: Database, year: int, quarter: int, group: groups.Group | None) -> str:
    """The chat's answer to “这个季度有什么项目”, from the records (the latest year that has
    any when this year's are not entered yet)."""
    known = [y for y in store.years(db) if y <= year] or store.years(db)
    if not known:
        return "还没有录入联盟项目。"
    used = year if year in known else max(known)
    note = "" if used == year else f"（{year}年项目尚未录入，以下是{used}年项目表）"
    rows = [p for p in store.for_year(db, used, group.key if group else None)
            if quarter in store.quarters_of(p)]
    head = f"{used}年{QUARTER_WORDS[quarter]}的联盟项目{note}："
    if not rows:
        who = f"“{group.name}”共同体" if group else "各共同体"
        return f"{used}年{QUARTER_WORDS[quarter]}{who}没有安排项目{note}。"
    lines = [head]
    for p in rows:
        done = f"，已开展 {p['activities']} 次活动" if p["activities"] else ""
        lines.append(f"· {groups.name_of(p['grp'])}：{p['name']}（{p['type']}，"
                     f"{groups.quarters_words(store.quarters_of(p))}{done}）")
    return "\n".join(lines)
