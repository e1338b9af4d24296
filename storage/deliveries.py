"""The outbox: every push message is a row first, so a crash loses nothing.

Life of a row: pending -> sending (claimed, attempts+1) -> sent | pending (retry later)
| failed | unreachable | dropped. A 'sending' row whose claim ran out (the process died)
is claimed again: at most the messages in flight at a crash go out twice.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlite_utils import Database

from clock import to_db
from storage.db import immediate

FINAL = ("sent", "failed", "unreachable", "dropped", "cancelled")


def enqueue(db: Database, *, dedupe_key: str, openid: str, kind: str, text: str,
            due_at: datetime, now: datetime, title: str | None = None,
            data: dict | None = None, expires_at: datetime | None = None,
            batch: str | None = None) -> bool:
    """Queue one message; False if a row with this dedupe key exists already."""
    cur = db.execute(
        "INSERT OR IGNORE INTO deliveries(dedupe_key, openid, kind, title, text, data, due_at, "
        "expires_at, status, attempts, next_attempt_at, batch, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        [dedupe_key, openid, kind, title, text,
         json.dumps(data, ensure_ascii=False) if data else None, to_db(due_at),
         to_db(expires_at), to_db(due_at), batch, to_db(now)])
    return cur.rowcount > 0


def enqueue_many(db: Database, rows: list[dict], now: datetime) -> int:
    """Queue many in one transaction; returns how many were new."""
    added = 0
    with immediate(db):
        for row in rows:
            added += enqueue(db, now=now, **row)
    return added


def claim_due(db: Database, now: datetime, limit: int, claim_for: timedelta) -> list[dict]:
    """Take up to `limit` due rows (and rows whose earlier claim ran out) for sending."""
    stamp = to_db(now)
    with immediate(db):
        rows = list(db.query(
            "SELECT * FROM deliveries WHERE status IN ('pending', 'sending') "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?", [stamp, limit]))
        if rows:
            ids = [r["id"] for r in rows]
            marks = ",".join("?" * len(ids))
            db.execute(f"UPDATE deliveries SET status = 'sending', attempts = attempts + 1, "
                       f"next_attempt_at = ? WHERE id IN ({marks})",
                       [to_db(now + claim_for), *ids])
    for row in rows:
        row["attempts"] += 1
    return rows


def mark_sent(db: Database, delivery_id: int, channel: str, now: datetime) -> None:
    db.execute("UPDATE deliveries SET status = 'sent', channel = ?, sent_at = ?, "
               "last_error = NULL WHERE id = ?", [channel, to_db(now), delivery_id])


def mark_retry(db: Database, delivery_id: int, error: str, at: datetime) -> None:
    db.execute("UPDATE deliveries SET status = 'pending', last_error = ?, next_attempt_at = ? "
               "WHERE id = ?", [error, to_db(at), delivery_id])


def mark_final(db: Database, delivery_id: int, status: str, error: str | None,
               channel: str | None = None) -> None:
    assert status in FINAL
    db.execute("UPDATE deliveries SET status = ?, last_error = ?, channel = COALESCE(?, channel) "
               "WHERE id = ?", [status, error, channel, delivery_id])


def custom_sent_since(db: Database, openid: str, since: datetime) -> int:
    """Customer-service messages sent to a member since a moment (WeChat caps them per window)."""
    return db.execute("SELECT count(*) FROM deliveries WHERE openid = ? AND channel = 'custom' "
                      "AND status = 'sent' AND sent_at >= ?", [openid, to_db(since)]).fetchone()[0]


def reschedule(db: Database, key_prefix: str, due_for: dict[str, datetime]) -> int:
    """Move pending rows whose key starts with prefix: due_for maps a key suffix to a new time."""
    moved = 0
    for suffix, due in due_for.items():
        moved += db.execute(
            "UPDATE deliveries SET due_at = ?, next_attempt_at = ? WHERE status = 'pending' "
            "AND dedupe_key LIKE ? AND attempts = 0",
            [to_db(due), to_db(due), f"{key_prefix}%{suffix}"]).rowcount
    return moved


def cancel_pending(db: Database, key_prefix: str, reason: str) -> int:
    return db.execute("UPDATE deliveries SET status = 'cancelled', last_error = ? "
                      "WHERE status IN ('pending') AND dedupe_key LIKE ?",
                      [reason, key_prefix + "%"]).rowcount


def pending_keys(db: Database, key_prefix: str) -> list[dict]:
    return list(db.query("SELECT id, dedupe_key, openid, due_at, status FROM deliveries "
                         "WHERE dedupe_key LIKE ? ORDER BY id", [key_prefix + "%"]))


def progress(db: Database, batch: str | None = None) -> dict[str, int]:
    where, args = ("WHERE batch = ?", [batch]) if batch else ("", [])
    return {r[0]: r[1] for r in db.execute(
        f"SELECT status, count(*) FROM deliveries {where} GROUP BY status", args)}


def failures(db: Database, batch: str | None = None, limit: int = 20) -> list[tuple[str, int]]:
    where = "AND batch = ?" if batch else ""
    args = [batch] if batch else []
    return [(r[0], r[1]) for r in db.execute(
        "SELECT last_error, count(*) c FROM deliveries WHERE status IN "
        f"('failed', 'unreachable', 'dropped') {where} GROUP BY last_error ORDER BY c DESC LIMIT ?",
        [*args, limit])]


def batches(db: Database, limit: int = 20) -> list[dict]:
    return list(db.query(
        "SELECT batch, kind, min(title) title, min(text) text, min(due_at) due_at, count(*) total,"
        " sum(status = 'sent') sent, sum(status IN ('pending', 'sending')) pending,"
        " sum(status IN ('failed', 'unreachable', 'dropped')) failed, min(created_at) created_at"
        " FROM deliveries WHERE batch IS NOT NULL GROUP BY batch ORDER BY created_at DESC LIMIT ?",
        [limit]))


def for_member(db: Database, openid: str, limit: int = 20) -> list[dict]:
    return list(db.query("SELECT * FROM deliveries WHERE openid = ? ORDER BY id DESC LIMIT ?",
                         [openid, limit]))


def get(db: Database, dedupe_key: str) -> dict | None:
    rows = list(db.query("SELECT * FROM deliveries WHERE dedupe_key = ?", [dedupe_key]))
    return rows[0] if rows else None
