"""From a parsed message to the reply text: dedupe WeChat's retries, route, keep the 5-second budget.

The messages row is claimed before anything runs, so a retry (same MsgId, or the same
event key) never runs a handler while the first run lives: it waits for the first run and
gets its reply. A first run that died (its process gone, or a write that failed) is run
again by the next retry; the handlers' rules are idempotent, so the member gets the truth.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
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
from storage.db import immediate, read_only, refused_write, serialized, spent, within
from wechat.messages import Message

if TYPE_CHECKING:
    from runtime import Runtime

log = logging.getLogger(__name__)
RETRY_POLL_SECONDS = 0.05
CLAIM_MARGIN_SECONDS = 2.0  # past the reply budget, a run whose process cannot be checked is dead
INLINE_AFTER = 20  # fast runs in a row before handlers run in the request's own thread
FAST_SHARE = 0.25  # a run is fast when it takes under this share of the reply budget
CLAIM = object()  # a read-only run hands the message to the claiming path


def handle(rt: "Runtime", msg: Message, signed: tuple[str, str] | None = None) -> str | None:
    """The reply text for a message (None: reply 'success'). Never raises for handler errors.

    `signed` is the URL's (timestamp, nonce). Raises messages.ReplayedNonce for a URL
    another message used, and sqlite3.OperationalError when the database cannot be written
    (the webhook answers 503 and WeChat retries).

    While handlers are fast, they first run read-only (`_read_first`): a message they
    answer without writing is recorded done, with the member's visit, in one transaction.
    Otherwise (or when they would write) the message is claimed first, as below."""
    started = time.monotonic()
    deadline = started + rt.settings.reply_budget
    db = rt.db()
    holder = None
    if _pace(rt).inline():
        flight, mine = _take_off(rt, msg.dedupe_key)
        if mine:
            text = _read_first(rt, db, msg, signed, started, deadline, flight)
            holder = flight.holder  # CLAIM: the claim below is this run's
        else:
            text = _await_flight(rt, db, msg, signed, flight, deadline)
        if text is not CLAIM:
            return text
    member = None
    tried = holder is not None
    try:
        holder = holder or claims.begin()
        now = rt.clock.now()
        # after a read-only try, the wait for the write lock ends at the deadline too
        with within(db, deadline) if tried else contextlib.nullcontext(), immediate(db):
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


def _read_first(rt: "Runtime", db: Database, msg: Message, signed: tuple[str, str] | None,
                started: float, deadline: float, flight: "_Flight") -> str | None | object:
    """Run the handlers with writes refused; if they only read (knowledge answers, small
    talk), record the message done and the member's visit in one write transaction.

    CLAIM hands the message to the claiming path, under this run's holder: already recorded
    (a retry), a new member (whose row comes first), handlers that write (they run again
    once claimed), or recorded meanwhile by a run elsewhere. Nothing is written before the
    record, so a crash leaves nothing half-done; a same-process retry waits on `flight`."""
    try:
        try:
            text = _try_reading(rt, db, msg, signed, started, deadline, flight)
        finally:
            _land(rt, msg.dedupe_key, flight)
        if text is CLAIM and flight.deferred:  # a retry said "正在处理": this run pushes
            reply = _run(rt, msg)
            _push(rt, msg, reply)
            text = reply.text
    except BaseException:
        claims.end(flight.holder)
        raise
    if text is not CLAIM:
        claims.end(flight.holder)
    return text


def _try_reading(rt: "Runtime", db: Database, msg: Message, signed: tuple[str, str] | None,
                 started: float, deadline: float, flight: "_Flight") -> str | None | object:
    if messages.seen(db, msg.dedupe_key, signed):
        return CLAIM
    member = members.get(db, msg.openid)
    if member is None and msg.is_member_action:
        return CLAIM
    now = rt.clock.now()
    with read_only(db) as reading:
        try:
            reply = _route(rt, reading, msg, now, member)
        except sqlite3.OperationalError as exc:
            if not refused_write(reading, exc):
                raise
            return CLAIM  # the handlers write: they run again once the message is claimed
    _pace(rt).record(time.monotonic() - started, rt.settings.reply_budget)
    if reply.handler.endswith("!error") and time.monotonic() >= deadline:
        raise sqlite3.OperationalError(f"reply budget spent on {msg.dedupe_key}")
    if _leave(flight):  # a retry said "正在处理" meanwhile: push the answer
        _push(rt, msg, reply)
        if msg.is_member_action:
            with serialized(db):
                members.touch(db, msg.openid, now)
        return reply.text
    recorded = messages.record(
        db, dedupe_key=msg.dedupe_key, msg_id=msg.msg_id, openid=msg.openid, type=msg.type,
        event=msg.event, content=msg.text[:2000] or None, reply=reply.text,
        handler=reply.handler, topic=reply.topic, answered=reply.answered,
        latency_ms=int((time.monotonic() - started) * 1000), created=now,
        now=rt.clock.now(), deadline=deadline, holder=flight.holder, signed=signed,
        touch=msg.is_member_action)  # a member's message opens WeChat's 48-hour window
    return reply.text if recorded else CLAIM


def _await_flight(rt: "Runtime", db: Database, msg: Message, signed: tuple[str, str] | None,
                  flight: "_Flight", deadline: float) -> str | None | object:
    """A retry of a message whose read-only run is going in this process: wait for it; at this
    request's deadline, if it is still reading, record the message 'deferred' under that
    run's holder (the run then pushes its answer; after a crash, the restart does) and say
    "正在处理". CLAIM: the run is done reading; the claiming path answers from the row (or,
    when the run handed the message on unclaimed, claims it)."""
    if flight.wait(deadline - time.monotonic()):
        return CLAIM
    # the write lock is waited for briefly: the first run needs `flight.lock` to land
    with flight.lock, within(db, time.monotonic() + CLAIM_MARGIN_SECONDS):
        if flight.state == "reading" and messages.claim(
                db, dedupe_key=msg.dedupe_key, msg_id=msg.msg_id, openid=msg.openid,
                type=msg.type, event=msg.event, content=msg.text[:2000] or None,
                now=rt.clock.now(), holder=flight.holder, signed=signed, status="deferred",
                reply=words.PROCESSING):
            flight.state = "deferred"
            return words.PROCESSING
    flight.wait(CLAIM_MARGIN_SECONDS)  # it is writing its row
    return CLAIM


class _Flight:
    """A message whose handlers run read-only in this process, nothing recorded yet."""

    def __init__(self) -> None:
        self.holder = claims.begin()
        self.lock = threading.Lock()
        self.state = "reading"  # -> "writing" (the run records or claims), or "deferred"
        self._flying = threading.Lock()  # held until the run is done reading (cheaper than
        self._flying.acquire()           # an Event, made for every fast message)

    @property
    def deferred(self) -> bool:
        return self.state == "deferred"

    def land(self) -> None:
        """Done reading: recorded, or on to the claiming path."""
        self._flying.release()

    def wait(self, seconds: float) -> bool:
        """Whether the run landed within `seconds`."""
        if not self._flying.acquire(timeout=max(0.0, seconds)):
            return False
        self._flying.release()
        return True


_flights: "WeakKeyDictionary[Runtime, dict[str, _Flight]]" = WeakKeyDictionary()
_flights_lock = threading.Lock()


def _take_off(rt: "Runtime", dedupe_key: str) -> tuple[_Flight, bool]:
    """The message's flight in this process, and whether this request just started it."""
    with _flights_lock:
        flights = _flights.setdefault(rt, {})
        flight = flights.get(dedupe_key)
        if flight is not None:
            return flight, False
        flight = flights[dedupe_key] = _Flight()
        return flight, True


def _leave(flight: _Flight) -> bool:
    """End the read-only phase, after which a retry no longer defers the run; True if one
    already did (the run then owes the member a pushed answer)."""
    with flight.lock:
        if flight.state == "reading":
            flight.state = "writing"
        return flight.deferred


def _land(rt: "Runtime", dedupe_key: str, flight: _Flight) -> None:
    _leave(flight)
    with _flights_lock:
        _flights.get(rt, {}).pop(dedupe_key, None)
    flight.land()


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
    return _route(rt, db, msg, now, member)


def _route(rt: "Runtime", db: Database, msg: Message, now, member: dict | None) -> Reply:
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
