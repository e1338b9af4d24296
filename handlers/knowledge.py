"""Questions: schedule questions relative to today, then the knowledge base; below the
confidence threshold a decline with numbered "你是不是想问" suggestions, recorded for organisers."""
from __future__ import annotations

import re
from datetime import timedelta

from activities import service
from handlers import words
from handlers.router import Context, Reply
from knowledge import engine_for
from knowledge.calendar import load_items
from knowledge.schedule import describe, parse_period
from storage import dialogs
from storage import knowledge as kb_store
from wechat.messages import Message

SUGGEST_STATE = "kb_suggest"
SUGGEST_KEEP = timedelta(minutes=10)
NOT_FOUND = "没有找到这个问题的答案。"
_NUMBER = re.compile(r"^\s*([1-9])\s*$")


def choose_suggestion(msg: Message, ctx: Context) -> Reply | None:
    """A number right after a "你是不是想问" list answers that suggestion."""
    match = _NUMBER.match(msg.text)
    if not match and msg.text != "取消":
        return None
    state = dialogs.get(ctx.db, msg.openid, ctx.now)
    if not state or state[0] != SUGGEST_STATE:
        return None
    if not match:
        dialogs.clear(ctx.db, msg.openid)
        return Reply(words.DIALOG_CANCELLED, topic="kb_suggest")
    ids = state[1].get("ids", [])
    index = int(match.group(1)) - 1
    if index >= len(ids):
        return Reply(f"请回复 1–{len(ids)} 之间的数字。", topic="kb_suggest")
    engine = engine_for(ctx.rt)
    entry = engine.entry(ids[index])
    dialogs.clear(ctx.db, msg.openid)
    if entry is None:
        return Reply("这个条目已被更新，请重新提问。", topic="kb_suggest")
    return Reply(engine.format(entry), topic=entry.id, answered=True)


def schedule(msg: Message, ctx: Context) -> Reply | None:
    engine = engine_for(ctx.rt)
    period = parse_period(engine.normalize(msg.text), ctx.local_now)
    if period is None:
        return None
    return Reply(describe(period, load_items(), _activities_in(ctx, period), ctx.tz),
                 topic=f"schedule:{period.kind}", answered=True)


def ask(msg: Message, ctx: Context) -> Reply | None:
    if not msg.text:
        return None
    engine = engine_for(ctx.rt)
    answer = engine.answer(msg.text)
    if answer.confident:
        return Reply(answer.text, topic=answer.entry_id, answered=True)
    kb_store.record_unanswered(ctx.db, msg.text[:500], engine.normalize(msg.text)[:200] or msg.text,
                               ctx.now)
    if not answer.suggestions:
        return Reply(NOT_FOUND + "这个问题我已记下，会请组织者补充。\n回复“帮助”看看我能回答哪些问题。",
                     topic="unanswered", answered=False)
    dialogs.put(ctx.db, msg.openid, SUGGEST_STATE, {"ids": [i for i, _ in answer.suggestions]},
                ctx.now + SUGGEST_KEEP)
    lines = [NOT_FOUND + "你是不是想问："]
    lines += [f"{n}. {q}" for n, (_, q) in enumerate(answer.suggestions, 1)]
    lines.append("回复数字查看；这个问题我也已记下，会请组织者补充。")
    return Reply("\n".join(lines), topic="unanswered", answered=False)


def _activities_in(ctx: Context, period) -> list[dict]:
    """Published activities that start within the period (members can sign up to them)."""
    out = []
    for activity in service.list_open(ctx.db, ctx.now):
        start = service.start_of(activity)
        if start is None:
            continue
        local = start.astimezone(ctx.tz)
        if local.year == period.year and local.month in period.months:
            out.append({**activity, "start_at_dt": start})
    return out
