"""Default activities: the alliance's 2025 projects and the union's project list as drafts.

Each draft carries a stable `source_key`, so loading twice adds nothing and never overwrites
what an organiser has since edited; the organiser only adds dates and capacity, then opens it.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml
from sqlite_utils import Database

from storage import activities as store
from storage.db import immediate

DATA_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "data"
CREATED_BY = "默认项目"
QUARTERS = "一二三四"


class DefaultsError(ValueError):
    """The knowledge data files cannot be read as expected."""


def drafts(data_dir: str | Path = DATA_DIR) -> list[dict]:
    """The draft activities described by alliance.yaml and calendar.yaml, in file order."""
    data_dir = Path(data_dir)
    alliance, calendar = _load(data_dir / "alliance.yaml"), _load(data_dir / "calendar.yaml")
    out = []
    source = alliance.get("source", "alliance")
    for group in alliance.get("groups") or []:
        lead = (group.get("lead") or {}).get("unit", "")
        for project in group.get("projects") or []:
            quarters = "、".join(f"第{QUARTERS[q - 1]}季度" for q in project.get("quarters") or []
                                 if 1 <= q <= 4)
            description = (f"{group['name']}共同体{project.get('type', '项目')}"
                           + (f"，计划{quarters}开展" if quarters else "")
                           + (f"；牵头单位：{lead}" if lead else "") + "。"
                           + (group.get("content") or ""))
            out.append({"title": project["name"], "grp": f"{group['name']}共同体",
                        "description": description,
                        "source_key": f"{source}:{group['key']}:{project['name']}"})
    source = calendar.get("source", "calendar")
    for item in calendar.get("items") or []:
        months = item.get("months") or []
        timing = ("全年" + ("（每季度）" if item.get("recurrence") == "quarterly" else "")
                  if item.get("all_year") else "、".join(f"{m}月" for m in months))
        description = ((f"工会项目，计划时间：{timing}。" if timing else "工会项目。")
                       + (item.get("note") or ""))
        out.append({"title": item["name"], "grp": "、".join(item.get("departments") or []) or "工会",
                    "description": description, "source_key": f"{source}:{item['key']}"})
    return out


def load_defaults(db: Database, now: datetime, data_dir: str | Path = DATA_DIR) -> tuple[int, int]:
    """Insert the drafts not loaded before: (added, already there). Idempotent."""
    items = drafts(data_dir)
    added = 0
    with immediate(db):
        for item in items:
            added += store.insert_activity_if_new(
                db, {**item, "status": "draft", "hours": 0, "created_by": CREATED_BY}, now)
    return added, len(items) - added


def _load(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DefaultsError(f"读不了 {path.name}：{exc}") from exc
    if not isinstance(data, dict):
        raise DefaultsError(f"{path.name} 的格式不对")
    return data
