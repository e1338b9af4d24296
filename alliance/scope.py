"""三级: what a console account may see. An organiser limited to a 共同体 (`group:<key>`) or to
one unit (`unit:<name>`) sees members, sign-ups, needs and conversations only when the member's
typed unit resolves (alliance.groups.unit_of) to a unit in scope, and activities and projects
only of the groups in scope. `EVERYTHING` is the scope of admins and unscoped organisers.
"""
from __future__ import annotations

from dataclasses import dataclass

from alliance import groups

SCOPE_HELP = "范围应为 group:共同体代号（如 group:fazhi）或 unit:单位名称（如 unit:虹口）"


class ScopeError(ValueError):
    """A scope text names no 共同体 or alliance unit."""


@dataclass(frozen=True)
class Scope:
    text: str  # as stored: "group:fazhi", "unit:虹口区城管执法局团组织"; "" for everything
    label: str
    units: frozenset[str] | None  # full names of the alliance units in scope; None = all
    group_keys: frozenset[str] | None

    @property
    def limited(self) -> bool:
        return self.units is not None

    def has_unit(self, unit: str | None) -> bool:
        """A member whose typed unit is `unit` is in scope."""
        if self.units is None:
            return True
        found = groups.unit_of(unit)
        return found is not None and found[0] in self.units

    def has_group(self, key: str | None) -> bool:
        return self.group_keys is None or key in self.group_keys

    def has_group_text(self, text: str | None) -> bool:
        """An activity's free-text group field (key, name, '<name>共同体' or an alias)."""
        if self.group_keys is None:
            return True
        found = groups.find(text)
        return found is not None and found.key in self.group_keys

    def members(self, rows: list[dict], field: str = "unit") -> list[dict]:
        """The rows (sign-ups, needs, conversations …) whose member's unit is in scope."""
        return rows if self.units is None else [r for r in rows if self.has_unit(r.get(field))]

    def groups(self) -> list[groups.Group]:
        return [g for g in groups.groups() if self.has_group(g.key)]


EVERYTHING = Scope("", "全部", None, None)
NOTHING = Scope("none", "无（范围设置已失效）", frozenset(), frozenset())


def parse(text: str | None) -> Scope:
    """'group:<key|name>' or 'unit:<full or short name>' -> Scope; '' or None -> EVERYTHING.
    Raises ScopeError with the choices when it names nothing."""
    text = (text or "").strip()
    if not text:
        return EVERYTHING
    kind, _, value = text.partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if kind == "group" and value:
        g = groups.find(value)
        if g is None:
            keys = "、".join(f"{x.key}（{x.name}）" for x in groups.groups())
            raise ScopeError(f"没有代号为“{value}”的共同体。可选：{keys}")
        return Scope(f"group:{g.key}", g.title, frozenset(u for u, _ in g.units),
                     frozenset({g.key}))
    if kind == "unit" and value:
        found = groups.find_unit(value)
        if found is None:
            shorts = "、".join(s for g in groups.groups() for _, s in g.units)
            raise ScopeError(f"联盟里没有单位“{value}”。可用全称或简称：{shorts}")
        full, g = found
        return Scope(f"unit:{full}", full.removesuffix("团组织"), frozenset({full}),
                     frozenset({g.key}))
    raise ScopeError(f"看不懂范围“{text}”。{SCOPE_HELP}")


def load(text: str | None) -> Scope:
    """A stored scope; one that no longer names anything (alliance.yaml changed) shows nothing."""
    try:
        return parse(text)
    except ScopeError:
        return NOTHING
