"""The year's calendar as plain items: the union's project list and the alliance's quarterly projects.

Used by the knowledge engine ("体检几月", "三季度有什么") and by the scheduler's recurring
reminders. Pure functions over the YAML files; no database.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
ALL_MONTHS = list(range(1, 13))
QUARTER_MONTHS = {1: [1, 2, 3], 2: [4, 5, 6], 3: [7, 8, 9], 4: [10, 11, 12]}
QUARTERLY = [1, 4, 7, 10]  # a "每季度" item falls in the first month of each quarter


class CalendarDataError(ValueError):
    """calendar.yaml or alliance.yaml cannot be read as a calendar."""


@dataclass
class CalendarItem:
    """One thing that happens in given months.

    `months` is always filled: an all-year item lists 1..12, a quarterly one [1, 4, 7, 10],
    an alliance project the months of its quarters (`quarters` keeps the original).
    """

    key: str
    name: str
    aliases: list[str] = field(default_factory=list)
    months: list[int] = field(default_factory=list)
    all_year: bool = False
    recurrence: str | None = None  # None | "quarterly"
    departments: list[str] = field(default_factory=list)
    source_key: str = ""
    kind: str = "union"  # "union" (calendar.yaml) | "alliance" (alliance.yaml projects)
    quarters: list[int] = field(default_factory=list)
    note: str = ""
    group: str | None = None  # alliance: the 共同体's name
    group_key: str | None = None
    group_aliases: list[str] = field(default_factory=list)
    project_type: str | None = None  # alliance: 规定项目 | 自选项目
    year: int | None = None  # the plan's year (the plan repeats yearly)

    @property
    def names(self) -> list[str]:
        """Every way to name this item: name, aliases, key."""
        return [self.name, *self.aliases, self.key]

    @property
    def reminder_months(self) -> list[int]:
        """Months in which a reminder is worth sending: when each period begins.

        Quarterly items: the first month of each quarter; alliance projects: the first month of
        each of their quarters; listed months: the first month of each run ([1, 2, 7, 8] -> [1, 7]).
        All-year items without a rhythm have no moment to remind of: [].
        """
        if self.recurrence == "quarterly":
            return list(QUARTERLY)
        if self.quarters:
            return sorted(QUARTER_MONTHS[q][0] for q in self.quarters)
        if self.all_year:
            return []
        return [m for m in self.months if m - 1 not in self.months]


def _read(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise CalendarDataError(f"{path.name}: YAML 格式错误：{exc}") from exc
    if not isinstance(data, dict):
        raise CalendarDataError(f"{path.name}: 顶层应是一个映射")
    return data


def _months(raw, where: str) -> list[int]:
    months = [int(m) for m in raw or []]
    if any(not 1 <= m <= 12 for m in months):
        raise CalendarDataError(f"{where}: 月份应在 1-12 之间：{months}")
    return sorted(set(months))


def union_items(data: dict) -> list[CalendarItem]:
    items = []
    for raw in data.get("items") or []:
        key = str(raw.get("key") or "").strip()
        if not key or not raw.get("name"):
            raise CalendarDataError(f"calendar.yaml: 每一项都要有 key 和 name：{raw}")
        months = _months(raw.get("months"), f"calendar.yaml {key}")
        all_year = bool(raw.get("all_year"))
        recurrence = raw.get("recurrence") or None
        if recurrence == "quarterly":
            months = list(QUARTERLY)
        elif all_year and not months:
            months = list(ALL_MONTHS)
        items.append(CalendarItem(
            key=key, name=str(raw["name"]), aliases=[str(a) for a in raw.get("aliases") or []],
            months=months, all_year=all_year, recurrence=recurrence,
            departments=[str(d) for d in raw.get("departments") or []],
            source_key=str(raw.get("source") or data.get("source") or ""), kind="union",
            note=str(raw.get("note") or ""), year=data.get("year")))
    return items


def alliance_items(data: dict) -> list[CalendarItem]:
    items = []
    for group in data.get("groups") or []:
        gkey = str(group.get("key") or "")
        lead = (group.get("lead") or {}).get("unit")
        for n, project in enumerate(group.get("projects") or [], start=1):
            quarters = sorted({int(q) for q in project.get("quarters") or []})
            if any(q not in QUARTER_MONTHS for q in quarters):
                raise CalendarDataError(f"alliance.yaml {gkey}: 季度应在 1-4 之间：{quarters}")
            items.append(CalendarItem(
                key=f"{gkey}-{n}", name=str(project["name"]), aliases=[],
                months=[m for q in quarters for m in QUARTER_MONTHS[q]],
                departments=[str(lead)] if lead else [],
                source_key=str(data.get("source") or ""), kind="alliance", quarters=quarters,
                group=str(group.get("name") or gkey), group_key=gkey,
                group_aliases=[str(a) for a in group.get("aliases") or []],
                project_type=project.get("type")))
    return items


def load_items(data_dir: str | Path = DATA_DIR) -> list[CalendarItem]:
    """Union items from calendar.yaml, then alliance projects from alliance.yaml.

    Re-read when a file changes (cached by modification time). Raises CalendarDataError on a
    malformed file; a missing file gives no items.
    """
    data_dir = Path(data_dir)
    stamps = tuple(_mtime(data_dir / name) for name in ("calendar.yaml", "alliance.yaml"))
    return copy.deepcopy(list(_load(str(data_dir), stamps)))  # callers may change their copy


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@lru_cache(maxsize=8)
def _load(data_dir: str, stamps: tuple) -> tuple[CalendarItem, ...]:
    path = Path(data_dir)
    return tuple(union_items(_read(path / "calendar.yaml"))
                 + alliance_items(_read(path / "alliance.yaml")))


def items_in_month(items: list[CalendarItem], year: int, month: int) -> list[CalendarItem]:
    """Items that happen in that month. The plan repeats every year, so `year` only names the
    month the caller means (and is checked)."""
    if not 1 <= month <= 12 or year < 1:
        raise ValueError(f"no such month: {year}-{month}")
    return [item for item in items if month in item.months]


def items_in_quarter(items: list[CalendarItem], year: int, quarter: int) -> list[CalendarItem]:
    """Items with at least one month in that quarter (1-4)."""
    if quarter not in QUARTER_MONTHS or year < 1:
        raise ValueError(f"no such quarter: {year} Q{quarter}")
    months = set(QUARTER_MONTHS[quarter])
    return [item for item in items if months & set(item.months)]


def find(items: list[CalendarItem], text: str) -> list[CalendarItem]:
    """Items a member means by `text` ("体检", "生日会", a 共同体's name for all its projects).

    Exact names first, then a name contained in the text or the text in a name; [] when none.
    """
    words = "".join((text or "").split()).lower()
    if not words:
        return []
    exact = [i for i in items if words in {n.lower() for n in i.names}]
    if exact:
        return exact
    group = [i for i in items if i.group
             and words in {n.lower() for n in [i.group, *i.group_aliases, i.group_key or ""]}]
    if group:
        return group
    contained = [i for i in items if any(len(n) >= 2 and n.lower() in words for n in i.names)]
    if contained:
        return contained
    if len(words) >= 2:
        return [i for i in items if any(words in n.lower() for n in i.names)]
    return []


def month_words(months: list[int]) -> str:
    """[1, 2, 7, 8] -> '1-2月、7-8月'; all twelve -> '全年'."""
    if sorted(months) == ALL_MONTHS:
        return "全年"
    runs: list[list[int]] = []
    for m in sorted(months):
        if runs and m == runs[-1][-1] + 1:
            runs[-1].append(m)
        else:
            runs.append([m])
    return "、".join(f"{r[0]}月" if len(r) == 1 else f"{r[0]}-{r[-1]}月" for r in runs)


def when_words(item: CalendarItem) -> str:
    """How a member reads the item's timing: '9月', '每季度', '二、三季度', '全年'."""
    if item.recurrence == "quarterly":
        return "每季度"
    if item.quarters:
        return "、".join("一二三四"[q - 1] for q in item.quarters) + "季度"
    if item.all_year:
        return "全年"
    return month_words(item.months)
