"""人工 from the staff side: what WeChat allows now, a reply through the outbox, closing, and
the alert to organisers. The console's inbox and `bot.py inbox` both call these."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from scheduler.dispatcher import CsWindow, cs_window
from storage import audit, deliveries, members
from storage import handoff as store
from storage.db import immediate

if TYPE_CHECKING:
    from runtime import Runtime

MAX_REPLY = 600  # characters; WeChat's customer-service text limit is 2048 bytes
ALERT_TEXT = "有成员需要人工回复（当前 {n} 人等待），请到管理后台「人工」页或用 bot.py inbox 处理。"
REPLY_TITLE = "工作人员回复"
CHANNEL_WORDS = {"custom": "客服消息", "template": "通知模板"}


class HandoffError(ValueError):
    """A reply or close that cannot be done; str(exc) says why, in Chinese."""


@dataclass(frozen=True)
class Allowance:
    """What the inbox may send to one member now."""

    window: CsWindow
    queued: int  # staff replies written to the outbox and not sent yet
    template: bool  # WECHAT_TEMPLATE_NOTICE is set: the notice template is the way out

    @property
    def messages_left(self) -> int:
        return max(0, self.window.messages_left - self.queued)

    @property
    def custom_ok(self) -> bool:
        return self.window.open and self.messages_left > 0

    @property
    def time_left(self) -> str:
        """The window's remainder, never rounded up: '47 小时', '35 分钟', '0 小时'."""
        hours = self.window.hours_left
        return f"{max(1, int(hours * 60))} 分钟" if 0 < hours < 1 else f"{int(hours)} 小时"

    @property
    def why_not(self) -> str:
        if self.window.open and not self.messages_left:
            return "本窗口内可发的客服消息已用完（含待发送的回复）"
        return self.window.why_not


def waited(since: datetime | None, now: datetime) -> str:
    """How long someone has waited, as organisers say it: '5 分钟', '2 小时 5 分', '3 天'."""
    if since is None:
        return ""
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 1:
        return "不到 1 分钟"
    if minutes < 60:
        return f"{minutes} 分钟"
    if minutes < 48 * 60:
        return f"{minutes // 60} 小时" + (f" {minutes % 60} 分" if minutes % 60 else "")
    return f"{minutes // 1440} 天"


def expire(rt: "Runtime") -> int:
    """Close conversations silent for BOT_HANDOFF_TIMEOUT hours."""
    return store.close_stale(rt.db(), rt.clock.now(),
                             timedelta(hours=rt.settings.handoff_timeout_hours))


def allowance(rt: "Runtime", openid: str) -> Allowance:
    db = rt.db()
    member = members.get(db, openid) or {"openid": openid, "last_seen": None}
    queued = len(deliveries.with_prefix(db, store.REPLY_PREFIX + openid + ":",
                                        ("pending", "sending")))
    return Allowance(cs_window(db, rt.settings, member, rt.clock.now()), queued,
                     bool(rt.settings.wechat_template_notice))


def reply(rt: "Runtime", conversation: dict, text: str, actor: str, *,
          template: bool = False, nonce: str | None = None) -> int | None:
    """Queue a staff reply (customer-service message; `template`: the notice template outside
    the window) and audit it. Returns the delivery id, None for a repeated nonce (a form sent
    twice). Raises HandoffError when WeChat's rules or the text forbid it."""
    text = (text or "").strip()
    if not text:
        raise HandoffError("回复内容不能为空")
    if len(text) > MAX_REPLY:
        raise HandoffError(f"回复过长（最多 {MAX_REPLY} 字）")
    if conversation["status"] != "open":
        raise HandoffError("这个对话已结束")
    openid = conversation["openid"]
    allowed = allowance(rt, openid)
    if template:
        if not allowed.template:
            raise HandoffError("未配置通知模板 WECHAT_TEMPLATE_NOTICE，无法在窗口外联系成员")
    elif not allowed.custom_ok:
        raise HandoffError(allowed.why_not + "；可以改用通知模板"
                           if allowed.template else allowed.why_not)
    db, now = rt.db(), rt.clock.now()
    key = store.reply_key(openid, nonce or uuid.uuid4().hex)
    channel = "template" if template else "custom"
    with immediate(db):
        if not deliveries.enqueue(db, dedupe_key=key, openid=openid, kind="handoff", text=text,
                                  due_at=now, now=now, title=REPLY_TITLE,
                                  data={"keyword1": REPLY_TITLE, "keyword3": "诚城青年助手",
                                        "channel": channel}):
            return None
        row = deliveries.get(db, key)
        store.staff_replied(db, conversation["id"], now)
        audit.record(db, actor, "人工回复", f"会话 {conversation['id']}",
                     f"{CHANNEL_WORDS[channel]}，{len(text)} 字，推送 {row['id']}", now)
    rt.wake_dispatcher()
    return row["id"]


def close(rt: "Runtime", conversation: dict, actor: str) -> bool:
    db, now = rt.db(), rt.clock.now()
    with immediate(db):
        done = store.close(db, conversation["id"], now, actor, "staff")
        if done:
            audit.record(db, actor, "结束人工对话", f"会话 {conversation['id']}", None, now)
    return done


def alert_organisers(rt: "Runtime", conversation: dict, now: datetime) -> int:
    """Push 有成员需要人工回复 to organisers who opted in (not to the member who asked)."""
    db = rt.db()
    count, _ = store.waiting(db)
    rows = [{"dedupe_key": f"{store.ALERT_PREFIX}{conversation['id']}:{openid}", "openid": openid,
             "kind": "handoff-alert", "text": ALERT_TEXT.format(n=max(count, 1)),
             "title": "有成员需要人工回复", "due_at": now,
             "expires_at": now + timedelta(hours=rt.settings.handoff_timeout_hours),
             "data": {"keyword1": "有成员需要人工回复", "keyword3": f"{max(count, 1)} 人等待"}}
            for openid in store.watchers(db) if openid != conversation["openid"]]
    added = deliveries.enqueue_many(db, rows, now) if rows else 0
    if added:
        rt.wake_dispatcher()
    return added
