"""A year's plan: the union's month list (loaded by organisers) and the alliance's projects.

The default is 2025's (knowledge/data/calendar.yaml; the project table of alliance.yaml is seeded
into the `projects` records). When a new year's documents come out, an organiser loads that year's
YAML with `python bot.py kb calendar FILE`: its union items are kept as that year's plan and its
`groups` projects become project records, the same ones the console adds and "这个季度有什么项目"
reads. Schedule answers for a year with no plan say which year's plan they use instead.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from alliance import groups
from alliance import projects as alliance_projects
from knowledge.calendar import (DATA_DIR, QUARTER_MONTHS, CalendarDataError, CalendarItem,
                                alliance_items, union_items, load_items)
from knowledge.data import SAFE_LOADER, load_sources
from storage import kv
from storage import projects as project_store

KEY_PREFIX = "plan:"
DEFAULT_YEAR = 2025
PLAN_ACTOR = "kb calendar"


@dataclass
class Plan:
    union_year: int  # the year of the union month list used
    projects_year: int | None  # the year of the alliance project records used (None: none kept)
    items: list[CalendarItem]
    citation: str  # the documents the plan comes from, as a reply cites them


def parse(text: str) -> dict:
    """A plan file as data, checked. Raises CalendarDataError (in Chinese) when it can't be used.

    Format: `year`, `citation` (title and 文号), `items` as in calendar.yaml, and `groups` as in
    alliance.yaml (each with key, name and projects)."""
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise CalendarDataError(f"YAML 格式错误：{exc}") from exc
    if not isinstance(data, dict):
        raise CalendarDataError("顶层应是一个映射（year、citation、items、groups）")
    year = data.get("year")
    if not isinstance(year, int) or not 2000 <= year <= 2100:
        raise CalendarDataError("year 应是四位年份，例如 year: 2026")
    if not str(data.get("citation") or "").strip():
        raise CalendarDataError("citation 不能为空：写明文件标题和文号，回答时要注明出处")
    if not data.get("items") and not data.get("groups"):
        raise CalendarDataError("items（工会项目）和 groups（联盟项目）至少要有一项")
    union_items(data)
    alliance_items(data)  # both raise CalendarDataError on a bad month, quarter or key
    for g in data.get("groups") or []:
        if groups.by_key(g.get("key")) is None:
            raise CalendarDataError(f"没有这个共同体：{g.get('key')}（应为 alliance.yaml 里的 key）")
        for p in g.get("projects") or []:
            if p.get("type") not in alliance_projects.TYPES:
                raise CalendarDataError(f"项目“{p.get('name')}”的 type 应为："
                                        + "、".join(alliance_projects.TYPES))
    return data


def load(db, path: str | Path, now: datetime) -> tuple[int, int]:
    """Keep a plan file's union items as that year's plan and add its projects to the project
    records (a project already there is left as it is). Returns (union items, projects added)."""
    data = parse(Path(path).read_text(encoding="utf-8"))
    year = data["year"]
    union = {"year": year, "citation": data["citation"], "items": data.get("items") or []}
    kv.put(db, KEY_PREFIX + str(year), json.dumps(union, ensure_ascii=False), now)
    added = 0
    for g in data.get("groups") or []:
        for p in g.get("projects") or []:
            try:
                alliance_projects.add(db, year=year, group_key=g["key"], name=p["name"],
                                      type_=p.get("type"), quarters=p.get("quarters") or [],
                                      actor=PLAN_ACTOR, now=now)
                added += 1
            except alliance_projects.ProjectError:
                pass  # the same project loaded again, or entered in the console already
    return len(union["items"]), added


def for_year(db, year: int, data_dir: Path = DATA_DIR) -> Plan:
    """The plan of `year` where kept, else the latest one before it (else the defaults)."""
    loaded = [int(k[len(KEY_PREFIX):]) for k in kv.keys(db, KEY_PREFIX)]
    known = [y for y in loaded if y <= year]
    if known:
        union = json.loads(kv.get(db, KEY_PREFIX + str(max(known))))
        union_year, plan_items, cite = union["year"], union_items(union), union["citation"]
        for item in plan_items:
            item.year = union_year
    else:
        sources = load_sources(data_dir)
        union_year = DEFAULT_YEAR
        plan_items = [i for i in load_items(data_dir) if i.kind == "union"]
        cite = "；".join(sources[k].citation for k in ("union2025", "alliance2025") if k in sources)
    projects_year, projects = _projects(db, year)
    return Plan(union_year, projects_year, plan_items + projects, cite)


def _projects(db, year: int) -> tuple[int | None, list[CalendarItem]]:
    """The alliance's project records of `year`, else of the latest year before it."""
    known = [y for y in project_store.years(db) if y <= year]
    if not known:
        return None, []
    used = max(known)
    items = []
    for p in project_store.for_year(db, used):
        group = groups.by_key(p["grp"])
        quarters = project_store.quarters_of(p)
        items.append(CalendarItem(
            key=f"project-{p['id']}", name=p["name"],
            months=[m for q in quarters for m in QUARTER_MONTHS[q]], kind="alliance",
            quarters=quarters, group=group.name if group else p["grp"], group_key=p["grp"],
            group_aliases=list(group.aliases) if group else [], project_type=p["type"],
            departments=[group.lead_unit] if group else [], year=used))
    return used, items
