"""Activities, sign-ups and hour corrections: every SQL statement for them lives here.

Callers own the transaction: the domain functions in activities/service.py wrap these
in `immediate()` so a read-then-write is one unit.
"""
from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database
from sqlite_utils.utils import dedupe_keys

from clock import to_db

LIVE = ("confirmed", "waitlisted")
ACTIVITY_FIELDS = ("title", "grp", "description", "location", "start_at", "end_at",
                   "deadline_at", "capacity", "hours", "status", "checkin_code", "source_key",
                   "created_by", "checkout", "hours_step", "project_id")
_COUNTS = ("(SELECT count(*) FROM signups s WHERE s.activity_id = a.id "
           "AND s.status = 'confirmed') AS confirmed, "
           "(SELECT count(*) FROM signups s WHERE s.activity_id = a.id "
           "AND s.status = 'waitlisted') AS waitlisted")


def _query(db: Database, sql: str, args: list) -> list[dict]:
    """Rows as dicts from one statement. sqlite-utils' `query` wraps every SELECT in a
    savepoint (three statements); these are known SELECTs, so one is enough."""
    cur = db.execute(sql, args)
    keys = dedupe_keys(d[0] for d in cur.description)
    return [dict(zip(keys, row)) for row in cur]


def _one(db: Database, sql: str, args: list) -> dict | None:
    rows = _query(db, sql, args)
    return rows[0] if rows else None


# --- activities -------------------------------------------------------------------------

def insert_activity(db: Database, values: dict, now: datetime) -> int:
    """Insert one activity; `values` uses the column names (times already as DB text)."""
    cols = [c for c in ACTIVITY_FIELDS if c in values]
    marks = ", ".join("?" * (len(cols) + 2))
    cur = db.execute(f"INSERT INTO activities({', '.join(cols)}, created_at, updated_at) "
                     f"VALUES ({marks})", [values[c] for c in cols] + [to_db(now), to_db(now)])
    return cur.lastrowid


def insert_activity_if_new(db: Database, values: dict, now: datetime) -> bool:
    """Insert unless an activity with the same source_key exists (default drafts)."""
    cols = [c for c in ACTIVITY_FIELDS if c in values]
    marks = ", ".join("?" * (len(cols) + 2))
    cur = db.execute(f"INSERT OR IGNORE INTO activities({', '.join(cols)}, created_at, "
                     f"updated_at) VALUES ({marks})",
                     [values[c] for c in cols] + [to_db(now), to_db(now)])
    return cur.rowcount > 0


def update_activity(db: Database, activity_id: int, values: dict, now: datetime) -> None:
    cols = [c for c in ACTIVITY_FIELDS if c in values]
    if not cols:
        return
    sets = ", ".join(f"{c} = ?" for c in cols)
    db.execute(f"UPDATE activities SET {sets}, updated_at = ? WHERE id = ?",
               [values[c] for c in cols] + [to_db(now), activity_id])


def set_status(db: Database, activity_id: int, status: str, now: datetime) -> None:
    db.execute("UPDATE activities SET status = ?, updated_at = ? WHERE id = ?",
               [status, to_db(now), activity_id])


def get_activity(db: Database, activity_id: int) -> dict | None:
    """One activity with its confirmed and waitlisted counts."""
    return _one(db, f"SELECT a.*, {_COUNTS} FROM activities a WHERE a.id = ?", [activity_id])


def list_activities(db: Database, statuses: tuple[str, ...] | None = None) -> list[dict]:
    where, args = "", []
    if statuses:
        where = f"WHERE a.status IN ({', '.join('?' * len(statuses))})"
        args = list(statuses)
    return _query(db, f"SELECT a.*, {_COUNTS} FROM activities a {where} "
                  "ORDER BY a.start_at IS NULL, a.start_at, a.id", args)


def open_for_signup(db: Database, now: datetime) -> list[dict]:
    """Open activities whose sign-up deadline (or start) is still ahead."""
    return _query(db,
        f"SELECT a.*, {_COUNTS} FROM activities a WHERE a.status = 'open' "
        "AND COALESCE(a.deadline_at, a.start_at) > ? ORDER BY a.start_at, a.id", [to_db(now)])


def searchable(db: Database, since: datetime) -> list[dict]:
    """Non-draft activities starting after `since` (what a member may name in '报名 …')."""
    return _query(db,
        f"SELECT a.*, {_COUNTS} FROM activities a WHERE a.status != 'draft' "
        "AND a.start_at >= ? ORDER BY a.start_at, a.id", [to_db(since)])


def checkin_code_taken(db: Database, code: str) -> bool:
    return db.execute("SELECT 1 FROM activities WHERE checkin_code = ? AND status != 'cancelled'",
                      [code]).fetchone() is not None


def by_checkin_code(db: Database, code: str) -> list[dict]:
    return _query(db, "SELECT * FROM activities WHERE upper(checkin_code) = upper(?) "
                  "ORDER BY status = 'cancelled', start_at DESC", [code])


# --- sign-ups ---------------------------------------------------------------------------

def insert_signup(db: Database, activity_id: int, openid: str, status: str,
                  now: datetime) -> dict:
    """The new sign-up row, written and read back in one statement.
    Raises sqlite3.IntegrityError when the member already has a live sign-up (signups_live)."""
    stamp = to_db(now)
    return _one(db, "INSERT INTO signups(activity_id, openid, status, created_at, confirmed_at) "
                    "VALUES (?, ?, ?, ?, ?) RETURNING *",
                [activity_id, openid, status, stamp, stamp if status == "confirmed" else None])


def count_confirmed(db: Database, activity_id: int) -> int:
    return db.execute("SELECT count(*) FROM signups WHERE activity_id = ? AND status = 'confirmed'",
                      [activity_id]).fetchone()[0]


def waitlist_position(db: Database, signup_id: int) -> int | None:
    """1-based place in the waitlist (first come, first served by sign-up id)."""
    row = db.execute(
        "SELECT s.status, (SELECT count(*) FROM signups w WHERE w.activity_id = s.activity_id "
        "AND w.status = 'waitlisted' AND w.id <= s.id) FROM signups s WHERE s.id = ?",
        [signup_id]).fetchone()
    return row[1] if row and row[0] == "waitlisted" else None


def first_waitlisted(db: Database, activity_id: int) -> dict | None:
    return _one(db, "SELECT * FROM signups WHERE activity_id = ? AND status = 'waitlisted' "
                    "ORDER BY id LIMIT 1", [activity_id])


def get_signup(db: Database, signup_id: int) -> dict | None:
    return _one(db, "SELECT * FROM signups WHERE id = ?", [signup_id])


def live_signup(db: Database, activity_id: int, openid: str) -> dict | None:
    return _one(db, "SELECT * FROM signups WHERE activity_id = ? AND openid = ? "
                    "AND status != 'cancelled'", [activity_id, openid])


def confirm(db: Database, signup_id: int, now: datetime, promoted_by: str | None) -> None:
    db.execute("UPDATE signups SET status = 'confirmed', confirmed_at = ?, promoted_by = ? "
               "WHERE id = ?", [to_db(now), promoted_by, signup_id])


def cancel(db: Database, signup_id: int, now: datetime) -> None:
    db.execute("UPDATE signups SET status = 'cancelled', cancelled_at = ? WHERE id = ?",
               [to_db(now), signup_id])


def check_in(db: Database, signup_id: int, now: datetime, hours: float | None) -> None:
    db.execute("UPDATE signups SET checked_in_at = ?, hours = ? WHERE id = ?",
               [to_db(now), hours, signup_id])


def check_out(db: Database, signup_id: int, now: datetime, hours: float) -> None:
    db.execute("UPDATE signups SET checked_out_at = ?, hours = ? WHERE id = ?",
               [to_db(now), hours, signup_id])


def set_hours(db: Database, signup_id: int, hours: float) -> None:
    db.execute("UPDATE signups SET hours = ? WHERE id = ?", [hours, signup_id])


def live_signups_of_activity(db: Database, activity_id: int) -> list[dict]:
    return _query(db, "SELECT * FROM signups WHERE activity_id = ? AND status != 'cancelled' "
                  "ORDER BY id", [activity_id])


def member_upcoming(db: Database, openid: str, now: datetime) -> list[dict]:
    """The member's live sign-ups for activities that have not ended, soonest first."""
    return _query(db,
        "SELECT s.id AS signup_id, s.status AS signup_status, s.created_at AS signed_up_at, "
        "s.checked_in_at, s.hours AS credited_hours, "
        "(SELECT count(*) FROM signups w WHERE w.activity_id = s.activity_id "
        " AND w.status = 'waitlisted' AND w.id <= s.id) AS position, a.* "
        "FROM signups s JOIN activities a ON a.id = s.activity_id "
        "WHERE s.openid = ? AND s.status != 'cancelled' "
        "AND COALESCE(a.end_at, a.start_at) >= ? ORDER BY a.start_at, s.id",
        [openid, to_db(now)])


def activity_signups(db: Database, activity_id: int) -> list[dict]:
    """Every sign-up of an activity with the member's profile, in sign-up order."""
    return _query(db,
        "SELECT s.*, m.name, m.unit, m.phone, "
        "(SELECT count(*) FROM signups w WHERE w.activity_id = s.activity_id "
        " AND w.status = 'waitlisted' AND w.id <= s.id) AS position "
        "FROM signups s LEFT JOIN members m ON m.openid = s.openid "
        "WHERE s.activity_id = ? ORDER BY s.id", [activity_id])


def hours_total(db: Database, openid: str) -> tuple[float, int]:
    """(hours, activities) credited to a member: confirmed sign-ups with hours recorded."""
    row = db.execute(
        "SELECT COALESCE(sum(s.hours), 0), count(*) FROM signups s "
        "JOIN activities a ON a.id = s.activity_id WHERE s.openid = ? AND s.status = 'confirmed' "
        "AND s.hours IS NOT NULL AND s.hours > 0 AND a.status != 'cancelled'", [openid]).fetchone()
    return float(row[0]), row[1]


def service_records(db: Database, openid: str) -> list[dict]:
    """What a volunteer record lists: attended or credited activities, oldest first."""
    return _query(db,
        "SELECT s.id AS signup_id, s.checked_in_at, s.hours AS credited_hours, "
        "a.id AS activity_id, a.title, a.grp, a.created_by, a.location, a.start_at, a.end_at, "
        "a.hours AS planned_hours FROM signups s JOIN activities a ON a.id = s.activity_id "
        "WHERE s.openid = ? AND s.status = 'confirmed' AND a.status != 'cancelled' "
        "AND (s.checked_in_at IS NOT NULL OR s.hours IS NOT NULL) ORDER BY a.start_at, s.id",
        [openid])


def member_live_signups(db: Database, openid: str) -> list[tuple[dict, dict]]:
    """(activity, sign-up) for each live sign-up of the member, newest activity first."""
    rows = _query(db,
        "SELECT s.id AS s_id, a.* FROM signups s JOIN activities a ON a.id = s.activity_id "
        "WHERE s.openid = ? AND s.status != 'cancelled' ORDER BY a.start_at DESC, s.id",
        [openid])
    return [({k: v for k, v in r.items() if k != "s_id"}, get_signup(db, r["s_id"]))
            for r in rows]


# --- certificates ---------------------------------------------------------------------------

def insert_certificate(db: Database, openid: str, activities: int, total_hours: float,
                       actor: str, now: datetime, number_of) -> str:
    """Record one issued certificate; `number_of(id)` makes its number from the row id."""
    cur = db.execute("INSERT INTO certificates(openid, activities, total_hours, actor, issued_at) "
                     "VALUES (?, ?, ?, ?, ?)", [openid, activities, total_hours, actor, to_db(now)])
    number = number_of(cur.lastrowid)
    db.execute("UPDATE certificates SET number = ? WHERE id = ?", [number, cur.lastrowid])
    return number


# --- check-in QR codes ---------------------------------------------------------------------

def get_qr(db: Database, activity_id: int) -> dict | None:
    return _one(db, "SELECT * FROM checkin_qr WHERE activity_id = ?", [activity_id])


def put_qr(db: Database, activity_id: int, *, code: str, ticket: str | None, url: str | None,
           expires_at: datetime, error: str | None, unverified: bool, now: datetime) -> None:
    """The activity's current QR code (or the error that stopped it, retried after expires_at)."""
    db.execute("INSERT OR REPLACE INTO checkin_qr(activity_id, code, ticket, url, expires_at, "
               "error, unverified, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               [activity_id, code, ticket, url, to_db(expires_at), error, int(unverified),
                to_db(now)])


# --- check-in attempts --------------------------------------------------------------------

def wrong_attempts(db: Database, openid: str, activity_id: int, since: datetime) -> list[str]:
    """When the member typed a wrong code against this activity since a moment, oldest first
    (activity 0: a member signed up for nothing that could be checked into)."""
    return [r[0] for r in db.execute(
        "SELECT at FROM checkin_attempts WHERE openid = ? AND activity_id = ? AND at > ? "
        "ORDER BY at", [openid, activity_id, to_db(since)])]


def record_wrong_attempt(db: Database, openid: str, activity_id: int, code: str,
                         now: datetime) -> None:
    db.execute("INSERT INTO checkin_attempts(openid, activity_id, code, at) VALUES (?, ?, ?, ?)",
               [openid, activity_id, code[:16], to_db(now)])


# --- hour corrections -------------------------------------------------------------------

def insert_correction(db: Database, signup_id: int, old_hours: float | None, new_hours: float,
                      reason: str, actor: str, now: datetime) -> int:
    cur = db.execute("INSERT INTO hour_corrections(signup_id, old_hours, new_hours, reason, "
                     "actor, at) VALUES (?, ?, ?, ?, ?, ?)",
                     [signup_id, old_hours, new_hours, reason, actor, to_db(now)])
    return cur.lastrowid


def corrections(db: Database, signup_ids: list[int]) -> list[dict]:
    if not signup_ids:
        return []
    marks = ", ".join("?" * len(signup_ids))
    return _query(db, f"SELECT * FROM hour_corrections WHERE signup_id IN ({marks}) "
                  "ORDER BY id", signup_ids)
