"""From a parsed message to the reply text: dedupe WeChat's retries, route, keep the 5-second budget.

The messages row is claimed before anything runs, so a retry (same MsgId, or the same
event key) never runs a handler while the first run lives: it waits for the first run and
gets its reply. A first run that died (its process gone, or a write that failed) is run
again by the next retry; the handlers' rules are idempotent, so the member gets the truth.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from sqlite_utils import Database

from clock import from_db
from handlers import words
from handlers.more import paginate
from handlers.router import Context, Reply
from storage import claims, deliveries, members, messages
from storage.db import immediate, serialized, spent, within
from wechat.messages import Message

if TYPE_CHECKING:
    from runtime import Runtime

log = logging.getLogger(__name__)
RETRY_POLL_SECONDS = 0.05
CLAIM_MARGIN_SECONDS = 2.0  # past the reply budget, a run whose process cannot be checked is dead
INLINE_AFTER = 20  # fast runs in a row before handlers run in the request's own thread
FAST_SHARE = 0.25  # a run is fast when it takes under this share of the reply budget


def handle(rt: "Runtime", msg: Message, signed: tuple[str, str] | None = None) -> str | None:
    """The reply text for a message (None: reply 'success'). Never raises for handler errors.

    `signed` is the URL's (timestamp, nonce). Raises messages.ReplayedNonce for a URL
    another message used, and sqlite3.OperationalError when the database cannot be written
    (the webhook answers 503 and WeChat retries)."""
    started = time.monotonic()
    deadline = started + rt.settings.reply_budget
    db = rt.db()
    holder = claims.begin()
    member = None
    try:
        now = rt.clock.now()
        with immediate(db):  # the claim and the member's visit: one write transaction
            claimed = messages.claim(db, dedupe_key=msg.dedupe_key, msg_id=msg.msg_id,
                                     openid=msg.openid, type=msg.type, event=msg.event,
                                     content=msg.text[:2000] or None, now=now,
                                     holder=holder, signed=signed)
            if claimed and msg.is_member_action:  # opens WeChat's 48-hour window
                member = members.arrived(db, msg.openid, now)
        if not claimed:
            answered, text = _reply_of_first(rt, db, msg.dedupe_key, holder, deadline)
            if answered:
                claims.end(holder)
                return text
            log.warning("first run of %s is dead; running it again", msg.dedupe_key)
    except BaseException:
        claims.end(holder)
        raise
    return _answer(rt, db, msg, holder, started, deadline, member)


def _answer(rt: "Runtime", db: Database, msg: Message, holder: str, started: float,
            deadline: float, member: dict | None = None) -> str | None:
    """Run the handlers for a claimed message and record the reply; ends `holder` when done.

    While handlers have lately been fast, they run in the request's own thread (no hand-off);
    otherwise in a worker thread, so the request can answer "正在处理" when the budget ends."""
    pace = _pace(rt)
    if pace.inline():
        return _answer_here(rt, db, msg, holder, started, deadline, pace, member)
    future: Future = rt.executor.submit(_timed_run, rt, msg, pace, member)
    try:
        reply: Reply = future.result(timeout=max(0.0, deadline - time.monotonic()))
        status, text = "done", reply.text
    except FutureTimeout:
        log.warning("reply budget exceeded for %s; answer will be pushed", msg.dedupe_key)
        reply = Reply(words.PROCESSING, handler="deferred")
        status, text = "deferred", words.PROCESSING
    except BaseException:
        claims.end(holder)
        raise
    try:
        recorded = _finish(rt, db, msg, reply, status, started, holder)
    except BaseException:
        future.add_done_callback(lambda f: claims.end(holder))  # a retry then runs it again
        raise
    if status == "deferred" or not recorded:  # not recorded: a retry promised a push meanwhile
        future.add_done_callback(lambda f: _deliver_late(rt, msg, holder, f))
    else:
        claims.end(holder)
    return text


def _answer_here(rt: "Runtime", db: Database, msg: Message, holder: str, started: float,
                 deadline: float, pace: "_Pace", member: dict | None = None) -> str | None:
    """The fast path: handlers in this thread, their waits for the database ending at the
    deadline. A wait that would outlast it is a failed write: 503, and WeChat's retry runs
    the message again. Should a handler still run long, WeChat's retry says "正在处理" at its
    own deadline (`messages.defer`) and this run then pushes its answer."""
    try:
        with within(db, deadline):
            reply = _run(rt, msg, member)
        pace.record(time.monotonic() - started, rt.settings.reply_budget)
        if spent() or (reply.handler.endswith("!error") and time.monotonic() >= deadline):
            raise sqlite3.OperationalError(f"reply budget spent waiting for the database "
                                           f"({msg.dedupe_key})")
        if not _finish(rt, db, msg, reply, "done", started, holder):
            _push(rt, msg, reply)  # finished past the budget; a retry promised a push
    finally:
        claims.end(holder)
    return reply.text


def _finish(rt: "Runtime", db: Database, msg: Message, reply: Reply, status: str,
            started: float, holder: str) -> bool:
    return messages.finish(db, msg.dedupe_key, reply=reply.text, handler=reply.handler,
                           topic=reply.topic, answered=reply.answered, status=status,
                           latency_ms=int((time.monotonic() - started) * 1000),
                           now=rt.clock.now(), holder=holder)


def _timed_run(rt: "Runtime", msg: Message, pace: "_Pace", member: dict | None) -> Reply:
    t0 = time.monotonic()
    reply = _run(rt, msg, member)
    pace.record(time.monotonic() - t0, rt.settings.reply_budget)
    return reply


def _run(rt: "Runtime", msg: Message, member: dict | None = None) -> Reply:
    """The handlers' answer, in this thread's connection. `member`: the row the claim's
    transaction touched; without it (a taken-over or resumed run) the member is touched here."""
    db = rt.db()
    now = rt.clock.now()
    if member is None:
        if msg.is_member_action:  # only what a member does opens WeChat's 48-hour window
            with serialized(db):  # queue on this process's write lock, not SQLite's busy sleeps
                member = members.arrived(db, msg.openid, now)
        else:
            member = members.get(db, msg.openid)
    ctx = Context(rt=rt, db=db, now=now, member=member)
    reply = rt.router.dispatch(msg, ctx)
    if reply.text:
        reply.text = paginate(reply.text, msg.openid, ctx)
    return reply


def _deliver_late(rt: "Runtime", msg: Message, holder: str, future: Future) -> None:
    """The slow handler finished: keep its answer and queue it for the push channel."""
    try:
        _push(rt, msg, future.result())
    except Exception:  # dispatch() catches handler errors; this is a failed write
        log.exception("late answer for %s could not be queued", msg.dedupe_key)
    finally:
        claims.end(holder)


def _push(rt: "Runtime", msg: Message, reply: Reply) -> None:
    """Keep a late answer on the message and queue it, in one transaction, for the push channel."""
    db = rt.db()
    now = rt.clock.now()
    with immediate(db):
        messages.finish_late(db, msg.dedupe_key, final_reply=reply.text or "",
                             handler=reply.handler, topic=reply.topic, answered=reply.answered,
                             now=now)
        if reply.text:
            deliveries.enqueue(db, dedupe_key=f"reply:{msg.dedupe_key}", openid=msg.openid,
                               kind="reply", text=reply.text, due_at=now, now=now)
    if reply.text:
        rt.wake_dispatcher()


def _reply_of_first(rt: "Runtime", db: Database, dedupe_key: str, holder: str,
                    deadline: float) -> tuple[bool, str | None]:
    """A retry: wait (within the budget) for the first run's reply and send the same.

    (True, reply) answers the retry; (False, None) means the first run was dead and this
    run now holds the message, so the handlers run again."""
    while True:
        row = messages.get(db, dedupe_key)
        if row is None:  # removed under us: WeChat's next retry claims it afresh
            raise sqlite3.OperationalError(f"message {dedupe_key} vanished while waited for")
        status = row["status"]
        if status == "done" or (status == "deferred" and row["final_reply"] is not None):
            return True, row["reply"]
        if status == "failed" or _is_dead(rt, row):
            if messages.take_over(db, dedupe_key, old_holder=row["claimed_by"],
                                  old_status=status, holder=holder):
                return False, None
            continue
        if status == "deferred":
            return True, words.PROCESSING  # a live first run, which will push its answer
        if time.monotonic() >= deadline:  # a live first run still going: it must push
            if messages.defer(db, dedupe_key, holder=row["claimed_by"], reply=words.PROCESSING):
                return True, words.PROCESSING
            continue
        time.sleep(RETRY_POLL_SECONDS)


def _is_dead(rt: "Runtime", row: dict) -> bool:
    """Whether the run holding an unfinished message can no longer answer it."""
    verdict = claims.judge(row["claimed_by"])
    if verdict is not None:
        return verdict
    if row["status"] != "processing":
        return False  # a deferred run elsewhere may still push its answer
    if row["claimed_at"] is not None:
        age = time.time() - row["claimed_at"]
    else:  # written before holders were recorded
        age = (rt.clock.now() - from_db(row["created_at"])).total_seconds()
    return age > rt.settings.reply_budget + CLAIM_MARGIN_SECONDS


class _Pace:
    """Whether handlers have lately been fast enough to run in the request's own thread."""

    def __init__(self) -> None:
        self.streak = 0  # fast runs in a row

    def inline(self) -> bool:
        return self.streak >= INLINE_AFTER

    def record(self, seconds: float, budget: float) -> None:
        self.streak = self.streak + 1 if seconds < budget * FAST_SHARE else 0


_paces: "WeakKeyDictionary[Runtime, _Pace]" = WeakKeyDictionary()


def _pace(rt: "Runtime") -> _Pace:
    pace = _paces.get(rt)
    return pace if pace is not None else _paces.setdefault(rt, _Pace())


def settle_dead(rt: "Runtime") -> int:
    """At start: messages left unfinished by dead processes are settled, so none stays
    'processing' for ever. A text message whose member was told "正在处理" runs again in a
    worker and its answer is pushed, as promised; any other becomes 'failed', and WeChat's
    next retry runs it again. Returns how many."""
    db = rt.db()
    settled = 0
    for row in messages.unfinished(db):
        if not _is_dead(rt, row):
            continue
        msg = Message(openid=row["openid"], account="", type=row["type"], create_time=0,
                      msg_id=row["msg_id"], content=row["content"] or "", event=row["event"])
        if (row["status"] == "deferred" and msg.type in ("text", "voice") and msg.text
                and msg.dedupe_key == row["dedupe_key"]):
            holder = claims.begin()
            if messages.resume(db, row["dedupe_key"], old_holder=row["claimed_by"],
                               holder=holder):
                future = rt.executor.submit(_run, rt, msg)
                future.add_done_callback(lambda f, m=msg, h=holder: _deliver_late(rt, m, h, f))
                settled += 1
            else:
                claims.end(holder)
            continue
        settled += messages.settle(db, row["dedupe_key"], old_holder=row["claimed_by"],
                                   old_status=row["status"], now=rt.clock.now())
    if settled:
        log.warning("%d message(s) left unfinished by a stopped process were settled", settled)
    return settled
