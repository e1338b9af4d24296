"""人工: members' conversations with a person, who waits how long, and which organisers want
an alert. One open conversation per member is a database fact (handoffs_one_open)."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from sqlite_utils import Database

from clock import to_db

REPLY_PREFIX = "handoff-reply:"  # deliveries.dedupe_key of a staff reply: <prefix><openid>:<nonce>
ALERT_PREFIX = "handoff-alert:"  # <prefix><conversation id>:<organiser openid>
TIMEOUT_REASON = "timeout"


def reply_key(openid: str, nonce: str) -> str:
    return f"{REPLY_PREFIX}{openid}:{nonce}"


def get(db: Database, handoff_id: int) -> dict | None:
    rows = list(db.query("SELECT h.*, m.name, m.unit, m.phone, m.last_seen, m.subscribed "
                         "FROM handoffs h LEFT JOIN members m ON m.openid = h.openid "
                         "WHERE h.id = ?", [handoff_id]))
    return rows[0] if rows else None


def open_for(db: Database, openid: str) -> dict | None:
    """The member's open conversation, if any."""
    cursor = db.conn.execute("SELECT * FROM handoffs WHERE openid = ? AND status = 'open'",
                             [openid])
    row = cursor.fetchone()
    return dict(zip([c[0] for c in cursor.description], row)) if row else None


def open_conversation(db: Database, openid: str, now: datetime, via: str) -> tuple[dict, bool]:
    """Open (or keep) the member's conversation, now waiting; (row, newly opened)."""
    stamp = to_db(now)
    try:
        db.execute("INSERT INTO handoffs(openid, status, via, opened_at, waiting_since, "
                   "last_member_at, last_activity_at) VALUES (?, 'open', ?, ?, ?, ?, ?)",
                   [openid, via, stamp, stamp, stamp, stamp])
        created = True
    except sqlite3.IntegrityError:  # already open: a second 人工 only keeps it waiting
        member_wrote(db, openid, now, waiting=True)
        created = False
    return open_for(db, openid), created


def member_wrote(db: Database, openid: str, now: datetime, *, waiting: bool) -> None:
    """A message from the member in an open conversation; `waiting` when it needs a person."""
    stamp = to_db(now)
    db.execute("UPDATE handoffs SET last_member_at = ?, last_activity_at = ?, "
               "waiting_since = CASE WHEN ? THEN COALESCE(waiting_since, ?) ELSE waiting_since "
               "END WHERE openid = ? AND status = 'open'", [stamp, stamp, int(waiting), stamp, openid])


def staff_replied(db: Database, handoff_id: int, now: datetime) -> None:
    stamp = to_db(now)
    db.execute("UPDATE handoffs SET waiting_since = NULL, last_staff_at = ?, last_activity_at = ? "
               "WHERE id = ? AND status = 'open'", [stamp, stamp, handoff_id])


def close(db: Database, handoff_id: int, now: datetime, by: str, reason: str) -> bool:
    """False when it was closed already."""
    return db.execute("UPDATE handoffs SET status = 'closed', closed_at = ?, closed_by = ?, "
                      "close_reason = ?, waiting_since = NULL WHERE id = ? AND status = 'open'",
                      [to_db(now), by, reason, handoff_id]).rowcount > 0


def close_stale(db: Database, now: datetime, timeout: timedelta) -> int:
    """Close every open conversation silent for `timeout` (BOT_HANDOFF_TIMEOUT)."""
    return db.execute("UPDATE handoffs SET status = 'closed', closed_at = ?, closed_by = 'system', "
                      "close_reason = ?, waiting_since = NULL WHERE status = 'open' "
                      "AND last_activity_at <= ?",
                      [to_db(now), TIMEOUT_REASON, to_db(now - timeout)]).rowcount


_LIST = ("SELECT h.*, m.name, m.unit, m.last_seen, "
         "(SELECT content FROM messages x WHERE x.openid = h.openid AND x.content IS NOT NULL "
         " ORDER BY x.id DESC LIMIT 1) last_text FROM handoffs h "
         "LEFT JOIN members m ON m.openid = h.openid ")


def list_open(db: Database) -> list[dict]:
    """Open conversations: those waiting for a person first, longest wait first."""
    return list(db.query(_LIST + "WHERE h.status = 'open' ORDER BY h.waiting_since IS NULL, "
                                 "h.waiting_since, h.last_activity_at DESC"))


def recently_closed(db: Database, limit: int = 10) -> list[dict]:
    return list(db.query(_LIST + "WHERE h.status = 'closed' ORDER BY h.closed_at DESC, h.id DESC "
                                 "LIMIT ?", [limit]))


def waiting(db: Database) -> tuple[int, str | None]:
    """(how many conversations wait for a person, since when the oldest waits)."""
    row = db.execute("SELECT count(*), min(waiting_since) FROM handoffs WHERE status = 'open' "
                     "AND waiting_since IS NOT NULL").fetchone()
    return row[0], row[1]


def history(db: Database, openid: str, limit: int = 20) -> list[dict]:
    """The member's recent messages with the bot's replies, and staff replies, oldest first.

    Each item: at, who ('member' | 'bot' | 'staff'), text, status (staff replies' delivery)."""
    items: list[dict] = []
    for row in db.query("SELECT id, content, reply, final_reply, status, created_at, finished_at "
                        "FROM messages WHERE openid = ? AND (content IS NOT NULL OR reply IS NOT "
                        "NULL) ORDER BY id DESC LIMIT ?", [openid, limit]):
        if row["content"]:
            items.append({"at": row["created_at"], "who": "member", "text": row["content"],
                          "order": (row["created_at"], 0, row["id"], 0)})
        answer = row["final_reply"] or row["reply"]
        if answer:
            items.append({"at": row["finished_at"] or row["created_at"], "who": "bot",
                          "text": answer, "order": (row["created_at"], 0, row["id"], 1)})
    lo = REPLY_PREFIX + openid + ":"
    for row in db.query("SELECT id, text, status, channel, created_at, sent_at, last_error "
                        "FROM deliveries WHERE dedupe_key >= ? AND dedupe_key < ? "
                        "ORDER BY id DESC LIMIT ?", [lo, lo[:-1] + ";", limit]):
        items.append({"at": row["created_at"], "who": "staff", "text": row["text"],
                      "status": row["status"], "channel": row["channel"],
                      "error": row["last_error"], "order": (row["created_at"], 1, row["id"], 0)})
    items.sort(key=lambda i: i["order"])
    return items[-limit:]


def previous_declined(db: Database, openid: str, dedupe_key: str) -> bool:
    """Did the member's message before this one end in a decline ("没有找到")?"""
    row = db.execute("SELECT topic, answered FROM messages WHERE openid = ? AND dedupe_key != ? "
                     "AND status != 'processing' ORDER BY id DESC LIMIT 1",
                     [openid, dedupe_key]).fetchone()
    return bool(row) and row[0] == "unanswered" and row[1] == 0


def watch(db: Database, openid: str, now: datetime, on: bool) -> bool:
    """An organiser turns 有成员需要人工回复 alerts on or off; False when nothing changed."""
    if on:
        return db.execute("INSERT OR IGNORE INTO handoff_watchers(openid, since) VALUES (?, ?)",
                          [openid, to_db(now)]).rowcount > 0
    return db.execute("DELETE FROM handoff_watchers WHERE openid = ?", [openid]).rowcount > 0


def watchers(db: Database) -> list[str]:
    """Organisers who opted in and still follow the account."""
    return [r[0] for r in db.execute(
        "SELECT w.openid FROM handoff_watchers w JOIN members m ON m.openid = w.openid "
        "WHERE m.role = 'organiser' AND m.subscribed = 1 ORDER BY w.openid")]
