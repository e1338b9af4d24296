"""人工: a member asks for a person (`人工`, `转人工`, `找工作人员`, the menu's 联系工作人员).

While the conversation is open the bot keeps answering commands and what it is sure of; other
free text goes to the person with a short acknowledgement. `结束人工`, an organiser, or
BOT_HANDOFF_TIMEOUT hours of silence end it. After two declines in a row the decline offers
「人工」. Organisers turn alerts on with `订阅人工提醒`.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from clock import from_db
from handlers.router import Context, Reply
from scheduler import handoff as service
from settings import WEEKDAY_NAMES
from storage import dialogs
from storage import handoff as store
from storage.db import immediate
from wechat.messages import Message

OPEN_WORDS = {"人工", "转人工", "找工作人员", "人工客服", "转人工客服", "联系工作人员", "找人工", "人工服务"}
CLOSE_WORDS = {"结束人工", "退出人工", "结束人工对话"}
WATCH_ON, WATCH_OFF = "订阅人工提醒", "退订人工提醒"
OFFER = "回复「人工」联系工作人员。"
ACK = "已转给工作人员，请稍候。（回复「结束人工」可结束对话）"
ALREADY_OPEN = "已通知工作人员，你的留言都会转给他们，请稍候。回复「结束人工」可结束对话。"
CLOSED = "已结束人工对话。有问题继续问我就行；需要时再回复「人工」。"
NOT_OPEN = "现在没有进行中的人工对话。需要工作人员帮忙请回复「人工」。"
ORGANISERS_ONLY = "只有组织者可以订阅人工提醒。"
DECLINE_TOPIC = "unanswered"  # how handlers/knowledge.ask marks a "没有找到"
FORWARDED = {"knowledge.ask", "basic.fallback"}  # replies that mean "the bot cannot help"
_DECOR = re.compile(r"[\s!！。.~～?？,，、]+")


def working_hours_words(settings) -> str:
    """'1-5 09:00-17:30' -> '周一至周五 9:00–17:30'."""
    days, start, end = settings.work_hours
    ordered = sorted(days)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        day_words = f"周{WEEKDAY_NAMES[ordered[0] - 1]}至周{WEEKDAY_NAMES[ordered[-1] - 1]}"
    else:
        day_words = "、".join(f"周{WEEKDAY_NAMES[d - 1]}" for d in ordered)
    return f"{day_words} {start.hour}:{start.minute:02d}–{end.hour}:{end.minute:02d}"


def next_opening(settings, moment: datetime) -> datetime | None:
    """The start of the next working period after `moment` (local time); None while open."""
    days, start, end = settings.work_hours
    here = moment.astimezone(settings.tz)
    if here.isoweekday() in days and start <= here.time() < end:
        return None
    for ahead in range(8):
        day = (here + timedelta(days=ahead)).date()
        opening = datetime.combine(day, start, tzinfo=settings.tz)
        if day.isoweekday() in days and opening > here:
            return opening
    return None


def expect_words(settings, moment: datetime) -> str:
    """When to expect a person's reply, said plainly."""
    hours = working_hours_words(settings)
    opening = next_opening(settings, moment)
    if opening is None:
        return f"现在是工作时间（{hours}），工作人员一般会尽快回复"
    here = moment.astimezone(settings.tz)
    if opening.date() == here.date():
        when = f"今天 {opening.hour}:{opening.minute:02d}"
    elif opening.date() == (here + timedelta(days=1)).date():
        when = f"明天 {opening.hour}:{opening.minute:02d}"
    else:
        when = (f"{opening.month}月{opening.day}日（周{WEEKDAY_NAMES[opening.isoweekday() - 1]}）"
                f"{opening.hour}:{opening.minute:02d}")
    return f"现在是非工作时间（工作时间：{hours}），工作人员预计{when}以后回复"


def _live(ctx: Context, openid: str) -> dict | None:
    """The member's open conversation, closed first if BOT_HANDOFF_TIMEOUT hours were silent."""
    conversation = store.open_for(ctx.db, openid)
    if conversation is None:
        return None
    silence = timedelta(hours=ctx.settings.handoff_timeout_hours)
    if from_db(conversation["last_activity_at"]) <= ctx.now - silence:
        store.close(ctx.db, conversation["id"], ctx.now, "system", store.TIMEOUT_REASON)
        return None
    return conversation


def _word(text: str) -> str:
    return _DECOR.sub("", text or "")


def request(msg: Message, ctx: Context) -> Reply | None:
    """`人工` opens (or keeps) the conversation; `结束人工` ends it; organisers' alert switch."""
    word = _word(msg.text)
    if word in OPEN_WORDS:
        return _open(msg, ctx)
    if word in CLOSE_WORDS:
        conversation = _live(ctx, msg.openid)
        if conversation and store.close(ctx.db, conversation["id"], ctx.now, "member", "member"):
            return Reply(CLOSED, topic="handoff:close")
        return Reply(NOT_OPEN, topic="handoff:close")
    if word in (WATCH_ON, WATCH_OFF):
        if not ctx.is_organiser:
            return Reply(ORGANISERS_ONLY, topic="handoff:watch")
        on = word == WATCH_ON
        store.watch(ctx.db, msg.openid, ctx.now, on)
        return Reply("已订阅人工提醒：有成员需要人工回复时会通知你。" if on
                     else "已退订人工提醒。", topic="handoff:watch")
    return None


def _open(msg: Message, ctx: Context) -> Reply:
    with immediate(ctx.db):
        _live(ctx, msg.openid)
        conversation, created = store.open_conversation(ctx.db, msg.openid, ctx.now,
                                                        via=_word(msg.text))
        if created:
            service.alert_organisers(ctx.rt, conversation, ctx.now)
    if not created:
        return Reply(ALREADY_OPEN, topic="handoff:open")
    return Reply(f"已通知工作人员，{expect_words(ctx.settings, ctx.now)}。\n"
                 "你可以直接在这里留言说明情况；报名、签到等功能照常可用。回复「结束人工」可结束对话。",
                 topic="handoff:open")


def after(msg: Message, ctx: Context, reply: Reply) -> Reply:
    """Runs after the router's answer: in an open conversation a decline becomes a message
    for the person; otherwise a second decline in a row offers 「人工」."""
    if msg.type not in ("text", "voice") or not msg.text or reply.handler.startswith("handoff."):
        return reply
    conversation = _live(ctx, msg.openid)
    declined = reply.handler.rsplit(">", 1)[-1] in FORWARDED and reply.answered is not True
    if conversation is not None:
        store.member_wrote(ctx.db, msg.openid, ctx.now, waiting=declined)
        if not declined:
            return reply
        state = dialogs.get(ctx.db, msg.openid, ctx.now)
        if state and state[0] == "kb_suggest":
            dialogs.clear(ctx.db, msg.openid)  # no numbered list was shown
        return Reply(ACK, handler="handoff.forward", topic="handoff:message",
                     answered=reply.answered)
    if reply.topic == DECLINE_TOPIC and reply.text and \
            store.previous_declined(ctx.db, msg.openid, msg.dedupe_key):
        reply.text = reply.text.rstrip() + "\n" + OFFER
    return reply
