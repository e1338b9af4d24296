"""需求征集 from the chat: `提需求 内容` records a need (or `提需求` alone, then the text),
`我的需求` lists the member's needs with where each stands."""
from __future__ import annotations

import re
import unicodedata
from datetime import timedelta

from alliance import groups
from alliance import needs as service
from clock import from_db
from handlers import words
from handlers.router import Context, Reply
from storage import dialogs
from wechat.messages import Message

WAITING = "needs.content"
RAISE = re.compile(r"^(?:提需求|提交需求|我要提需求|我有需求)(?:\s*[:：]\s*|\s+)(.+)$", re.S)
RAISE_BARE = {"提需求", "提交需求", "我要提需求", "我有需求"}
MINE_WORDS = {"我的需求", "需求进度", "我提的需求", "查看需求"}
CANCEL_WORDS = {"取消", "退出", "算了", "cancel", "q"}
COMMANDS = ("报名", "我要报名", "取消报名", "签到", "订阅", "退订", "我的", "帮助", "更多", "绑定",
            "通知", "确认")
ASK = (f"请直接回复你的需求（{service.MIN_CHARS}–{service.MAX_CHARS} 字），例如：希望组织一次"
       "无人机执法观摩。也可以一次发：提需求 内容。回复“取消”退出。")
NO_PROFILE = ("提需求前请先登记信息，需求会按你的单位归入所在共同体。\n"
              "回复：绑定 姓名 单位，例如：绑定 张三 虹口区城管执法局")
NONE_YET = "你还没有提交过需求。回复“提需求 内容”提交，例如：提需求 希望组织一次执法案例研讨。"


def step(msg: Message, ctx: Context) -> Reply | None:
    """The text after a bare `提需求` is the need; anything that is a command is left alone."""
    state = dialogs.get(ctx.db, msg.openid, ctx.now)
    if state is None or state[0] != WAITING:
        return None
    text = _clean(msg.text)
    dialogs.clear(ctx.db, msg.openid)  # one answer ends the dialog, whatever it is
    if text in CANCEL_WORDS:
        return Reply(words.DIALOG_CANCELLED, topic="needs.leave")
    if text in RAISE_BARE or RAISE.match(text) or text.startswith(COMMANDS):
        return None  # the command handlers below answer it
    return _record(msg, ctx, text)


def raise_need(msg: Message, ctx: Context) -> Reply | None:
    """`提需求 内容`, or `提需求` alone (then the next message is the need)."""
    text = _clean(msg.text)
    m = RAISE.match(text)
    if not m and text not in RAISE_BARE:
        return None
    if not _unit(ctx):
        return Reply(NO_PROFILE, topic="needs.profile")
    if not m:
        expires = ctx.now + timedelta(minutes=ctx.settings.dialog_timeout_minutes)
        dialogs.put(ctx.db, msg.openid, WAITING, {}, expires)
        return Reply(ASK, topic="needs.ask")
    return _record(msg, ctx, m.group(1))


def mine(msg: Message, ctx: Context) -> Reply | None:
    """`我的需求`: the member's latest needs, newest first, each with its status."""
    if _clean(msg.text) not in MINE_WORDS:
        return None
    items = service.member_needs(ctx.db, msg.openid)
    if not items:
        return Reply(NONE_YET, topic="needs.mine")
    lines = ["你提交的需求："]
    for n in items:
        day = f"{from_db(n['created_at']).astimezone(ctx.tz):%m-%d}"
        short = n["content"] if len(n["content"]) <= 40 else n["content"][:40] + "…"
        lines.append(f"{n['id']}. {short}\n   {day} · {groups.name_of(n['grp'])} · "
                     f"{service.status_line(n)}")
    lines.append("状态有变化时会通知你。")
    return Reply("\n".join(lines), topic="needs.mine")


def _record(msg: Message, ctx: Context, content: str) -> Reply:
    unit = _unit(ctx)
    if not unit:
        return Reply(NO_PROFILE, topic="needs.profile")
    try:
        raised = service.raise_need(ctx.db, msg.openid, unit, content, ctx.now)
    except service.NeedError as exc:
        return Reply(f"{exc}。", topic="needs.invalid")
    need = raised.need
    group = groups.by_key(need["grp"])
    where = (f"已记入“{group.name}”共同体" if group
             else "你的单位暂未对应到共同体，组织者会为它归组")
    head = "这条需求已经收到过" if raised.duplicate else "已收到你的需求"
    return Reply(f"{head}（编号 {need['id']}），{where}。组织者处理后会通知你；"
                 "回复“我的需求”查看进度。", topic=f"need:{need['id']}")


def _unit(ctx: Context) -> str | None:
    return (ctx.member or {}).get("unit") or None


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip()
