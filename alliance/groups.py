"""The five 共同体 as the plan lists them (knowledge/data/alliance.yaml, read-only), and which
one a member's registered unit belongs to."""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from knowledge.data import load_alliance

_SUFFIX = re.compile(r"(城管综合执法局|城管执法局|城管执法部门)?团组织$")
QUARTER_WORDS = {1: "一季度", 2: "二季度", 3: "三季度", 4: "四季度"}


@dataclass(frozen=True)
class Group:
    key: str
    name: str
    aliases: tuple[str, ...]
    lead_unit: str
    lead_short: str
    units: tuple[tuple[str, str], ...]  # (unit, short), lead first

    @property
    def title(self) -> str:
        return f"{self.name}共同体"


@functools.lru_cache(maxsize=1)
def groups() -> tuple[Group, ...]:
    out = []
    for g in load_alliance().get("groups") or []:
        units = [(g["lead"]["unit"], g["lead"]["short"])]
        units += [(m["unit"], m["short"]) for m in g.get("members") or []]
        out.append(Group(key=g["key"], name=g["name"], aliases=tuple(g.get("aliases") or []),
                         lead_unit=g["lead"]["unit"], lead_short=g["lead"]["short"],
                         units=tuple(units)))
    return tuple(out)


def by_key(key: str | None) -> Group | None:
    return next((g for g in groups() if g.key == key), None)


def find(text: str | None) -> Group | None:
    """A group named by key, name, '<name>共同体' or an alias."""
    t = unicodedata.normalize("NFKC", text or "").strip()
    if not t:
        return None
    for g in groups():
        if t in (g.key, g.name, g.title, *g.aliases) or t.removesuffix("共同体") == g.name:
            return g
    return None


def name_of(key: str | None) -> str:
    g = by_key(key)
    return g.name if g else "未归组"


def unit_names() -> list[str]:
    """Every member unit of the alliance, as the console's claim and assign selects list them."""
    return [unit for g in groups() for unit, _ in g.units]


def group_of_unit(unit: str | None) -> Group | None:
    """'虹口区城管执法局' / '虹口区城管执法局执法一中队' / '虹口' -> 青春法治专研; None if no
    alliance unit's short name (虹口, 总队, 自贸区 …) appears in it. The longest match wins."""
    found = unit_of(unit)
    return found[1] if found else None


def quarter_of_month(month: int) -> int:
    return (month - 1) // 3 + 1


def quarters_words(quarters: list[int]) -> str:
    return "、".join(QUARTER_WORDS[q] for q in quarters if q in QUARTER_WORDS)


def unit_of(unit: str | None) -> tuple[str, Group] | None:
    """The alliance unit (full name, its group) a member's typed unit belongs to, by the same
    longest match as group_of_unit; None if no alliance unit's name appears in it."""
    text = unicodedata.normalize("NFKC", unit or "").strip()
    if not text:
        return None
    best: tuple[int, str, Group] | None = None
    for g in groups():
        for full, short in g.units:
            for name in (_SUFFIX.sub("", full), short):
                if name and name in text and (best is None or len(name) > best[0]):
                    best = (len(name), full, g)
    return (best[1], best[2]) if best else None


def find_unit(text: str | None) -> tuple[str, Group] | None:
    """An alliance unit named exactly: its full name, the name without 团组织, or its short name."""
    t = unicodedata.normalize("NFKC", text or "").strip()
    for g in groups():
        for full, short in g.units:
            if t and t in (full, full.removesuffix("团组织"), _SUFFIX.sub("", full), short):
                return full, g
    return None
