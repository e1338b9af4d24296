"""Sends due outbox rows through the channel WeChat's rules allow, retrying what may succeed later.

Channel: customer-service (within WECHAT_CS_WINDOW_HOURS of the member's last message, at most
WECHAT_CS_MAX_MESSAGES in that window) -> template message -> subscribe message -> unreachable.
A row is marked sent only after WeChat accepted it, so a crash can only repeat the one
message that was on the wire.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable

from clock import fmt_local, from_db
from privacy import mask_openid
from scheduler import jobs
from storage import deliveries, members
from wechat.api import WeChatAPI, WeChatAPIError
from wechat.templates import TemplateFieldError
from wechat.templates import check as check_template_fields

if TYPE_CHECKING:
    from runtime import Runtime

log = logging.getLogger(__name__)
CLAIM_FOR = timedelta(minutes=2)  # a claimed row is retried after this if its sender died
BACKOFF_BASE = timedelta(seconds=15)
BACKOFF_MAX = timedelta(minutes=30)
BATCH = 200
CATCH_UP_SPACING = 0.5  # a late limiter may send this share of 1/rate apart until on time
CS_REFUSED = {45015, 45047}  # outside the window / over the count: try the next channel
REMINDER_KINDS = ("reminder", "recurring")  # sent with WECHAT_TEMPLATE_REMINDER


def report_words(report: str | None) -> str:
    """WeChat's TEMPLATESENDJOBFINISH status as organisers read it."""
    if report is None:
        return "微信尚未回报"
    key = report.replace(" ", "").lower()
    return {"success": "微信确认送达", "failed:userblock": "成员拒收（已关闭模板消息）",
            "failed:systemfailed": "微信系统原因未送达"}.get(key, f"微信回报：{report}")


def backoff(attempt: int) -> timedelta:
    """15 s, 30 s, 1 min, 2 min … capped at 30 min."""
    return min(BACKOFF_BASE * (2 ** max(0, attempt - 1)), BACKOFF_MAX)


@dataclass(frozen=True)
class CsWindow:
    """What WeChat allows now for customer-service messages to one member."""

    open: bool  # within the window and under the cap
    hours_left: float  # 0 when the window has closed
    messages_left: int  # of the cap, in this window
    last_seen: datetime | None
    why_not: str = ""  # when not open, in the words the outbox records


def cs_window(db, settings, member: dict, now: datetime) -> CsWindow:
    """WeChat's rule: customer-service messages only within WECHAT_CS_WINDOW_HOURS of the
    member's last message, at most WECHAT_CS_MAX_MESSAGES of them since that message."""
    window = timedelta(hours=settings.wechat_cs_window_hours)
    last_seen = from_db(member.get("last_seen"))
    if not last_seen or now - last_seen >= window:
        return CsWindow(False, 0.0, 0, last_seen,
                        f"成员超过 {settings.wechat_cs_window_hours:g} 小时未互动，不能发客服消息")
    hours_left = (last_seen + window - now).total_seconds() / 3600
    left = settings.wechat_cs_max_messages - deliveries.custom_sent_since(db, member["openid"],
                                                                         last_seen)
    if left <= 0:
        return CsWindow(False, hours_left, 0, last_seen,
                        f"{settings.wechat_cs_window_hours:g} 小时内客服消息已达 "
                        f"{settings.wechat_cs_max_messages} 条上限")
    return CsWindow(True, hours_left, left, last_seen)


class RateLimiter:
    """At most `rate` calls in any one second from this process (rate <= 0: no limit).

    Calls keep a schedule 1/rate apart. A call that comes late (a slow answer, a busy
    machine) does not move the schedule: the next ones catch up, spaced at least half
    as far apart, while no window of cap/rate seconds holds more than `cap` calls (cap:
    the rate rounded down, at least 1; so one second and `rate` calls for whole rates).
    So a broadcast goes out at the rate set, not a little under."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.cap = max(1, int(rate)) if rate > 0 else 0
        self.window = self.cap / rate if rate > 0 else 0.0
        self._clock, self._sleep = clock, sleep
        self._sent: deque[float] = deque(maxlen=self.cap or 1)  # the latest calls, oldest first
        self._next = clock()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            if now - self._next > self.window:  # idle for a while: no debt to make up
                self._next = now
            at = self._next
            if self._sent:
                at = max(at, self._sent[-1] + self.interval * CATCH_UP_SPACING)
            if len(self._sent) == self.cap:
                at = max(at, self._sent[0] + self.window)
            if at > now:
                self._sleep(at - now)
                now = self._clock()
            self._sent.append(max(now, at))
            self._next += self.interval


class Dispatcher:
    """Claims due rows and sends them one at a time (so at most one is ever in flight)."""

    def __init__(self, rt: "Runtime", api: WeChatAPI, owner: str | None = None,
                 keep_going: Callable[[], bool] | None = None):
        self.rt, self.api = rt, api
        self.owner = owner or f"dispatcher-{uuid.uuid4().hex[:8]}"
        self.keep_going = keep_going or (lambda: True)
        self.limiter = RateLimiter(rt.settings.send_rate)
        rate = rt.settings.send_rate
        # claim no more than can be sent well within the claim's lifetime
        self.batch = BATCH if rate <= 0 else max(1, min(BATCH, int(rate * 30)))
        self.stats = {"sent": 0, "retried": 0, "failed": 0, "unreachable": 0, "dropped": 0,
                      "cancelled": 0}

    def run_once(self, limit: int | None = None) -> int:
        """Send what is due now; returns how many rows were handled."""
        db = self.rt.db()
        rows = deliveries.claim_due(db, self.rt.clock.now(), limit or self.batch, CLAIM_FOR,
                                    self.owner)
        claimed_at = time.monotonic()
        for n, row in enumerate(rows):
            late = time.monotonic() - claimed_at > CLAIM_FOR.total_seconds() / 2
            if late or not self.keep_going():
                for rest in rows[n:]:  # hand back what this round will not get to
                    deliveries.release(db, rest["id"], self.rt.clock.now())
                return n
            self._deliver(row)
        return len(rows)

    def drain(self, max_rounds: int = 1000) -> None:
        """Run until nothing is due (tests, `bot.py deliveries --send`)."""
        for _ in range(max_rounds):
            if not self.run_once():
                return

    def _deliver(self, row: dict) -> None:
        db = self.rt.db()
        now = self.rt.clock.now()
        expires = from_db(row["expires_at"])
        if expires and now >= expires:
            deliveries.mark_final(db, row["id"], "dropped", "已过时效（活动已开始），未发送")
            self.stats["dropped"] += 1
            return
        verdict, reason = jobs.verdict(self.rt, row)
        if verdict == "cancel":
            deliveries.mark_final(db, row["id"], "cancelled", reason)
            self.stats["cancelled"] += 1
            return
        if verdict == "replan":  # the activity moved since this row was planned
            deliveries.release(db, row["id"], now)
            jobs.plan_activity(self.rt, row_activity(row))
            return
        member = members.get(db, row["openid"])
        if member is None or not member["subscribed"]:
            deliveries.mark_final(db, row["id"], "unreachable", "成员已取消关注公众号，跳过")
            self.stats["unreachable"] += 1
            return
        channels, why_not = self._channels(row, member, now)
        for channel in channels:
            self.limiter.wait()
            try:
                answer = self._send(channel, row)
            except TemplateFieldError as exc:  # never sent: WeChat would answer 47003
                deliveries.mark_final(db, row["id"], "failed", str(exc), channel)
                self.stats["failed"] += 1
                return
            except WeChatAPIError as exc:
                if channel == "custom" and exc.errcode in CS_REFUSED:
                    why_not.insert(0, exc.reason)
                    continue
                self._failed(row, exc, channel)
                return
            msgid = answer.get("msgid") if channel == "template" else None
            deliveries.mark_sent(db, row["id"], channel, self.rt.clock.now(),
                                 str(msgid) if msgid is not None else None)
            self.stats["sent"] += 1
            return
        deliveries.mark_final(db, row["id"], "unreachable", "无可用渠道：" + "；".join(why_not))
        self.stats["unreachable"] += 1
        log.info("delivery %s to %s unreachable: %s", row["id"], mask_openid(row["openid"]),
                 why_not)

    def _channels(self, row: dict, member: dict, now: datetime) -> tuple[list[str], list[str]]:
        """The channels to try in order, and why each missing one is missing."""
        s = self.rt.settings
        out: list[str] = []
        why_not: list[str] = []
        window = cs_window(self.rt.db(), s, member, now)
        if window.open:
            out.append("custom")
        else:
            why_not.append(window.why_not)
        if self._template_id(row):
            out.append("template")
        else:
            why_not.append("未配置模板消息 " + ("WECHAT_TEMPLATE_REMINDER"
                                          if row["kind"] in REMINDER_KINDS
                                          else "WECHAT_TEMPLATE_NOTICE"))
        if s.wechat_subscribe_template:
            out.append("subscribe")
        else:
            why_not.append("未配置订阅通知 WECHAT_SUBSCRIBE_TEMPLATE")
        return out, why_not

    def _template_id(self, row: dict) -> str:
        s = self.rt.settings
        return s.wechat_template_reminder if row["kind"] in REMINDER_KINDS \
            else s.wechat_template_notice

    def _send(self, channel: str, row: dict) -> dict:
        """Send one row on one channel; returns WeChat's answer (a template's carries msgid)."""
        data = json.loads(row["data"]) if row["data"] else {}
        if channel == "custom":
            return self.api.send_custom_text(row["openid"], row["text"])
        if channel == "template":
            fields = template_fields(row, data, self.rt.settings.tz)
            check_template_fields(fields)
            return self.api.send_template(row["openid"], self._template_id(row), fields,
                                          client_msg_id=client_msg_id(row))
        return self.api.send_subscribe(row["openid"], self.rt.settings.wechat_subscribe_template,
                                       subscribe_fields(row, data, self.rt.settings.tz))

    def _failed(self, row: dict, exc: WeChatAPIError, channel: str) -> None:
        db = self.rt.db()
        who = mask_openid(row["openid"])
        max_attempts = self.rt.settings.send_max_attempts
        if exc.transient and row["attempts"] < max_attempts:
            at = self.rt.clock.now() + backoff(row["attempts"])
            deliveries.mark_retry(db, row["id"], str(exc), at)
            self.stats["retried"] += 1
            log.info("delivery %s to %s: %s, retry at %s", row["id"], who, exc, at)
            return
        reason = exc.reason
        if exc.transient:
            reason = f"重试 {row['attempts']} 次仍失败：{exc}"
        if exc.errcode == 43004:
            members.mark_unsubscribed(db, row["openid"], self.rt.clock.now())
        deliveries.mark_final(db, row["id"], "failed", reason, channel)
        self.stats["failed"] += 1
        log.warning("delivery %s to %s failed: %s", row["id"], who, reason)


def client_msg_id(row: dict) -> str:
    """The outbox row's id: WeChat sends one template message per openid and client_msg_id,
    so a resend after a crash between sending and recording is dropped by WeChat."""
    return str(row["id"])


def row_activity(row: dict) -> int | None:
    data = json.loads(row["data"]) if row.get("data") else {}
    return data.get("activity_id")


def _cap(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n - 1] + "…"


def template_fields(row: dict, data: dict, tz=None) -> dict:
    """Template-message fields (see README): first = the title, keyword1 = what (activity or
    notice), keyword2 = when, keyword3 = where / who, remark = the full text.

    WeChat stopped showing first/remark in 2023, so keyword1-3 alone must say what matters.
    """
    when = data.get("keyword2") or (fmt_local(from_db(row["due_at"]), tz) if tz else "")
    return {"first": row["title"] or "诚城青年助手通知",
            "keyword1": _cap(data.get("keyword1") or row["title"] or row["text"], 20),
            "keyword2": _cap(when, 20),
            "keyword3": _cap(data.get("keyword3") or "诚城青年助手", 20),
            "remark": _cap(row["text"], 200)}


def subscribe_fields(row: dict, data: dict, tz=None) -> dict:
    """订阅通知 fields: thing1 (what, ≤20 chars), time2 (a real time: WeChat rejects
    free text there), thing3 (the message, ≤20 chars)."""
    moment = from_db(data.get("time")) if data.get("time") else from_db(row["due_at"])
    here = moment.astimezone(tz) if tz else moment
    return {"thing1": _cap(data.get("keyword1") or row["title"] or "通知", 20),
            "time2": f"{here.year}年{here.month}月{here.day}日 {here:%H:%M}",
            "thing3": _cap(row["text"], 20)}
