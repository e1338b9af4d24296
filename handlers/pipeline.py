"""From a parsed message to the reply text: dedupe WeChat's retries, route, keep the 5-second budget.

The messages row is claimed before anything runs, so a retry (same MsgId, or the same
event key) never runs a handler twice: it waits for the first run and gets its reply.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from handlers import words
from handlers.more import paginate
from handlers.router import Context, Reply
from storage import deliveries, members, messages
from wechat.messages import Message

if TYPE_CHECKING:
    from runtime import Runtime

log = logging.getLogger(__name__)
RETRY_POLL_SECONDS = 0.05


def handle(rt: "Runtime", msg: Message) -> str | None:
    """The reply text for a message (None: reply 'success'). Never raises for handler errors."""
    started = time.monotonic()
    deadline = started + rt.settings.reply_budget
    db = rt.db()
    now = rt.clock.now()
    if not messages.claim(db, dedupe_key=msg.dedupe_key, msg_id=msg.msg_id, openid=msg.openid,
                          type=msg.type, event=msg.event, content=msg.text[:2000] or None,
                          now=now):
        return _reply_of_first(rt, msg.dedupe_key, deadline)
    future: Future = rt.executor.submit(_run, rt, msg)
    try:
        reply: Reply = future.result(timeout=max(0.0, deadline - time.monotonic()))
        status, text = "done", reply.text
    except FutureTimeout:
        log.warning("reply budget exceeded for %s; answer will be pushed", msg.dedupe_key)
        reply = Reply(words.PROCESSING, handler="deferred")
        status, text = "deferred", words.PROCESSING
        future.add_done_callback(lambda f: _deliver_late(rt, msg, f))
    messages.finish(db, msg.dedupe_key, reply=text, handler=reply.handler, topic=reply.topic,
                    answered=reply.answered, status=status,
                    latency_ms=int((time.monotonic() - started) * 1000), now=rt.clock.now())
    return text


def _run(rt: "Runtime", msg: Message) -> Reply:
    """Runs in a worker thread with its own connection."""
    db = rt.db()
    now = rt.clock.now()
    if msg.is_member_action:
        members.touch(db, msg.openid, now)
    ctx = Context(rt=rt, db=db, now=now, member=members.get(db, msg.openid))
    reply = rt.router.dispatch(msg, ctx)
    if reply.text:
        reply.text = paginate(reply.text, msg.openid, ctx)
    return reply


def _deliver_late(rt: "Runtime", msg: Message, future: Future) -> None:
    """The slow handler finished: keep its answer and queue it for the push channel."""
    try:
        reply: Reply = future.result()
    except Exception:  # dispatch() already catches handler errors; this is a last guard
        log.exception("late handler failed for %s", msg.dedupe_key)
        return
    db = rt.db()
    now = rt.clock.now()
    messages.finish_late(db, msg.dedupe_key, final_reply=reply.text or "",
                         handler=reply.handler, topic=reply.topic, answered=reply.answered,
                         now=now)
    if reply.text:
        deliveries.enqueue(db, dedupe_key=f"reply:{msg.dedupe_key}", openid=msg.openid,
                           kind="reply", text=reply.text, due_at=now, now=now)
        rt.wake_dispatcher()


def _reply_of_first(rt: "Runtime", dedupe_key: str, deadline: float) -> str | None:
    """A retry: wait (within the budget) for the first delivery's reply and send the same."""
    db = rt.db()
    while True:
        row = messages.get(db, dedupe_key)
        if row and row["status"] != "processing":
            return row["reply"]
        if time.monotonic() >= deadline:
            return words.PROCESSING
        time.sleep(RETRY_POLL_SECONDS)
