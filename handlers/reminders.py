"""Members choose their reminders: `订阅提醒` / `退订提醒` (all), `订阅提醒 体检` (one calendar
item or a 共同体's projects), `我的提醒`.

Topics are calendar item keys in member_topics, or '*' for every calendar item; activity
reminders follow members.reminders.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

from clock import fmt_local, from_db
from handlers.router import Context, Reply
from knowledge import calendar
from scheduler import jobs
from storage import deliveries, members
from storage import reminders as store
from wechat.messages import Message

SUBSCRIPTION = re.compile(r"^(订阅|退订)提醒\s*[:：]?\s*(.*)$", re.S)
MINE_WORDS = {"我的提醒", "提醒设置", "我的订阅", "查看提醒"}
KIND_WORDS = {"reminder": "活动提醒", "recurring": "日历提醒", "notice": "通知", "reply": "回复",
              "handoff": "工作人员回复", "handoff-alert": "人工提醒"}


def offsets_words(offsets: tuple[timedelta, ...]) -> str:
    """(24h, 2h) -> '24 小时、2 小时'."""
    out = []
    for offset in offsets:
        seconds = int(offset.total_seconds())
        for size, unit in ((86400, "天"), (3600, "小时"), (60, "分钟"), (1, "秒")):
            if seconds % size == 0 and (size != 86400 or seconds >= 2 * 86400):
                out.append(f"{seconds // size} {unit}")
                break
    return "、".join(out)


def _remindable(items: list[calendar.CalendarItem]) -> list[calendar.CalendarItem]:
    return [i for i in items if i.reminder_months]


def _label(item: calendar.CalendarItem) -> str:
    return f"{item.name}（{calendar.when_words(item)}）"


def subscription(msg: Message, ctx: Context) -> Reply | None:
    match = SUBSCRIPTION.match(msg.text)
    if not match:
        return None
    on, topic = match.group(1) == "订阅", match.group(2).strip()
    if not topic:
        return Reply(_all_on(ctx, msg.openid) if on else _all_off(ctx, msg.openid),
                     topic="reminders")
    items = calendar.load_items()
    found = calendar.find(items, topic)
    if not found:
        examples = "、".join(i.aliases[0] if i.aliases else i.name
                            for i in _remindable(items) if i.kind == "union")
        return Reply(f"没有找到“{topic}”这个提醒项目。可以订阅的有：{examples}，"
                     "以及各共同体的联盟项目（如“订阅提醒 青春法治专研”）。", topic="reminders")
    wanted = _remindable(found)
    if not wanted:
        names = "、".join(f"“{i.name}”" for i in found)
        return Reply(f"{names}是全年开展的项目，没有固定的月份，不单独提醒。", topic="reminders")
    text = _topic_on(ctx, msg.openid, wanted) if on else _topic_off(ctx, msg.openid, wanted, items)
    return Reply(text, topic="reminders")


def _all_on(ctx: Context, openid: str) -> str:
    members.set_reminders(ctx.db, openid, True)
    store.clear_topics(ctx.db, openid)
    members.add_topic(ctx.db, openid, store.ALL_TOPICS, ctx.now)
    return ("已订阅全部提醒：\n"
            f"• 报名的活动开始前 {offsets_words(ctx.settings.reminder_offsets)}提醒你\n"
            "• 工会日历和联盟项目到月提醒（如体检、集体生日会、各共同体的季度项目）\n"
            "回复“退订提醒 体检”可只退某一项，回复“我的提醒”查看。")


def _all_off(ctx: Context, openid: str) -> str:
    members.set_reminders(ctx.db, openid, False)
    store.clear_topics(ctx.db, openid)
    jobs.cancel_member(ctx.rt, openid)
    return ("已退订全部提醒，今后不会再收到活动提醒和日历提醒（组织者群发的通知仍会收到）。"
            "回复“订阅提醒”可重新订阅。")


def _topic_on(ctx: Context, openid: str, wanted: list[calendar.CalendarItem]) -> str:
    was_off = not (ctx.member or {}).get("reminders", 1)
    members.set_reminders(ctx.db, openid, True)
    tail = "（活动提醒也已重新开启。）" if was_off else ""
    if store.ALL_TOPICS in members.topics(ctx.db, openid):
        return f"你已订阅全部提醒，其中包括{'、'.join(_label(i) for i in wanted)}。{tail}"
    for item in wanted:
        members.add_topic(ctx.db, openid, item.key, ctx.now)
    if len(wanted) > 1 and wanted[0].group and all(i.group == wanted[0].group for i in wanted):
        head = f"已订阅「{wanted[0].group}」的 {len(wanted)} 个联盟项目提醒："
    else:
        head = "已订阅提醒："
    return (head + "、".join(_label(i) for i in wanted)
            + "。到月初会提醒你；回复“我的提醒”查看。" + tail)


def _topic_off(ctx: Context, openid: str, wanted: list[calendar.CalendarItem],
               items: list[calendar.CalendarItem]) -> str:
    chosen = set(members.topics(ctx.db, openid))
    if store.ALL_TOPICS in chosen:  # "everything but this": spell out the rest
        members.remove_topic(ctx.db, openid, store.ALL_TOPICS)
        for item in _remindable(items):
            members.add_topic(ctx.db, openid, item.key, ctx.now)
        chosen = {i.key for i in _remindable(items)}
    keys = [i.key for i in wanted if i.key in chosen]
    if not keys:
        return f"你没有订阅{'、'.join(f'“{i.name}”' for i in wanted)}的提醒。回复“我的提醒”查看。"
    for key in keys:
        members.remove_topic(ctx.db, openid, key)
    jobs.cancel_member(ctx.rt, openid, keys)
    names = "、".join(f"“{i.name}”" for i in wanted if i.key in keys)
    return f"已退订{names}的提醒。活动提醒不受影响；回复“退订提醒”可全部退订。"


def mine(msg: Message, ctx: Context) -> Reply | None:
    if msg.text not in MINE_WORDS:
        return None
    member = members.get(ctx.db, msg.openid) or {}
    on = bool(member.get("reminders", 1))
    lines = ["活动提醒：" + (f"开启（活动开始前 {offsets_words(ctx.settings.reminder_offsets)}）"
                        if on else "已关闭")]
    chosen = set(members.topics(ctx.db, msg.openid))
    if not on:
        lines.append("日历提醒：已关闭")
    elif store.ALL_TOPICS in chosen:
        lines.append("日历提醒：全部（工会日历和联盟项目）")
    else:
        picked = [i for i in _remindable(calendar.load_items()) if i.key in chosen]
        if picked:
            lines.append(f"日历提醒（{len(picked)} 项）：")
            lines += [f"• {_label(i)}" for i in picked]
        else:
            lines.append("日历提醒：未订阅")
    upcoming = deliveries.pending_for_member(ctx.db, msg.openid, limit=5)
    if upcoming:
        lines.append("即将发送：")
        for row in upcoming:
            when = fmt_local(max(from_db(row["due_at"]), ctx.now), ctx.tz)
            lines.append(f"• {when} {KIND_WORDS.get(row['kind'], row['kind'])}「{_gist(row)}」")
    lines.append("——")
    lines.append("订阅一项：订阅提醒 体检\n退订一项：退订提醒 体检\n全部开关：订阅提醒 / 退订提醒")
    return Reply("\n".join(lines), topic="reminders")


def _gist(row: dict) -> str:
    data = json.loads(row["data"]) if row["data"] else {}
    return (data.get("keyword1") or row["text"])[:20]
