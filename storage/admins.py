"""Console accounts (name, password hash, role), their server-side sessions, and the counts of
failed logins per client and per typed name that slow guessing down."""
from __future__ import annotations

import hashlib
import secrets
import sqlite3
from datetime import datetime, timedelta

from sqlite_utils import Database

from clock import from_db, to_db
from storage.db import immediate

ROLES = ("admin", "organiser")


def _session_key(session_id: str) -> str:
    """Only a hash of the cookie's session id is stored: a copy of the database opens nothing."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class AdminExists(ValueError):
    """An account with this name exists already."""


class NoSuchAdmin(LookupError):
    """No account with this name."""


def create(db: Database, name: str, password_hash: str, role: str, now: datetime,
           scope: str | None = None) -> int:
    """Add an account (scope: alliance.scope's text, None for all); returns its id.
    Raises AdminExists, or ValueError for an unknown role."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    try:
        cur = db.execute("INSERT INTO admins(name, password_hash, role, created_at, failed, "
                         "scope) VALUES (?, ?, ?, ?, 0, ?)",
                         [name, password_hash, role, to_db(now), scope or None])
    except sqlite3.IntegrityError as exc:
        raise AdminExists(name) from exc
    return cur.lastrowid


def set_password(db: Database, name: str, password_hash: str, role: str | None = None) -> None:
    """Replace the password (and the role if given) and end the account's sessions.
    Raises NoSuchAdmin."""
    with immediate(db):
        cur = db.execute("UPDATE admins SET password_hash = ?, role = COALESCE(?, role), "
                         "failed = 0, locked_until = NULL WHERE name = ?",
                         [password_hash, role, name])
        if cur.rowcount == 0:
            raise NoSuchAdmin(name)
        db.execute("DELETE FROM admin_sessions WHERE admin_id = "
                   "(SELECT id FROM admins WHERE name = ?)", [name])


def set_scope(db: Database, name: str, scope: str | None) -> None:
    """Limit the account to a scope (None: all); open sessions read it at their next request.
    Raises NoSuchAdmin."""
    cur = db.execute("UPDATE admins SET scope = ? WHERE name = ?", [scope or None, name])
    if cur.rowcount == 0:
        raise NoSuchAdmin(name)


def get(db: Database, admin_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM admins WHERE id = ?", [admin_id]))
    return rows[0] if rows else None


def by_name(db: Database, name: str) -> dict | None:
    rows = list(db.query("SELECT * FROM admins WHERE name = ?", [name]))
    return rows[0] if rows else None


def all_admins(db: Database) -> list[dict]:
    return list(db.query("SELECT id, name, role, scope, created_at FROM admins ORDER BY name"))


def delete(db: Database, name: str) -> bool:
    """Remove the account and end its sessions."""
    with immediate(db):
        db.execute("DELETE FROM admin_sessions WHERE admin_id = "
                   "(SELECT id FROM admins WHERE name = ?)", [name])
        return db.execute("DELETE FROM admins WHERE name = ?", [name]).rowcount > 0


# --- sessions ---------------------------------------------------------------------------------

def start_session(db: Database, admin_id: int, now: datetime, *, max_age: timedelta) -> str:
    """A new session id for the cookie; sessions older than max_age are cleared on the way."""
    session_id = secrets.token_urlsafe(32)
    with immediate(db):
        db.execute("DELETE FROM admin_sessions WHERE created_at < ?", [to_db(now - max_age)])
        db.execute("INSERT INTO admin_sessions(id, admin_id, created_at) VALUES (?, ?, ?)",
                   [_session_key(session_id), admin_id, to_db(now)])
    return session_id


def session_alive(db: Database, session_id: str, admin_id: int) -> bool:
    row = db.execute("SELECT 1 FROM admin_sessions WHERE id = ? AND admin_id = ?",
                     [_session_key(session_id), admin_id]).fetchone()
    return row is not None


def end_session(db: Database, session_id: str) -> None:
    db.execute("DELETE FROM admin_sessions WHERE id = ?", [_session_key(session_id)])


def session_count(db: Database, admin_id: int) -> int:
    return db.execute("SELECT count(*) FROM admin_sessions WHERE admin_id = ?",
                      [admin_id]).fetchone()[0]


# --- failed logins ----------------------------------------------------------------------------

def blocked_until(db: Database, keys: list[str], now: datetime) -> datetime | None:
    """The latest end of a running delay among the keys, or None if all may try now."""
    marks = "?" + ", ?" * (len(keys) - 1)
    rows = db.execute(f"SELECT blocked_until FROM login_throttle WHERE key IN ({marks})",
                      keys).fetchall()
    ends = [t for t in (from_db(r[0]) for r in rows if r[0]) if t > now]
    return max(ends) if ends else None


def record_failure(db: Database, keys: list[str], now: datetime, *, forget_after: timedelta,
                   delay) -> None:
    """Count a failed login against each key; `delay(failures)` says how long that key must
    wait before its next try. Counts older than forget_after start again from zero (and are
    deleted, so made-up names cannot grow the table for ever)."""
    with immediate(db):
        db.execute("DELETE FROM login_throttle WHERE last_at < ? AND "
                   "(blocked_until IS NULL OR blocked_until < ?)",
                   [to_db(now - forget_after), to_db(now)])
        for key in keys:
            row = db.execute("SELECT failures, last_at FROM login_throttle WHERE key = ?",
                             [key]).fetchone()
            failures = 1
            if row and from_db(row[1]) and from_db(row[1]) > now - forget_after:
                failures = row[0] + 1
            wait = delay(failures)
            db.execute("INSERT INTO login_throttle(key, failures, last_at, blocked_until) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                       "failures = excluded.failures, last_at = excluded.last_at, "
                       "blocked_until = excluded.blocked_until",
                       [key, failures, to_db(now), to_db(now + wait) if wait else None])


def clear_failures(db: Database, keys: list[str]) -> None:
    marks = "?" + ", ?" * (len(keys) - 1)
    db.execute(f"DELETE FROM login_throttle WHERE key IN ({marks})", keys)
