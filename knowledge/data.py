"""Loads the knowledge files (knowledge/data/*.yaml) into entries.

Curated entries come from entries/*.yaml; the alliance's structured data (alliance.yaml)
becomes entries too, in both directions (group -> lead/members/…, unit -> group), so
attribute questions are answered from the one structured source.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
QUARTER_WORDS = {1: "一季度", 2: "二季度", 3: "三季度", 4: "四季度"}
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ten times faster


class KnowledgeDataError(ValueError):
    """A knowledge file cannot be used (bad YAML, a missing field, a duplicate id)."""


@dataclass
class Source:
    key: str
    title: str
    doc_no: str
    issuer: str = ""
    date: str = ""

    @property
    def citation(self) -> str:
        return f"《{self.title}》（{self.doc_no}）" if self.doc_no else f"《{self.title}》"


@dataclass
class Entry:
    id: str
    question: str
    answer: str
    source: str
    alts: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    origin: str = "curated"  # curated | alliance | organiser | passage

    @property
    def phrasings(self) -> list[str]:
        return [self.question, *self.alts]


def _read(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise KnowledgeDataError(f"{path.name}: YAML 格式错误：{exc}") from exc


def data_files(data_dir: Path = DATA_DIR) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(data_dir / "**" / "*.yaml"), recursive=True))


def load_sources(data_dir: Path = DATA_DIR) -> dict[str, Source]:
    raw = _read(data_dir / "sources.yaml") or {}
    return {key: Source(key=key, title=v["title"], doc_no=v.get("doc_no", ""),
                        issuer=v.get("issuer", ""), date=str(v.get("date", "")))
            for key, v in raw.items()}


def load_synonyms(data_dir: Path = DATA_DIR) -> dict[str, list[str]]:
    return _read(data_dir / "synonyms.yaml") or {}


def load_outside(data_dir: Path = DATA_DIR) -> list[str]:
    """Everyday topics members ask about that the documents do not cover (outside.yaml)."""
    raw = _read(data_dir / "outside.yaml") if (data_dir / "outside.yaml").exists() else None
    topics = (raw or {}).get("topics") or []
    if not isinstance(topics, list) or not all(isinstance(t, str) and t.strip() for t in topics):
        raise KnowledgeDataError("outside.yaml: topics 应是一列非空的词")
    return [t.strip() for t in topics]


def entry_from_dict(item: dict, origin: str = "curated") -> Entry:
    """Raises KnowledgeDataError when a required field is missing."""
    for name in ("id", "question", "answer", "source"):
        if not item.get(name):
            raise KnowledgeDataError(f"条目缺少 {name}：{item.get('id') or item.get('question')}")
    return Entry(id=str(item["id"]), question=str(item["question"]), answer=str(item["answer"]).strip(),
                 source=str(item["source"]), alts=[str(a) for a in item.get("alts") or []],
                 keywords=[str(k) for k in item.get("keywords") or []],
                 answers=[str(a) for a in item.get("answers") or []], origin=origin)


def load_curated(data_dir: Path = DATA_DIR) -> list[Entry]:
    entries = []
    for path in sorted((data_dir / "entries").glob("*.yaml")):
        for item in _read(path) or []:
            entries.append(entry_from_dict(item))
    return entries


def load_alliance(data_dir: Path = DATA_DIR) -> dict:
    return _read(data_dir / "alliance.yaml") or {}


def quarters_text(quarters: list[int]) -> str:
    return "、".join(QUARTER_WORDS[q] for q in quarters)


def project_short(name: str) -> str:
    """'实施青年实干家计划' -> '青年实干家计划' (how members name a project)."""
    for verb in ("总结推广", "实施", "举办", "组织", "制作", "组建"):
        if name.startswith(verb) and len(name) > len(verb) + 2:
            return name[len(verb):]
    return name


def alliance_entries(alliance: dict) -> list[Entry]:
    """The structured alliance data as entries, both ways (group -> attribute, thing -> group)."""
    src = alliance.get("source", "alliance2025")
    groups = alliance.get("groups") or []
    out: list[Entry] = []
    by_unit: dict[str, list[tuple[str, dict, str]]] = {}
    group_members: dict[str, list[str]] = {}
    by_advisor: dict[str, list[str]] = {}
    by_focus: dict[str, list[str]] = {}
    for g in groups:
        name, key = g["name"], g["key"]
        full = f"“{name}”团建共同体"
        names = [name, *g.get("aliases", [])]
        lead = g["lead"]
        members = g.get("members", [])
        member_units = "、".join(m["unit"] for m in members)
        member_shorts = "、".join(m["short"] for m in members)

        def phr(templates: list[str]) -> list[str]:
            return [t.format(n=n) for t in templates for n in names[:4]]

        out.append(Entry(
            id=f"alliance-{key}-lead", question=f"{name}共同体由谁牵头？",
            alts=phr(["{n}谁牵头", "{n}的牵头单位是哪个", "{n}是哪个区牵头", "{n}谁领头"]),
            keywords=[name, "牵头单位"], origin="alliance", source=src, answers=["who"],
            answer=(f"{full}的牵头单位是{lead['unit']}（{lead['short']}）。成员单位有{member_units}。"
                    f"各专业组召集人由{alliance.get('group_convener', '团工委副书记')}担任，"
                    f"秘书长由牵头单位团组织负责人轮值担任。")))
        out.append(Entry(
            id=f"alliance-{key}-members", question=f"{name}共同体的成员单位有哪些？",
            alts=phr(["{n}成员单位有哪些", "{n}都有哪些单位", "{n}包括哪几个区", "{n}成员都有谁"]),
            keywords=[name, "成员单位"], origin="alliance", source=src, answers=["who", "list"],
            answer=(f"{full}的成员单位是{member_units}（{member_shorts}），"
                    f"牵头单位是{lead['unit']}。")))
        advisors = "、".join(g.get("advisors", []))
        out.append(Entry(
            id=f"alliance-{key}-advisors", question=f"{name}共同体的青年指导员是谁？",
            alts=phr(["{n}的青年指导员是哪些处室的", "{n}指导员是谁", "{n}由哪个处指导"]),
            keywords=[name, "青年指导员"], origin="alliance", source=src, answers=["who"],
            answer=f"{full}的青年指导员由{advisors}的青年担任。"))
        focus = "、".join(g.get("focus", []))
        out.append(Entry(
            id=f"alliance-{key}-focus", question=f"{name}共同体的重点对象是哪类青年？",
            alts=phr(["{n}的重点对象是谁", "{n}面向哪类青年", "{n}主要面向谁"]),
            keywords=[name, "重点对象"], origin="alliance", source=src, answers=["who"],
            answer=f"{full}的重点对象是{focus}。"))
        out.append(Entry(
            id=f"alliance-{key}-content", question=f"{name}共同体主要做什么？",
            alts=phr(["{n}主要内容是什么", "{n}是干啥的", "{n}搞哪些活动"]),
            keywords=[name, "主要内容"], origin="alliance", source=src, answers=["what"],
            answer=f"{full}的主要内容：{g.get('content', '')}"))
        projects = g.get("projects", [])
        if projects:
            listing = "；".join(f"{p['type']}：{p['name']}（{quarters_text(p['quarters'])}）"
                               for p in projects)
            out.append(Entry(
                id=f"alliance-{key}-projects", question=f"{name}共同体2025年有哪些项目？",
                alts=phr(["{n}有什么项目", "{n}的规定项目和自选项目", "{n}今年搞什么项目"]),
                keywords=[name, "项目"], origin="alliance", source=src, answers=["when", "list"],
                answer=f"{full}2025年的项目：{listing}。"))
        for i, p in enumerate(projects, 1):
            short = project_short(p["name"])
            out.append(Entry(
                id=f"alliance-{key}-project{i}", question=f"{short}是哪个共同体的项目？在几季度？",
                alts=[f"{short}是哪个组的", f"{short}几季度", f"{short}什么时候",
                      f"{short}哪个共同体负责", f"{p['name']}是谁办的"],
                keywords=[short], origin="alliance", source=src, answers=["who", "when"],
                answer=(f"“{p['name']}”是{full}的{p['type']}，时间安排在"
                        f"{quarters_text(p['quarters'])}（2025年项目汇总表）。牵头单位是{lead['unit']}。")))
        group_members[name] = [m["short"] for m in members]
        by_unit.setdefault(lead["short"], []).append((name, lead, "牵头单位", lead))
        for m in members:
            by_unit.setdefault(m["short"], []).append((name, m, "成员单位", lead))
        for a in g.get("advisors", []):
            by_advisor.setdefault(a, []).append(name)
        for f in g.get("focus", []):
            by_focus.setdefault(f, []).append(name)

    for short, roles in by_unit.items():
        # members nearly always ask "which group" and "who leads it" together
        parts = "；".join(f"{u['unit']}是“{g}”团建共同体的{role}"
                         + ("" if role == "牵头单位" else f"，该组牵头单位是{lead['short']}（{lead['unit']}）")
                         + (f"，同组的{'成员' if role == '牵头单位' else '其他成员'}单位有"
                            + "、".join(m for m in group_members[g] if m != short) if group_members[g] else "")
                         for g, u, role, lead in roles)
        lead_of = [g for g, _, role, _ in roles if role == "牵头单位"]
        alts = [f"{short}在哪个共同体", f"{short}是哪个组的", f"{short}属于哪个共同体",
                f"{short}在联盟里哪个组", f"{short}参加哪个共同体"]
        if lead_of:
            alts += [f"{short}牵头的是哪个共同体", f"{short}牵头哪个组", f"{short}负责哪个共同体"]
        out.append(Entry(id=f"alliance-unit-{short}", question=f"{short}在哪个团建共同体？",
                         alts=alts, keywords=[short], origin="alliance",
                         source=src, answers=["who"], answer=parts + "。"))
    for advisor, names in by_advisor.items():
        joined = "、".join(f"“{n}”" for n in names)
        out.append(Entry(
            id=f"alliance-advisor-{advisor}", question=f"{advisor}的青年是哪个共同体的青年指导员？",
            alts=[f"{advisor}青年在联盟里是哪个组的指导员", f"{advisor}指导哪个共同体",
                  f"{advisor}的青年在联盟里干啥"],
            keywords=[advisor, "青年指导员"], origin="alliance", source=src, answers=["who"],
            answer=f"{advisor}的青年担任{joined}团建共同体的青年指导员。"))
    for focus, names in by_focus.items():
        joined = "、".join(f"“{n}”" for n in names)
        plain = focus[:-2] if focus.endswith("青年") and len(focus) > 3 else focus
        out.append(Entry(
            id=f"alliance-focus-{focus}", question=f"{focus}适合加入哪个共同体？",
            alts=[f"我是{plain}适合加入哪个共同体", f"{focus}是哪个组的重点对象",
                  f"{plain}该去哪个组", f"{plain}参加哪个共同体"],
            keywords=[plain], origin="alliance", source=src, answers=["who"],
            answer=f"{focus}是{joined}团建共同体的重点对象，适合参加该组的活动。"))
    return out


def load_entries(data_dir: Path = DATA_DIR) -> list[Entry]:
    """Curated + structured entries. Raises KnowledgeDataError on duplicate ids."""
    entries = load_curated(data_dir) + alliance_entries(load_alliance(data_dir))
    seen: set[str] = set()
    for e in entries:
        if e.id in seen:
            raise KnowledgeDataError(f"条目 id 重复：{e.id}")
        seen.add(e.id)
    return entries
