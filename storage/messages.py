"""The inbound log, which doubles as WeChat's retry guard: one row per MsgId (or event key)."""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from clock import to_db
from storage.db import immediate

NONCE_PURGE_SECONDS = 60  # forget expired (timestamp, nonce) pairs at most this often
_next_purge = 0.0


class ReplayedNonce(Exception):
    """A signed (timestamp, nonce) pair already seen with another body: a replayed URL."""


@dataclass(frozen=True)
class Nonce:
    """The signed URL's (timestamp, nonce) and a digest of the body it came with."""

    timestamp: str
    nonce: str
    body_sha1: str
    keep_seconds: float  # how long a pair is remembered (the timestamp tolerance, both sides)


def claim(db: Database, *, dedupe_key: str, msg_id: str | None, openid: str, type: str,
          event: str | None, content: str | None, now: datetime, holder: str | None = None,
          wall: float | None = None, nonce: Nonce | None = None) -> bool:
    """Insert the message as 'processing', held by `holder` since `wall` (epoch seconds).

    False if WeChat already delivered it (a retry). Raises ReplayedNonce (nothing recorded)
    when `nonce` was seen with another body, and sqlite3.OperationalError when the database
    cannot be written (nothing recorded either)."""
    wall = time.time() if wall is None else wall
    with immediate(db):
        if nonce is not None:
            _remember_nonce(db, nonce, wall)
        try:
            db.execute(
                "INSERT INTO messages(dedupe_key, msg_id, openid, type, event, content, status, "
                "created_at, claimed_by, claimed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'processing', ?, ?, ?)",
                [dedupe_key, msg_id, openid, type, event, content, to_db(now), holder, wall])
            return True
        except sqlite3.IntegrityError:
            return False


def _remember_nonce(db: Database, nonce: Nonce, wall: float) -> None:
    global _next_purge
    if wall >= _next_purge:
        db.execute("DELETE FROM webhook_nonces WHERE seen_at < ?", [wall - nonce.keep_seconds])
        _next_purge = wall + NONCE_PURGE_SECONDS
    row = db.execute("SELECT body_sha1 FROM webhook_nonces WHERE timestamp = ? AND nonce = ?",
                     [nonce.timestamp, nonce.nonce]).fetchone()
    if row is None:
        db.execute("INSERT INTO webhook_nonces(timestamp, nonce, body_sha1, seen_at) "
                   "VALUES (?, ?, ?, ?)", [nonce.timestamp, nonce.nonce, nonce.body_sha1, wall])
    elif row[0] != nonce.body_sha1:
        raise ReplayedNonce(nonce.timestamp)


def take_over(db: Database, dedupe_key: str, *, old_holder: str | None, old_status: str,
              holder: str, wall: float | None = None) -> bool:
    """Claim a message whose first run is dead; False if another run got there first."""
    cursor = db.execute(
        "UPDATE messages SET status = 'processing', claimed_by = ?, claimed_at = ?, "
        "reply = NULL WHERE dedupe_key = ? AND status = ? AND claimed_by IS ?",
        [holder, time.time() if wall is None else wall, dedupe_key, old_status, old_holder])
    return cursor.rowcount == 1


def unfinished(db: Database) -> list[dict]:
    """Messages whose run has not ended: still processing, or deferred with no answer yet."""
    return list(db.query(
        "SELECT dedupe_key, status, claimed_by, claimed_at, created_at FROM messages "
        "WHERE status IN ('processing', 'deferred') AND final_reply IS NULL"))


def settle(db: Database, dedupe_key: str, *, old_holder: str | None, old_status: str,
           now: datetime) -> bool:
    """Mark a dead run's message 'failed' (a retry of it runs again); False if it moved on."""
    cursor = db.execute(
        "UPDATE messages SET status = 'failed', finished_at = ? WHERE dedupe_key = ? "
        "AND status = ? AND claimed_by IS ? AND final_reply IS NULL",
        [to_db(now), dedupe_key, old_status, old_holder])
    return cursor.rowcount == 1


def get(db: Database, dedupe_key: str) -> dict | None:
    rows = list(db.query("SELECT * FROM messages WHERE dedupe_key = ?", [dedupe_key]))
    return rows[0] if rows else None


def finish(db: Database, dedupe_key: str, *, reply: str, handler: str | None,
           topic: str | None, answered: bool | None, status: str, latency_ms: int,
           now: datetime) -> None:
    db.execute(
        "UPDATE messages SET reply = ?, handler = ?, topic = ?, answered = ?, status = ?, "
        "latency_ms = ?, finished_at = ? WHERE dedupe_key = ?",
        [reply, handler, topic, None if answered is None else int(answered), status,
         latency_ms, to_db(now), dedupe_key])


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
