"""Questions: schedule questions relative to today, then the knowledge base; below the
confidence threshold a decline with numbered "你是不是想问" suggestions, recorded for organisers."""
from __future__ import annotations

import html
import re
from datetime import timedelta

from activities import service
from alliance import groups
from handlers import words
from handlers.router import Context, Reply
from knowledge import engine_for
from knowledge import facets, plans
from knowledge.schedule import describe, parse_period
from storage import dialogs
from storage import knowledge as kb_store
from wechat.messages import Message

SUGGEST_STATE = "kb_suggest"
SUGGEST_KEEP = timedelta(minutes=10)
NOT_FOUND = "没有找到这个问题的答案。"
UNIT_UNKNOWN = ("我还不知道你在哪个单位，所以没法回答“我们单位”的问题。回复：绑定 姓名 单位 登记一下"
                "（例如：绑定 张三 虹口区城管执法局），或者直接说区名，比如“虹口在哪个共同体”。")
_ABOUT_GROUPS = re.compile(r"共同体|哪个组|哪一组|牵头|联盟|成员单位")
_OWN_UNIT = re.compile(r"我们(?:单位|区局|区(?!层面)|局(?!层面)|中队(?!层面)|大队|支队)|我(?:的|所在的?)?单位|本单位|咱们?(?:单位|区|局)")
_DETAIL_KINDS = set(facets.STRICT) - {"when", "future", "count"}
_RELATIVE_TIME = re.compile(r"今年|本年度|这个月|本月|下个月|下月|这个季度|本季度|下个季度|下季度|最近|马上|接下来")
_PLAN_YEAR = re.compile(r"(20[2-3]\d)年")
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
    text = engine.normalize(msg.text)
    period = parse_period(text, ctx.local_now)
    if period is None or facets.asked(text) & _DETAIL_KINDS:
        return None  # "3月的女职工活动几号、在哪" asks a detail: the knowledge base says what it can
    plan = plans.for_year(ctx.db, period.year)
    return Reply(describe(period, plan.items, _activities_in(ctx, period), ctx.tz,
                          union_year=plan.union_year, projects_year=plan.projects_year,
                          citation=plan.citation),
                 topic=f"schedule:{period.kind}", answered=True)


def ask(msg: Message, ctx: Context) -> Reply | None:
    if not msg.text:
        return None
    engine = engine_for(ctx.rt)
    question, unit_missing = _own_unit(msg.text, ctx)
    answer = engine.answer(question)
    if unit_missing and not answer.confident and _ABOUT_GROUPS.search(msg.text):
        return Reply(UNIT_UNKNOWN, topic="own-unit", answered=False)
    text = answer.text
    if answer.confident:
        return Reply(_with_year(text, msg.text, ctx), topic=answer.entry_id, answered=True)
    if answer.kind == "choose":
        _offer(ctx, msg.openid, answer.suggestions)
        lines = ["你想问的是哪一个？"]
        lines += [_suggestion_line(n, q, ctx) for n, (_, q) in enumerate(answer.suggestions, 1)]
        lines.append("回复数字查看。")
        return Reply("\n".join(lines), topic="choose", answered=None)
    kb_store.record_unanswered(ctx.db, msg.text[:500], engine.normalize(msg.text)[:200] or msg.text,
                               ctx.now)
    if answer.kind == "not_stated":
        return Reply(text + "\n这个问题我已记下，会请组织者补充。", topic="unanswered",
                     answered=False)
    if not answer.suggestions:
        return Reply(NOT_FOUND + "这个问题我已记下，会请组织者补充。\n回复“帮助”看看我能回答哪些问题。",
                     topic="unanswered", answered=False)
    _offer(ctx, msg.openid, answer.suggestions)
    lines = [NOT_FOUND + "你是不是想问："]
    lines += [_suggestion_line(n, q, ctx) for n, (_, q) in enumerate(answer.suggestions, 1)]
    lines.append("回复数字查看；这个问题我也已记下，会请组织者补充。")
    return Reply("\n".join(lines), topic="unanswered", answered=False)


def _offer(ctx: Context, openid: str, suggestions: list[tuple[str, str]]) -> None:
    dialogs.put(ctx.db, openid, SUGGEST_STATE, {"ids": [i for i, _ in suggestions]},
                ctx.now + SUGGEST_KEEP)


def _suggestion_line(n: int, question: str, ctx: Context) -> str:
    """A numbered suggestion; with BOT_TAPPABLE_SUGGESTIONS, a WeChat menu link the member taps
    to send the number (weixin://bizmsgmenu, shown by WeChat in text replies)."""
    if not ctx.settings.tappable_suggestions:
        return f"{n}. {question}"
    safe = html.escape(question, quote=True)
    return f'<a href="weixin://bizmsgmenu?msgmenucontent={n}&msgmenuid={n}">{n}. {safe}</a>'


def _own_unit(text: str, ctx: Context) -> tuple[str, bool]:
    """"我们单位在哪个组" from a member whose unit is registered asks about that unit."""
    if not _OWN_UNIT.search(text):
        return text, False
    found = groups.unit_of((ctx.member or {}).get("unit"))
    if not found:
        return text, True
    unit, group = found
    return _OWN_UNIT.sub(dict(group.units)[unit], text), False


def _with_year(text: str, question: str, ctx: Context) -> str:
    """Questions about 今年/这个月/下个季度 are told which year's plan the answer is from."""
    if not _RELATIVE_TIME.search(question):
        return text
    years = sorted(set(_PLAN_YEAR.findall(text)))
    this_year = ctx.local_now.year
    if not years or str(this_year) in years:
        return text
    return (text + f"\n（提示：以上是{years[-1]}年文件中的安排；{this_year}年的计划以正式发布为准，"
            "发布后组织者会更新。）")


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
