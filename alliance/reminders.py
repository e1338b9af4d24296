"""评议激励's deadline: on 1 November each group's organisers are reminded that the year's
summary is due by the end of the month (planned into the outbox like every other push)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from alliance import groups
from storage import deliveries, immediate
from storage import projects as store

if TYPE_CHECKING:
    from runtime import Runtime

SUMMARY_MONTH = 11  # 沪城管团〔2025〕2号: 各组11月底前汇总建功联盟情况并进行交流展示
SUMMARY_HOUR = 9


def summary_key(year: int, group_key: str, openid: str) -> str:
    return f"summary-due:{year:04d}:{group_key}:{openid}"


def plan_summary_due(rt: "Runtime") -> dict:
    """In November, one reminder per organiser whose unit is in a 共同体, due 09:00 on the 1st
    (at once for an organiser named later in the month), expiring at the month's end."""
    now = rt.clock.now()
    tz = rt.settings.tz
    here = now.astimezone(tz)
    if here.month != SUMMARY_MONTH:
        return {"summary_due_added": 0}
    year = here.year
    due = datetime(year, SUMMARY_MONTH, 1, SUMMARY_HOUR, tzinfo=tz)
    expires = datetime(year, SUMMARY_MONTH + 1, 1, tzinfo=tz)
    db = rt.db()
    added = 0
    with immediate(db):
        for row in store.organisers(db):
            group = groups.group_of_unit(row["unit"])
            if group is None:
                continue
            text = (f"评议激励提醒：按联盟方案，各组11月底前汇总建功联盟情况并交流展示。"
                    f"请在11月30日前完成“{group.name}”共同体{year}年工作汇总；管理后台“项目”页"
                    f"可一键生成（或运行 python bot.py summary --year {year} --group {group.key}）。")
            added += deliveries.enqueue(
                db, dedupe_key=summary_key(year, group.key, row["openid"]),
                openid=row["openid"], kind="summary", title="年度汇总提醒", text=text,
                due_at=due, expires_at=expires, now=now,
                data={"keyword1": f"{group.name}{year}年工作汇总", "keyword2": "11月30日前",
                      "keyword3": group.lead_short})
    return {"summary_due_added": added}
