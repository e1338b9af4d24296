"""The audit log: who did what in the console, and when (edits, exports, reveals, broadcasts)."""
from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from clock import to_db

MAX_DETAIL = 500


def record(db: Database, actor: str, action: str, target: str | None, detail: str | None,
           now: datetime) -> int:
    """Append one line. Callers pass no personal data (names, phones) in target or detail."""
    cur = db.execute("INSERT INTO audit(actor, action, target, detail, at) VALUES (?, ?, ?, ?, ?)",
                     [actor, action, target, (detail or "")[:MAX_DETAIL] or None, to_db(now)])
    return cur.lastrowid


def _where(actor: str | None, action: str | None) -> tuple[str, list]:
    clauses, args = [], []
    if actor:
        clauses.append("actor = ?")
        args.append(actor)
    if action:
        clauses.append("action = ?")
        args.append(action)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def recent(db: Database, *, limit: int = 50, offset: int = 0, actor: str | None = None,
           action: str | None = None) -> list[dict]:
    """Newest first."""
    where, args = _where(actor, action)
    return list(db.query(f"SELECT * FROM audit{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                         [*args, limit, offset]))


def count(db: Database, *, actor: str | None = None, action: str | None = None) -> int:
    where, args = _where(actor, action)
    return db.execute(f"SELECT count(*) FROM audit{where}", args).fetchone()[0]


def actions(db: Database) -> list[str]:
    """The distinct actions recorded so far (for the log's filter)."""
    return [r[0] for r in db.execute("SELECT DISTINCT action FROM audit ORDER BY action")]
