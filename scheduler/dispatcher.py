"""Sends due outbox rows through the channel WeChat's rules allow, retrying what may succeed later.

Channel: customer-service (within WECHAT_CS_WINDOW_HOURS of the member's last message, at most
WECHAT_CS_MAX_MESSAGES in that window) -> template message -> subscribe message -> unreachable.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from clock import from_db
from privacy import mask_openid
from storage import deliveries, members
from wechat.api import WeChatAPI, WeChatAPIError

if TYPE_CHECKING:
    from runtime import Runtime

log = logging.getLogger(__name__)
CLAIM_FOR = timedelta(minutes=2)  # a claimed row is retried after this if its sender died
BACKOFF_BASE = timedelta(seconds=15)
BACKOFF_MAX = timedelta(minutes=30)
BATCH = 200
CS_REFUSED = {45015, 45047}  # outside the window / over the count: try the next channel


def backoff(attempt: int) -> timedelta:
    """15 s, 30 s, 1 min, 2 min … capped at 30 min."""
    return min(BACKOFF_BASE * (2 ** max(0, attempt - 1)), BACKOFF_MAX)


class RateLimiter:
    """At most `rate` calls per second from this process."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            if self._next > now:
                time.sleep(self._next - now)
            self._next = max(self._next, now) + self.interval


class Dispatcher:
    def __init__(self, rt: "Runtime", api: WeChatAPI):
        self.rt, self.api = rt, api
        self.limiter = RateLimiter(rt.settings.send_rate)
        self.stats = {"sent": 0, "retried": 0, "failed": 0, "unreachable": 0, "dropped": 0}

    def run_once(self, limit: int = BATCH) -> int:
        """Send what is due now; returns how many rows were handled."""
        db = self.rt.db()
        rows = deliveries.claim_due(db, self.rt.clock.now(), limit, CLAIM_FOR)
        for row in rows:
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
        member = members.get(db, row["openid"])
        if member is None or not member["subscribed"]:
            deliveries.mark_final(db, row["id"], "unreachable", "43004 成员已取消关注")
            self.stats["unreachable"] += 1
            return
        for channel in self._channels(row, member, now):
            self.limiter.wait()
            try:
                self._send(channel, row)
            except WeChatAPIError as exc:
                if channel == "custom" and exc.errcode in CS_REFUSED:
                    continue
                self._failed(row, exc, channel)
                return
            deliveries.mark_sent(db, row["id"], channel, self.rt.clock.now())
            self.stats["sent"] += 1
            return
        deliveries.mark_final(db, row["id"], "unreachable",
                              "超出 48 小时客服消息窗口，且未配置模板/订阅通知")
        self.stats["unreachable"] += 1

    def _channels(self, row: dict, member: dict, now: datetime) -> list[str]:
        s = self.rt.settings
        out = []
        last_seen = from_db(member["last_seen"])
        if last_seen and now - last_seen < timedelta(hours=s.wechat_cs_window_hours):
            if deliveries.custom_sent_since(self.rt.db(), row["openid"], last_seen) \
                    < s.wechat_cs_max_messages:
                out.append("custom")
        if self._template_id(row):
            out.append("template")
        if s.wechat_subscribe_template:
            out.append("subscribe")
        return out

    def _template_id(self, row: dict) -> str:
        s = self.rt.settings
        return s.wechat_template_reminder if row["kind"] == "reminder" else s.wechat_template_notice

    def _send(self, channel: str, row: dict) -> None:
        data = json.loads(row["data"]) if row["data"] else {}
        if channel == "custom":
            self.api.send_custom_text(row["openid"], row["text"])
        elif channel == "template":
            self.api.send_template(row["openid"], self._template_id(row),
                                   template_fields(row, data))
        else:
            self.api.send_subscribe(row["openid"], self.rt.settings.wechat_subscribe_template,
                                    subscribe_fields(row, data))

    def _failed(self, row: dict, exc: WeChatAPIError, channel: str) -> None:
        db = self.rt.db()
        who = mask_openid(row["openid"])
        if exc.transient and row["attempts"] < self.rt.settings.send_max_attempts:
            at = self.rt.clock.now() + backoff(row["attempts"])
            deliveries.mark_retry(db, row["id"], str(exc), at)
            self.stats["retried"] += 1
            log.info("delivery %s to %s: %s, retry at %s", row["id"], who, exc, at)
            return
        if exc.errcode == 43004:
            members.touch(db, row["openid"], from_db(members.get(db, row["openid"])["last_seen"])
                          or self.rt.clock.now(), subscribed=False)
        deliveries.mark_final(db, row["id"], "failed", exc.reason, channel)
        self.stats["failed"] += 1
        log.warning("delivery %s to %s failed: %s", row["id"], who, exc.reason)


def template_fields(row: dict, data: dict) -> dict:
    """Classic template fields: first / keyword1..3 / remark (see README)."""
    return {"first": row["title"] or "诚城青年助手通知",
            "keyword1": data.get("keyword1") or (row["title"] or row["text"])[:20],
            "keyword2": data.get("keyword2", ""), "keyword3": data.get("keyword3", ""),
            "remark": row["text"][:200]}


def subscribe_fields(row: dict, data: dict) -> dict:
    """订阅通知 fields: thing1 (title), time2 (time), thing3 (content), each WeChat-length capped."""
    return {"thing1": (row["title"] or "通知")[:20], "time2": data.get("keyword2", "")[:20],
            "thing3": row["text"][:20]}
