"""Time-aware schedule answers: "这个月有什么活动", "下个季度呢", "12月有啥安排".

Answered from the calendars (the union's month list, the alliance's quarter table) relative
to today in BOT_TIMEZONE, never by echoing the whole table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from knowledge.calendar import QUARTER_MONTHS, when_words
from knowledge.data import QUARTER_WORDS

CN_MONTHS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
             "十": 10, "十一": 11, "十二": 12}
_RELATIVE = [
    (re.compile(r"这个月|本月|这月|当月"), "month", 0),
    (re.compile(r"下个月|下月"), "month", 1),
    (re.compile(r"上个月|上月"), "month", -1),
    (re.compile(r"这个季度|本季度|这季度|这一季度"), "quarter", 0),
    (re.compile(r"下个季度|下季度|下一季度"), "quarter", 1),
    (re.compile(r"上个季度|上季度"), "quarter", -1),
]
_MONTH = re.compile(r"(?<![\d季])(1[0-2]|[1-9]|十[一二]?|[一二三四五六七八九])月份?(?:份)?")
_QUARTER = re.compile(r"([一二三四1-4])季度")
_ABOUT_PLANS = re.compile(r"活动|安排|项目|计划|有啥|有什么|干啥|做啥|日程|日历|要做|什么事|哪些事|"
                          r"有哪些|忙什么|^(?:那)?(?:这个月|下个月|下月|本月|这个季度|下个季度|下季度)呢?$")


@dataclass
class Period:
    kind: str  # month | quarter
    year: int
    number: int  # month 1-12 or quarter 1-4
    label: str

    @property
    def months(self) -> list[int]:
        return [self.number] if self.kind == "month" else QUARTER_MONTHS[self.number]


def parse_period(text: str, today: datetime) -> Period | None:
    """The period a schedule question is about, or None if it is not one."""
    if not _ABOUT_PLANS.search(text):
        return None
    for pattern, kind, offset in _RELATIVE:
        if pattern.search(text):
            if kind == "month":
                index = today.year * 12 + today.month - 1 + offset
                year, month = divmod(index, 12)
                label = {0: "这个月", 1: "下个月", -1: "上个月"}[offset]
                return Period("month", year, month + 1, f"{label}（{year}年{month + 1}月）")
            q_index = today.year * 4 + (today.month - 1) // 3 + offset
            year, q = divmod(q_index, 4)
            label = {0: "本季度", 1: "下个季度", -1: "上个季度"}[offset]
            return Period("quarter", year, q + 1, f"{label}（{year}年{QUARTER_WORDS[q + 1]}）")
    quarter = _QUARTER.search(text)
    if quarter and "几季度" not in text:
        q = {"一": 1, "二": 2, "三": 3, "四": 4}.get(quarter.group(1)) or int(quarter.group(1))
        return Period("quarter", today.year, q, QUARTER_WORDS[q])
    month = _MONTH.search(text)
    if month and "几月" not in text:
        raw = month.group(1)
        number = int(raw) if raw.isdigit() else CN_MONTHS[raw]
        return Period("month", today.year, number, f"{number}月")
    return None


def describe(period: Period, items: list, activities: list[dict], tz, *, union_year: int = 2025,
             projects_year: int | None = 2025, citation: str = "") -> str:
    """The reply: calendar items of the period, the standing ones, and published activities;
    it says which year's plan it reads when that is not the year asked about."""
    months = set(period.months)
    union_lines, alliance_lines, standing = [], [], []
    for item in items:
        item_months = set(item.months or [])
        if item.kind == "alliance":
            if item_months & months:
                alliance_lines.append(f"· {item.name}（{when_words(item)}）")
            continue
        if item.all_year and item.recurrence != "quarterly":
            standing.append(item.name)
        elif item.recurrence == "quarterly":
            union_lines.append(f"· {item.name}（全年，每季度）— {'、'.join(item.departments)}")
        elif item_months & months:
            month_text = "、".join(f"{m}月" for m in sorted(item_months))
            union_lines.append(f"· {item.name}（{month_text}）— {'、'.join(item.departments)}")
    parts = [f"{period.label}的安排："]
    projects_year = projects_year or union_year
    if union_year != period.year or projects_year != period.year:
        used = (f"{union_year}年计划" if union_year == projects_year
                else f"{union_year}年工会计划和{projects_year}年联盟项目表")
        parts.append(f"（{period.year}年的计划还没有载入，以下按{used}的月份和季度安排列出，"
                     f"新计划发布后以新计划为准。）")
    if activities:
        parts.append("已发布的活动（可回复“报名”）：")
        from clock import fmt_local

        for a in activities:
            parts.append(f"· {a['title']}，{fmt_local(a['start_at_dt'], tz)}")
    parts.append(f"工会项目清单（{union_year}年计划，按月份）：")
    parts += union_lines or ["· 这个时间段没有按月安排的工会项目"]
    if standing:
        parts.append("全年进行：" + "、".join(standing))
    parts.append(f"联盟团建共同体项目（{projects_year}年项目汇总表，按季度）：")
    parts += alliance_lines or ["· 这个时间段没有安排联盟项目"]
    parts.append("——出处：" + (citation or "《2025年上海市城管执法局工会工作计划》（沪城管工〔2025〕1号）；"
                 "《上海市城管执法系统“诚城”青年建功联盟团建共同体实施方案》（沪城管团〔2025〕2号）"))
    return "\n".join(parts)
