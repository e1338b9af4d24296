"""The inbound log, which doubles as WeChat's retry guard: one row per MsgId (or event key)."""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from typing import NamedTuple

from sqlite_utils import Database

from clock import to_db
from storage import members
from storage.db import group_commit, serialized



class ReplayedNonce(Exception):
    """A signed URL's (timestamp, nonce) already used by another message: a replayed URL."""


def claim(db: Database, *, dedupe_key: str, msg_id: str | None, openid: str, type: str,
          event: str | None, content: str | None, now: datetime, holder: str | None = None,
          signed: tuple[str, str] | None = None,
          status: str = "processing", reply: str | None = None) -> bool:
    """Insert the message as 'processing', held by `holder` from now.

    False if WeChat already delivered it (a retry). `signed` is the URL's (timestamp, nonce):
    raises ReplayedNonce, recording nothing, when another message came with it. Raises
    sqlite3.OperationalError when the database cannot be written (nothing recorded either).
    status='deferred' with the "正在处理" reply: a retry promised the holder's run will push."""
    signed_at, nonce = signed or (None, None)
    with serialized(db):
        try:
            db.conn.execute(
                "INSERT INTO messages(dedupe_key, msg_id, openid, type, event, content, status, "
                "reply, created_at, claimed_by, claimed_at, signed_at, nonce) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [dedupe_key, msg_id, openid, type, event, content, status, reply, to_db(now),
                 holder, time.time(), signed_at, nonce])
            return True
        except sqlite3.IntegrityError:
            return _retried(db, dedupe_key, signed_at)


def _retried(db: Database, dedupe_key: str, signed_at: str | None) -> bool:
    """After an insert's uniqueness failure: False for WeChat's retry of the message (with this
    URL or a new one); raises ReplayedNonce when another message used the URL."""
    if db.conn.execute("SELECT 1 FROM messages WHERE dedupe_key = ?", [dedupe_key]).fetchone():
        return False
    raise ReplayedNonce(signed_at) from None


def seen(db: Database, dedupe_key: str, signed: tuple[str, str] | None = None) -> bool:
    """Whether the message is already recorded (a retry). Raises ReplayedNonce when another
    message came with the URL's (timestamp, nonce). Reads only."""
    signed_at, nonce = signed or (None, None)
    keys = {row[0] for row in db.conn.execute(
        "SELECT dedupe_key FROM messages WHERE dedupe_key = ? UNION ALL "  # two index lookups
        "SELECT dedupe_key FROM messages WHERE signed_at = ? AND nonce = ?",
        [dedupe_key, signed_at, nonce])}
    if dedupe_key in keys:
        return True
    if keys:
        raise ReplayedNonce(signed_at)
    return False


def record(db: Database, *, dedupe_key: str, msg_id: str | None, openid: str, type: str,
           event: str | None, content: str | None, reply: str | None, handler: str | None,
           topic: str | None, answered: bool | None, latency_ms: int, created: datetime,
           now: datetime, deadline: float, holder: str | None = None,
           signed: tuple[str, str] | None = None, touch: bool = False) -> bool:
    """Insert the message already answered ('done'): a run whose handlers only read needs no
    claim first. `touch`: the member's last_seen too, in the same transaction. Committed
    with the records other threads make at the same moment (storage.db.GroupCommit);
    returns once this one is. False when the message is recorded already (a retry, or a run
    elsewhere got there first); ReplayedNonce as for `claim`; BudgetSpent past `deadline`."""
    signed_at, nonce = signed or (None, None)
    row = _Done(dedupe_key, msg_id, openid, type, event, content, reply, handler, topic,
                None if answered is None else int(answered), latency_ms, to_db(created),
                to_db(now), holder, time.time(), signed_at, nonce)
    return group_commit(db, _record_all).submit(db, (row, touch), deadline)


class _Done(NamedTuple):
    """A `done` row, in _DONE's column order."""
    dedupe_key: str
    msg_id: str | None
    openid: str
    type: str
    event: str | None
    content: str | None
    reply: str | None
    handler: str | None
    topic: str | None
    answered: int | None
    latency_ms: int
    created_at: str
    finished_at: str
    claimed_by: str | None
    claimed_at: float
    signed_at: str | None
    nonce: str | None


_DONE = (f"INSERT INTO messages({', '.join(_Done._fields[:6])}, status, "
         f"{', '.join(_Done._fields[6:])}) VALUES ")
_DONE_ROW = "(?, ?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _record_all(db: Database, items: list[tuple[_Done, bool]]) -> list:
    """One INSERT for every row; should one be there already (a retry, a replayed URL), each
    row on its own, so each gets its own outcome."""
    rows = [row for row, _ in items]
    try:
        db.conn.execute(_DONE + ", ".join([_DONE_ROW] * len(rows)),
                        [value for row in rows for value in row])
        outcomes: list = [True] * len(rows)
    except sqlite3.IntegrityError:
        outcomes = [_record_one(db, row) for row in rows]
    seen = [(row.openid, row.created_at) for (row, touch), outcome in zip(items, outcomes)
            if touch and outcome is True]
    if seen:
        members.touch_all(db, seen)
    return outcomes


def _record_one(db: Database, row: _Done) -> bool | ReplayedNonce:
    try:
        db.conn.execute(_DONE + _DONE_ROW, row)
        return True
    except sqlite3.IntegrityError:
        try:
            return _retried(db, row.dedupe_key, row.signed_at)
        except ReplayedNonce as exc:
            return exc


def take_over(db: Database, dedupe_key: str, *, old_holder: str | None, old_status: str,
              holder: str) -> bool:
    """Claim a message whose first run is dead; False if another run got there first."""
    with serialized(db):
        cursor = db.conn.execute(
            "UPDATE messages SET status = 'processing', claimed_by = ?, claimed_at = ?, "
            "reply = NULL WHERE dedupe_key = ? AND status = ? AND claimed_by IS ?",
            [holder, time.time(), dedupe_key, old_status, old_holder])
        return cursor.rowcount == 1


def unfinished(db: Database) -> list[dict]:
    """Messages whose run has not ended: still processing, or deferred with no answer yet."""
    return list(db.query(
        "SELECT dedupe_key, msg_id, openid, type, event, content, status, claimed_by, "
        "claimed_at, created_at FROM messages "
        "WHERE status IN ('processing', 'deferred') AND final_reply IS NULL"))


def resume(db: Database, dedupe_key: str, *, old_holder: str | None, holder: str) -> bool:
    """Take over a deferred message (its member was told "正在处理") to answer it by push;
    False if another process got there first."""
    with serialized(db):
        cursor = db.conn.execute(
            "UPDATE messages SET claimed_by = ?, claimed_at = ? WHERE dedupe_key = ? "
            "AND status = 'deferred' AND claimed_by IS ? AND final_reply IS NULL",
            [holder, time.time(), dedupe_key, old_holder])
        return cursor.rowcount == 1


def settle(db: Database, dedupe_key: str, *, old_holder: str | None, old_status: str,
           now: datetime) -> bool:
    """Mark a dead run's message 'failed' (a retry of it runs again); False if it moved on."""
    with serialized(db):
        cursor = db.conn.execute(
            "UPDATE messages SET status = 'failed', finished_at = ? WHERE dedupe_key = ? "
            "AND status = ? AND claimed_by IS ? AND final_reply IS NULL",
            [to_db(now), dedupe_key, old_status, old_holder])
        return cursor.rowcount == 1


def get(db: Database, dedupe_key: str) -> dict | None:
    rows = list(db.query("SELECT * FROM messages WHERE dedupe_key = ?", [dedupe_key]))
    return rows[0] if rows else None


def finish(db: Database, dedupe_key: str, *, reply: str | None, handler: str | None,
           topic: str | None, answered: bool | None, status: str, latency_ms: int,
           now: datetime, holder: str | None = None) -> bool:
    """Record the reply (status 'done', or 'deferred' with the "正在处理" words).

    With `holder`, only while that run still holds the message as 'processing'; False when
    a retry has meanwhile promised the member a pushed answer (see `defer`)."""
    with serialized(db):
        cursor = db.conn.execute(
            "UPDATE messages SET reply = ?, handler = ?, topic = ?, answered = ?, status = ?, "
            "latency_ms = ?, finished_at = ? WHERE dedupe_key = ?"
            + (" AND status = 'processing' AND claimed_by = ?" if holder else ""),
            [reply, handler, topic, None if answered is None else int(answered), status,
             latency_ms, to_db(now), dedupe_key] + ([holder] if holder else []))
        return cursor.rowcount == 1


def defer(db: Database, dedupe_key: str, *, holder: str | None, reply: str) -> bool:
    """A retry answers "正在处理" for a live run still going: mark the message 'deferred' so
    that run pushes its answer. False if the run finished first."""
    with serialized(db):
        cursor = db.conn.execute(
            "UPDATE messages SET status = 'deferred', reply = ? WHERE dedupe_key = ? "
            "AND status = 'processing' AND claimed_by IS ?", [reply, dedupe_key, holder])
        return cursor.rowcount == 1


def finish_late(db: Database, dedupe_key: str, *, final_reply: str, handler: str | None,
                topic: str | None, answered: bool | None, now: datetime) -> None:
    """A handler that outran the reply budget has finished; its answer goes out by push."""
    db.execute(
        "UPDATE messages SET final_reply = ?, handler = ?, topic = ?, answered = ?, "
        "finished_at = ? WHERE dedupe_key = ?",
        [final_reply, handler, topic, None if answered is None else int(answered),
         to_db(now), dedupe_key])


def recent(db: Database, openid: str | None = None, limit: int = 50) -> list[dict]:
    if openid:
        return list(db.query("SELECT * FROM messages WHERE openid = ? ORDER BY id DESC LIMIT ?",
                             [openid, limit]))
    return list(db.query("SELECT * FROM messages ORDER BY id DESC LIMIT ?", [limit]))


def per_day(db: Database, since: datetime, tz_offset_hours: float) -> list[tuple[str, int]]:
    """Message counts per local day since `since` (for the console chart)."""
    shift = f"{tz_offset_hours:+} hours"
    return [(r[0], r[1]) for r in db.execute(
        "SELECT date(datetime(created_at, ?)) d, count(*) FROM messages "
        "WHERE created_at >= ? GROUP BY d ORDER BY d", [shift, to_db(since)])]


def answer_rate(db: Database, since: datetime) -> tuple[int, int]:
    """(answered, asked) among questions that reached the knowledge base."""
    row = db.execute("SELECT sum(answered), count(*) FROM messages WHERE answered IS NOT NULL "
                     "AND created_at >= ?", [to_db(since)]).fetchone()
    return (row[0] or 0, row[1] or 0)


def top_topics(db: Database, since: datetime, limit: int = 10) -> list[tuple[str, int]]:
    return [(r[0], r[1]) for r in db.execute(
        "SELECT topic, count(*) c FROM messages WHERE answered = 1 AND topic IS NOT NULL "
        "AND created_at >= ? GROUP BY topic ORDER BY c DESC, topic LIMIT ?",
        [to_db(since), limit])]
