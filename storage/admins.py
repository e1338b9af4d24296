"""Console accounts: name, password hash, role, and the failed-login count that locks one."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from sqlite_utils import Database

from clock import from_db, to_db
from storage.db import immediate

ROLES = ("admin", "organiser")


class AdminExists(ValueError):
    """An account with this name exists already."""


class NoSuchAdmin(LookupError):
    """No account with this name."""


def create(db: Database, name: str, password_hash: str, role: str, now: datetime) -> int:
    """Add an account; returns its id. Raises AdminExists, or ValueError for an unknown role."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    try:
        cur = db.execute("INSERT INTO admins(name, password_hash, role, created_at, failed) "
                         "VALUES (?, ?, ?, ?, 0)", [name, password_hash, role, to_db(now)])
    except sqlite3.IntegrityError as exc:
        raise AdminExists(name) from exc
    return cur.lastrowid


def set_password(db: Database, name: str, password_hash: str, role: str | None = None) -> None:
    """Replace the password (and the role if given); unlocks the account. Raises NoSuchAdmin."""
    cur = db.execute("UPDATE admins SET password_hash = ?, role = COALESCE(?, role), failed = 0, "
                     "locked_until = NULL WHERE name = ?", [password_hash, role, name])
    if cur.rowcount == 0:
        raise NoSuchAdmin(name)


def get(db: Database, admin_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM admins WHERE id = ?", [admin_id]))
    return rows[0] if rows else None


def by_name(db: Database, name: str) -> dict | None:
    rows = list(db.query("SELECT * FROM admins WHERE name = ?", [name]))
    return rows[0] if rows else None


def all_admins(db: Database) -> list[dict]:
    return list(db.query("SELECT id, name, role, created_at, failed, locked_until FROM admins "
                         "ORDER BY name"))


def delete(db: Database, name: str) -> bool:
    return db.execute("DELETE FROM admins WHERE name = ?", [name]).rowcount > 0


def locked_until(row: dict, now: datetime) -> datetime | None:
    """When the account's lock ends, or None if it may try to log in now."""
    until = from_db(row.get("locked_until"))
    return until if until and until > now else None


def record_failure(db: Database, admin_id: int, now: datetime, *, max_failed: int,
                   lock_for: timedelta) -> datetime | None:
    """Count a wrong password; `max_failed` in a row lock the account. Returns the lock's end
    (None while it stays open)."""
    with immediate(db):
        row = db.execute("SELECT failed FROM admins WHERE id = ?", [admin_id]).fetchone()
        if row is None:
            return None
        failed = (row[0] or 0) + 1
        if failed >= max_failed:
            until = now + lock_for
            db.execute("UPDATE admins SET failed = 0, locked_until = ? WHERE id = ?",
                       [to_db(until), admin_id])
            return until
        db.execute("UPDATE admins SET failed = ? WHERE id = ?", [failed, admin_id])
        return None


def record_success(db: Database, admin_id: int) -> None:
    db.execute("UPDATE admins SET failed = 0, locked_until = NULL WHERE id = ?", [admin_id])
