"""The outbox: every push message is a row first, so a crash loses nothing.

Life of a row: pending -> sending (claimed, attempts+1) -> sent | pending (retry later)
| failed | unreachable | dropped; a pending row may be cancelled (its reason kept in
last_error). A 'sending' row whose claim ran out, or whose sender died, is claimed again:
at most the messages in flight at a crash go out twice.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlite_utils import Database

from clock import from_db, to_db
from storage.db import immediate, serialized
from wechat.templates import check as check_template_fields

FINAL = ("sent", "failed", "unreachable", "dropped", "cancelled")


def enqueue(db: Database, *, dedupe_key: str, openid: str, kind: str, text: str,
            due_at: datetime, now: datetime, title: str | None = None,
            data: dict | None = None, expires_at: datetime | None = None,
            batch: str | None = None) -> bool:
    """Queue one message; False if a row with this dedupe key exists already.
    Raises wechat.templates.TemplateFieldError when a template field in `data` is over
    WeChat's limit (it would fail with 47003 at sending time)."""
    check_template_fields(data)
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


def claim_due(db: Database, now: datetime, limit: int, claim_for: timedelta,
              owner: str | None = None) -> list[dict]:
    """Take up to `limit` due rows (and rows whose earlier claim ran out) for sending.

    The claim is one write transaction, so two dispatchers never hold the same row; `owner`
    is recorded so a successor can free a dead sender's claims (`release_claims`).
    """
    stamp = to_db(now)
    with immediate(db):
        rows = list(db.query(
            "SELECT * FROM deliveries WHERE status IN ('pending', 'sending') "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?", [stamp, limit]))
        if rows:
            ids = [r["id"] for r in rows]
            marks = ",".join("?" * len(ids))
            db.execute(f"UPDATE deliveries SET status = 'sending', attempts = attempts + 1, "
                       f"next_attempt_at = ?, claimed_by = ? WHERE id IN ({marks})",
                       [to_db(now + claim_for), owner, *ids])
    for row in rows:
        row["attempts"] += 1
        row["claimed_by"] = owner
    return rows


def release_claims(db: Database, owner: str, now: datetime) -> int:
    """Rows a (dead) sender claimed go back to pending now; returns how many.

    Any of them may have reached WeChat just before the sender died: those are the
    messages "in flight", the only ones that can go out twice.
    """
    with serialized(db):
        return db.execute("UPDATE deliveries SET status = 'pending', next_attempt_at = ?, "
                          "claimed_by = NULL WHERE status = 'sending' AND claimed_by = ?",
                          [to_db(now), owner]).rowcount


def release(db: Database, delivery_id: int, at: datetime) -> None:
    """Give a claimed row back unsent (not counted as an attempt), to be sent at `at`."""
    with serialized(db):
        db.execute("UPDATE deliveries SET status = 'pending', next_attempt_at = ?, "
                   "claimed_by = NULL, attempts = max(attempts - 1, 0) "
                   "WHERE id = ? AND status = 'sending'", [to_db(at), delivery_id])


def mark_sent(db: Database, delivery_id: int, channel: str, now: datetime,
              wechat_msgid: str | None = None) -> None:
    """WeChat accepted the row; `wechat_msgid` (template messages) matches its later report.

    One statement per send, queued on this process's write lock (the dispatcher shares the
    file with the request threads). Never batched: a mark that waits for others is a
    message a crash would send twice."""
    with serialized(db):
        db.execute("UPDATE deliveries SET status = 'sent', channel = ?, sent_at = ?, "
                   "last_error = NULL, claimed_by = NULL, wechat_msgid = ?, report = NULL, "
                   "reported_at = NULL WHERE id = ?",
                   [channel, to_db(now), wechat_msgid, delivery_id])


def record_report(db: Database, wechat_msgid: str, openid: str, status: str,
                  now: datetime) -> int:
    """WeChat's TEMPLATESENDJOBFINISH for the row it sent as `wechat_msgid` to `openid`
    ('success', 'failed:user block', 'failed: system failed'); returns rows updated (0: not ours)."""
    return db.execute("UPDATE deliveries SET report = ?, reported_at = ? WHERE wechat_msgid = ? "
                      "AND openid = ?", [status, to_db(now), wechat_msgid, openid]).rowcount


def report_counts_for_activity(db: Database, activity_id: int) -> list[dict]:
    """Template messages about one activity (reminders, notices) by WeChat's delivery report."""
    return list(db.query(
        "SELECT report, count(*) count FROM deliveries WHERE status = 'sent' "
        "AND channel = 'template' AND json_extract(data, '$.activity_id') = ? "
        "GROUP BY report ORDER BY count DESC", [activity_id]))


def report_counts(db: Database, batch: str | None = None) -> list[dict]:
    """Template messages by WeChat's delivery report (None: no report yet), most first."""
    where, args = ("AND batch = ?", [batch]) if batch else ("", [])
    return list(db.query(
        "SELECT report, count(*) count FROM deliveries WHERE status = 'sent' "
        f"AND channel = 'template' {where} GROUP BY report ORDER BY count DESC", args))


def mark_retry(db: Database, delivery_id: int, error: str, at: datetime) -> None:
    with serialized(db):
        db.execute("UPDATE deliveries SET status = 'pending', last_error = ?, "
                   "next_attempt_at = ?, claimed_by = NULL WHERE id = ?",
                   [error, to_db(at), delivery_id])


def mark_final(db: Database, delivery_id: int, status: str, error: str | None,
               channel: str | None = None) -> None:
    """End a row's life: sent elsewhere, failed, unreachable, dropped or cancelled, with why."""
    if status not in FINAL:
        raise ValueError(f"not a final status: {status!r}")
    with serialized(db):
        db.execute("UPDATE deliveries SET status = ?, last_error = ?, "
                   "channel = COALESCE(?, channel), claimed_by = NULL WHERE id = ?",
                   [status, error, channel, delivery_id])


def custom_sent_since(db: Database, openid: str, since: datetime) -> int:
    """Customer-service messages sent to a member since a moment (WeChat caps them per window)."""
    return db.execute("SELECT count(*) FROM deliveries WHERE openid = ? AND channel = 'custom' "
                      "AND status = 'sent' AND sent_at >= ?", [openid, to_db(since)]).fetchone()[0]


def _prefix(key_prefix: str) -> tuple[str, list]:
    """A prefix test on dedupe_key as an index range (LIKE would be case-blind and read _ as a
    wildcard, and openids hold both cases and underscores)."""
    if not key_prefix:
        return "1", []
    upper = key_prefix[:-1] + chr(ord(key_prefix[-1]) + 1)
    return "dedupe_key >= ? AND dedupe_key < ?", [key_prefix, upper]


def with_prefix(db: Database, key_prefix: str, statuses: tuple[str, ...] | None = None) -> list[dict]:
    """Rows whose dedupe key starts with `key_prefix` (e.g. 'reminder:12:'), oldest first."""
    clause, args = _prefix(key_prefix)
    if statuses:
        clause += f" AND status IN ({','.join('?' * len(statuses))})"
        args += list(statuses)
    return list(db.query(f"SELECT * FROM deliveries WHERE {clause} ORDER BY id", args))


def replan(db: Database, delivery_id: int, *, due_at: datetime, expires_at: datetime | None,
           text: str, title: str | None, data: dict | None, rearm: bool = False) -> bool:
    """Point a planned row at new times and words (the activity moved).

    Only a pending row changes, unless `rearm`: then a sent, dropped or cancelled row becomes
    pending again (a new start deserves a new reminder). A row being sent is never touched.
    """
    states = ("pending", "sent", "dropped", "cancelled") if rearm else ("pending",)
    cur = db.execute(
        "UPDATE deliveries SET due_at = ?, next_attempt_at = ?, expires_at = ?, text = ?, "
        "title = ?, data = ?, status = 'pending', attempts = CASE WHEN status = 'pending' "
        "THEN attempts ELSE 0 END, last_error = CASE WHEN status = 'pending' THEN last_error "
        f"ELSE NULL END, sent_at = NULL WHERE id = ? AND status IN ({','.join('?' * len(states))})",
        [to_db(due_at), to_db(due_at), to_db(expires_at), text, title,
         json.dumps(data, ensure_ascii=False) if data else None, delivery_id, *states])
    return cur.rowcount > 0


def cancel_ids(db: Database, ids: list[int], reason: str, status: str = "cancelled") -> int:
    """Cancel (or drop) pending rows by id, recording why; rows already sending are left."""
    if not ids:
        return 0
    if status not in ("cancelled", "dropped"):
        raise ValueError(status)
    done = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        done += db.execute(
            f"UPDATE deliveries SET status = ?, last_error = ? WHERE status = 'pending' "
            f"AND id IN ({','.join('?' * len(chunk))})", [status, reason, *chunk]).rowcount
    return done


def cancel_pending(db: Database, key_prefix: str, reason: str) -> int:
    """Cancel every pending row whose dedupe key starts with `key_prefix`."""
    clause, args = _prefix(key_prefix)
    return db.execute(f"UPDATE deliveries SET status = 'cancelled', last_error = ? "
                      f"WHERE status = 'pending' AND {clause}", [reason, *args]).rowcount


def cancel_for_member(db: Database, openid: str, kinds: tuple[str, ...], reason: str,
                      key_prefix: str = "") -> int:
    """Cancel a member's pending rows of some kinds (they turned reminders off)."""
    clause, args = _prefix(key_prefix)
    return db.execute(
        f"UPDATE deliveries SET status = 'cancelled', last_error = ? WHERE openid = ? "
        f"AND status = 'pending' AND kind IN ({','.join('?' * len(kinds))}) AND {clause}",
        [reason, openid, *kinds, *args]).rowcount


def pending_for_member(db: Database, openid: str, limit: int = 10) -> list[dict]:
    """What is still to come for a member, soonest first."""
    return list(db.query("SELECT * FROM deliveries WHERE openid = ? AND status IN "
                         "('pending', 'sending') ORDER BY due_at, id LIMIT ?", [openid, limit]))


def next_attempt(db: Database) -> datetime | None:
    """When the soonest unsettled row is next due (None when nothing waits)."""
    row = db.execute("SELECT min(next_attempt_at) FROM deliveries "
                     "WHERE status IN ('pending', 'sending')").fetchone()
    return from_db(row[0])


def in_flight(db: Database) -> int:
    """Rows claimed for sending and not yet settled."""
    return db.execute("SELECT count(*) FROM deliveries WHERE status = 'sending'").fetchone()[0]


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


def reasons(db: Database, batch: str | None = None, limit: int = 20) -> list[dict]:
    """Why rows did not go out (or not yet): status, reason, count — for `bot.py deliveries`."""
    where, args = ("AND batch = ?", [batch]) if batch else ("", [])
    return list(db.query(
        "SELECT status, last_error reason, count(*) count FROM deliveries WHERE "
        "(status IN ('failed', 'unreachable', 'dropped', 'cancelled') OR "
        f"(status = 'pending' AND last_error IS NOT NULL)) {where} "
        "GROUP BY status, last_error ORDER BY count DESC LIMIT ?", [*args, limit]))


def by_kind(db: Database) -> list[dict]:
    """Counts per kind and status, for rows outside broadcasts (reminders, replies, notices)."""
    return list(db.query(
        "SELECT kind, count(*) total, sum(status = 'sent') sent,"
        " sum(status IN ('pending', 'sending')) pending,"
        " sum(status IN ('failed', 'unreachable', 'dropped')) failed,"
        " sum(status = 'cancelled') cancelled FROM deliveries GROUP BY kind ORDER BY kind"))


def for_member(db: Database, openid: str, limit: int = 20) -> list[dict]:
    return list(db.query("SELECT * FROM deliveries WHERE openid = ? ORDER BY id DESC LIMIT ?",
                         [openid, limit]))


def get(db: Database, dedupe_key: str) -> dict | None:
    rows = list(db.query("SELECT * FROM deliveries WHERE dedupe_key = ?", [dedupe_key]))
    return rows[0] if rows else None
