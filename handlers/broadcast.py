"""Organisers broadcast from the chat: `通知 <内容>` -> the bot says whom it will reach and
asks for `确认` (send) or `取消` (drop). The pending notice is a dialog row with an expiry.
"""
from __future__ import annotations

import re
from datetime import timedelta

from handlers.router import Context, Reply
from scheduler.broadcast import BroadcastError, audience, check_text, new_batch, queue
from storage import dialogs
from wechat.messages import Message

STATE = "broadcast.confirm"
NOTICE = re.compile(r"^(?:通知|发通知|群发通知)(?:\s*[:：]\s*|\s+)(.*)$", re.S)
CONFIRM_WORDS = {"确认", "确定", "确认发送", "发送"}
CANCEL_WORDS = {"取消", "取消发送", "不发了", "算了"}
NOT_ORGANISER = "只有组织者可以群发通知。需要发通知请联系团工委或工会的组织者。"
EMPTY = "请在“通知”后面写上内容，例如：通知 周六的志愿活动改到上午9点集合。"


def notice(msg: Message, ctx: Context) -> Reply | None:
    """`通知 <text>`: preview and ask for confirmation (organisers only)."""
    match = NOTICE.match(msg.text)
    if not match and msg.text not in ("通知", "发通知", "群发通知"):
        return None
    if not ctx.is_organiser:
        return Reply(NOT_ORGANISER, topic="broadcast.denied")
    try:
        text = check_text(match.group(1) if match else "")
        who = audience(ctx.rt, "all")
    except BroadcastError as exc:
        return Reply(EMPTY if "不能为空" in str(exc) else str(exc), topic="broadcast")
    if not who.openids:
        return Reply("目前没有关注公众号的成员，通知无法发送。", topic="broadcast")
    minutes = ctx.settings.dialog_timeout_minutes
    dialogs.put(ctx.db, msg.openid, STATE, {"text": text, "to": "all", "batch": new_batch(ctx.rt)},
                ctx.now + timedelta(minutes=minutes))
    return Reply(f"将向{who.label}共 {len(who.openids)} 人发送以下通知：\n\n{text}\n\n"
                 f"回复“确认”发送，回复“取消”放弃（{minutes:g} 分钟内有效）。",
                 topic="broadcast.preview")


def confirm(msg: Message, ctx: Context) -> Reply | None:
    """`确认` / `取消` while a notice waits for confirmation; None for anyone else."""
    if msg.text not in CONFIRM_WORDS | CANCEL_WORDS:
        return None
    state = dialogs.get(ctx.db, msg.openid, ctx.now)
    if state is None:
        if dialogs.was_expired(ctx.db, msg.openid, ctx.now) == STATE:
            dialogs.clear(ctx.db, msg.openid)
            return Reply("确认已超时，通知没有发送。请重新发送“通知 内容”。",
                         topic="broadcast.expired")
        return None
    name, data = state
    if name != STATE:
        return None
    dialogs.clear(ctx.db, msg.openid)
    if msg.text in CANCEL_WORDS:
        return Reply("已取消，通知没有发送。", topic="broadcast.cancelled")
    if not ctx.is_organiser:
        return Reply(NOT_ORGANISER, topic="broadcast.denied")
    sender = (ctx.member or {}).get("name") or "组织者"
    try:
        queued = queue(ctx.rt, data["text"], data.get("to", "all"), batch=data["batch"],
                       sender=sender)
    except BroadcastError as exc:
        return Reply(f"通知没有发送：{exc}", topic="broadcast")
    return Reply(f"已开始发送：{queued.label}共 {queued.count} 人。批次 {queued.batch}，"
                 f"可在管理后台或用 python bot.py deliveries --batch {queued.batch} 查看进度。",
                 topic="broadcast.sent")
