"""Leases: a row that says which process holds a job (the scheduler, a token refresh) until when."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlite_utils import Database

from clock import to_db
from storage.db import immediate


def acquire(db: Database, name: str, owner: str, ttl: timedelta, now: datetime) -> bool:
    """Take or renew the lease; False while another owner holds an unexpired one."""
    with immediate(db):
        row = db.execute("SELECT owner, expires_at FROM leases WHERE name = ?", [name]).fetchone()
        if row and row[0] != owner and row[1] > to_db(now):
            return False
        db.execute("INSERT INTO leases(name, owner, expires_at) VALUES (?, ?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
                   "expires_at = excluded.expires_at", [name, owner, to_db(now + ttl)])
        return True


def release(db: Database, name: str, owner: str) -> None:
    db.execute("DELETE FROM leases WHERE name = ? AND owner = ?", [name, owner])


def holder(db: Database, name: str, now: datetime) -> str | None:
    row = db.execute("SELECT owner, expires_at FROM leases WHERE name = ?", [name]).fetchone()
    return row[0] if row and row[1] > to_db(now) else None


def take_over(db: Database, name: str, dead_owner: str, owner: str, ttl: timedelta,
              now: datetime) -> bool:
    """Take a lease whose holder is known to be dead, without waiting for it to run out.

    Succeeds only if `dead_owner` still holds it (two successors cannot both win).
    """
    return db.execute("UPDATE leases SET owner = ?, expires_at = ? WHERE name = ? AND owner = ?",
                      [owner, to_db(now + ttl), name, dead_owner]).rowcount > 0
