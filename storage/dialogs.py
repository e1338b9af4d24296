"""Dialog state and pending '更多' pages, per member, as rows with an expiry (never globals)."""
from __future__ import annotations

import json
from datetime import datetime

from sqlite_utils import Database

from clock import from_db, to_db
from storage.db import serialized


def get(db: Database, openid: str, now: datetime) -> tuple[str, dict] | None:
    """(state, data) of the member's live dialog; None when there is none or it expired."""
    row = db.execute("SELECT state, data, expires_at FROM dialogs WHERE openid = ?",
                     [openid]).fetchone()
    if not row or from_db(row[2]) <= now:
        return None
    return row[0], json.loads(row[1] or "{}")


def was_expired(db: Database, openid: str, now: datetime) -> str | None:
    """The state of a dialog that has expired but not been cleared yet (to say so once)."""
    row = db.execute("SELECT state, expires_at FROM dialogs WHERE openid = ?", [openid]).fetchone()
    if row and from_db(row[1]) <= now:
        return row[0]
    return None


def put(db: Database, openid: str, state: str, data: dict, expires_at: datetime) -> None:
    db.execute("INSERT INTO dialogs(openid, state, data, expires_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT(openid) DO UPDATE SET state = excluded.state, data = excluded.data, "
               "expires_at = excluded.expires_at",
               [openid, state, json.dumps(data, ensure_ascii=False), to_db(expires_at)])


def clear(db: Database, openid: str) -> bool:
    """End the member's dialog; False when there was none. Most callers clear "just in
    case" (a sign-up ends any choice): a read answers that without taking the write lock."""
    if db.execute("SELECT 1 FROM dialogs WHERE openid = ?", [openid]).fetchone() is None:
        return False
    with serialized(db):
        return db.execute("DELETE FROM dialogs WHERE openid = ?", [openid]).rowcount > 0


def put_pages(db: Database, openid: str, pages: list[str], expires_at: datetime) -> None:
    if not pages:
        db.execute("DELETE FROM reply_pages WHERE openid = ?", [openid])
        return
    db.execute("INSERT INTO reply_pages(openid, pages, expires_at) VALUES (?, ?, ?) "
               "ON CONFLICT(openid) DO UPDATE SET pages = excluded.pages, "
               "expires_at = excluded.expires_at",
               [openid, json.dumps(pages, ensure_ascii=False), to_db(expires_at)])


def pop_page(db: Database, openid: str, now: datetime) -> tuple[str, int] | None:
    """The next pending page and how many remain after it; None when nothing is pending."""
    row = db.execute("SELECT pages, expires_at FROM reply_pages WHERE openid = ?",
                     [openid]).fetchone()
    if not row or from_db(row[1]) <= now:
        return None
    pages = json.loads(row[0])
    first, rest = pages[0], pages[1:]
    if rest:
        db.execute("UPDATE reply_pages SET pages = ? WHERE openid = ?",
                   [json.dumps(rest, ensure_ascii=False), openid])
    else:
        db.execute("DELETE FROM reply_pages WHERE openid = ?", [openid])
    return first, len(rest)
