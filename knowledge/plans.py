"""A year's plan loaded by organisers: the union's month list and the alliance's quarter table.

The default plan is 2025's (knowledge/data/calendar.yaml and alliance.yaml). When a new year's
documents come out, an organiser loads that year's YAML with `python bot.py kb calendar FILE`;
schedule answers for that year then read it, and answers for a year with no plan say which
year's plan they use instead. No code changes, no restart.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from knowledge.calendar import (DATA_DIR, CalendarDataError, CalendarItem, _alliance_items,
                                _union_items, load_items)
from knowledge.data import SAFE_LOADER, load_sources
from storage import kv

KEY_PREFIX = "plan:"
DEFAULT_YEAR = 2025


@dataclass
class Plan:
    year: int
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
    _union_items(data)
    _alliance_items(data)  # both raise CalendarDataError on a bad month, quarter or key
    return data


def load(db, path: str | Path, now: datetime) -> Plan:
    """Check a plan file and keep it in the database as that year's plan (replacing an older one)."""
    data = parse(Path(path).read_text(encoding="utf-8"))
    kv.put(db, KEY_PREFIX + str(data["year"]), json.dumps(data, ensure_ascii=False), now)
    return _plan(data)


def years(db) -> list[int]:
    rows = db.execute("SELECT key FROM kv WHERE key LIKE ?", [KEY_PREFIX + "%"]).fetchall()
    return sorted({DEFAULT_YEAR, *(int(r[0][len(KEY_PREFIX):]) for r in rows)})


def for_year(db, year: int, data_dir: Path = DATA_DIR) -> Plan:
    """The plan of `year` if loaded, else the latest plan before it (else the default)."""
    known = [y for y in years(db) if y <= year] or [DEFAULT_YEAR]
    chosen = known[-1]
    raw = kv.get(db, KEY_PREFIX + str(chosen)) if db is not None else None
    if raw:
        return _plan(json.loads(raw))
    sources = load_sources(data_dir)
    cite = "；".join(sources[k].citation for k in ("union2025", "alliance2025") if k in sources)
    return Plan(DEFAULT_YEAR, load_items(data_dir), cite)


def _plan(data: dict) -> Plan:
    items = _union_items(data) + _alliance_items(data)
    for item in items:
        item.year = data["year"]
    return Plan(int(data["year"]), items, str(data["citation"]).strip())
