"""Members' needs (需求征集) and 揭榜 claims: every SQL statement for them lives here.

Callers own the transaction (alliance/needs.py wraps each change in `immediate()`).
"""
from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from clock import to_db

STATUSES = ("new", "adopted", "claimed", "done", "rejected")


def _one(db: Database, sql: str, args: list) -> dict | None:
    rows = list(db.query(sql, args))
    return rows[0] if rows else None


def insert(db: Database, openid: str, unit: str | None, grp: str | None, content: str,
           now: datetime) -> int:
    cur = db.execute("INSERT INTO needs(openid, unit, grp, content, status, created_at, "
                     "updated_at) VALUES (?, ?, ?, ?, 'new', ?, ?)",
                     [openid, unit, grp, content, to_db(now), to_db(now)])
    return cur.lastrowid


def get(db: Database, need_id: int) -> dict | None:
    return _one(db, "SELECT n.*, m.name, c.unit AS claimed_unit, c.actor AS claimed_by, "
                    "c.at AS claimed_at, p.name AS project_name, p.year AS project_year "
                    "FROM needs n LEFT JOIN members m ON m.openid = n.openid "
                    "LEFT JOIN need_claims c ON c.need_id = n.id "
                    "LEFT JOIN projects p ON p.id = n.project_id WHERE n.id = ?", [need_id])


def same_open(db: Database, openid: str, content: str) -> dict | None:
    """The member's identical need still waiting (a message sent twice is one need)."""
    return _one(db, "SELECT * FROM needs WHERE openid = ? AND content = ? AND status = 'new'",
                [openid, content])


def of_member(db: Database, openid: str, limit: int) -> list[dict]:
    return list(db.query("SELECT n.*, c.unit AS claimed_unit FROM needs n "
                         "LEFT JOIN need_claims c ON c.need_id = n.id WHERE n.openid = ? "
                         "ORDER BY n.id DESC LIMIT ?", [openid, limit]))


def listing(db: Database, grp: str | None = None, status: str | None = None,
            year_from: datetime | None = None, year_to: datetime | None = None) -> list[dict]:
    """Needs with the member's profile and the claim, newest first; filters are optional."""
    where, args = [], []
    if grp:
        where.append("COALESCE(n.grp, '') = ?")
        args.append("" if grp == "-" else grp)
    if status:
        where.append("n.status = ?")
        args.append(status)
    if year_from:
        where.append("n.created_at >= ?")
        args.append(to_db(year_from))
    if year_to:
        where.append("n.created_at < ?")
        args.append(to_db(year_to))
    sql = ("SELECT n.*, m.name, c.unit AS claimed_unit, c.actor AS claimed_by, "
           "c.at AS claimed_at, p.name AS project_name FROM needs n "
           "LEFT JOIN members m ON m.openid = n.openid "
           "LEFT JOIN need_claims c ON c.need_id = n.id "
           "LEFT JOIN projects p ON p.id = n.project_id")
    if where:
        sql += " WHERE " + " AND ".join(where)
    return list(db.query(sql + " ORDER BY n.id DESC", args))


def counts(db: Database) -> dict[tuple[str, str], int]:
    """(group key or '', status) -> how many."""
    return {(r[0] or "", r[1]): r[2] for r in db.execute(
        "SELECT grp, status, count(*) FROM needs GROUP BY grp, status")}


def set_status(db: Database, need_id: int, status: str, actor: str, now: datetime, *,
               reason: str | None = None, mode: str | None = None,
               assigned_unit: str | None = None, project_id: int | None = None) -> None:
    """Only the given fields change; reason/mode/unit/project keep their value when None."""
    db.execute("UPDATE needs SET status = ?, reason = COALESCE(?, reason), "
               "mode = COALESCE(?, mode), assigned_unit = COALESCE(?, assigned_unit), "
               "project_id = COALESCE(?, project_id), updated_at = ?, updated_by = ? "
               "WHERE id = ?", [status, reason, mode, assigned_unit, project_id, to_db(now),
                                actor, need_id])


def set_group(db: Database, need_id: int, grp: str) -> None:
    db.execute("UPDATE needs SET grp = ? WHERE id = ?", [grp, need_id])


def insert_claim(db: Database, need_id: int, unit: str, actor: str, now: datetime) -> None:
    """Raises sqlite3.IntegrityError when the need was claimed already (first claim wins)."""
    db.execute("INSERT INTO need_claims(need_id, unit, actor, at) VALUES (?, ?, ?, ?)",
               [need_id, unit, actor, to_db(now)])


def add_event(db: Database, need_id: int, status: str, actor: str, detail: str | None,
              now: datetime) -> None:
    db.execute("INSERT INTO need_events(need_id, status, detail, actor, at) "
               "VALUES (?, ?, ?, ?, ?)", [need_id, status, detail, actor, to_db(now)])


def events(db: Database, need_id: int) -> list[dict]:
    return list(db.query("SELECT * FROM need_events WHERE need_id = ? ORDER BY id", [need_id]))

