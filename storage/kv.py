"""Small named values the bot keeps for itself: the development token, the console secret."""
from __future__ import annotations

import secrets
from datetime import datetime

from sqlite_utils import Database

from clock import to_db
from storage.db import immediate


def get(db: Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def put(db: Database, key: str, value: str, now: datetime) -> None:
    db.execute("INSERT INTO kv(key, value, updated_at) VALUES (?, ?, ?) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
               "updated_at = excluded.updated_at", [key, value, to_db(now)])


def get_or_create_secret(db: Database, key: str, now: datetime, nbytes: int = 16) -> tuple[str, bool]:
    """A random value generated once and kept: (value, created_now). Safe across processes."""
    with immediate(db):
        value = get(db, key)
        if value:
            return value, False
        value = secrets.token_hex(nbytes)
        put(db, key, value, now)
        return value, True
