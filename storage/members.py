"""Members: who wrote to the bot, whether they still follow the account, their profile."""
from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from clock import to_db

ROLES = ("member", "organiser")
TEST_PREFIXES = ("sim-", "test-")  # the simulator's test members (console/simulator.py)


class NotFound(LookupError):
    """No such row."""


def touch(db: Database, openid: str, now: datetime, *, subscribed: bool | None = None) -> None:
    """Record that the member just interacted (opens WeChat's 48-hour customer-service window)."""
    stamp = to_db(now)
    touch_all(db, [(openid, stamp)])
    if subscribed is True:
        db.execute("UPDATE members SET subscribed = 1, unsubscribed_at = NULL WHERE openid = ?",
                   [openid])
    elif subscribed is False:
        db.execute("UPDATE members SET subscribed = 0, unsubscribed_at = ? WHERE openid = ?",
                   [stamp, openid])


def touch_all(db: Database, visits: list[tuple[str, str]]) -> None:
    """`touch` for many members at once: (openid, when as stored) pairs, later ones last."""
    db.conn.execute(
        "INSERT INTO members(openid, subscribed, first_seen, last_seen, role, reminders) VALUES "
        + ", ".join(["(?, 1, ?, ?, 'member', 1)"] * len(visits))
        + " ON CONFLICT(openid) DO UPDATE SET last_seen = excluded.last_seen",
        [value for openid, stamp in visits for value in (openid, stamp, stamp)])


def arrived(db: Database, openid: str, now: datetime) -> dict:
    """`touch` for a member's message, returning the member's row (one statement, not two)."""
    stamp = to_db(now)
    cursor = db.conn.execute(
        "INSERT INTO members(openid, subscribed, first_seen, last_seen, role, reminders) "
        "VALUES (?, 1, ?, ?, 'member', 1) "
        "ON CONFLICT(openid) DO UPDATE SET last_seen = excluded.last_seen RETURNING *",
        [openid, stamp, stamp])
    (row,) = cursor.fetchall()  # to the end, so the statement (and its write) is finished
    return dict(zip([c[0] for c in cursor.description], row))


def mark_unsubscribed(db: Database, openid: str, now: datetime) -> None:
    """WeChat said the member no longer follows the account (errcode 43004): stop pushing."""
    db.execute("UPDATE members SET subscribed = 0, unsubscribed_at = ? WHERE openid = ? "
               "AND subscribed = 1", [to_db(now), openid])


def get(db: Database, openid: str) -> dict | None:
    cursor = db.conn.execute("SELECT * FROM members WHERE openid = ?", [openid])
    row = cursor.fetchone()
    return dict(zip([c[0] for c in cursor.description], row)) if row else None


def set_profile(db: Database, openid: str, name: str, unit: str, phone: str | None,
                now: datetime) -> None:
    db.execute("UPDATE members SET name = ?, unit = ?, phone = COALESCE(?, phone), "
               "profile_at = ? WHERE openid = ?", [name, unit, phone, to_db(now), openid])


def set_role(db: Database, openid: str, role: str) -> None:
    """Raises NotFound if the member never wrote to the bot; ValueError for an unknown role."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    cur = db.execute("UPDATE members SET role = ? WHERE openid = ?", [role, openid])
    if cur.rowcount == 0:
        raise NotFound(openid)


def set_reminders(db: Database, openid: str, on: bool) -> None:
    db.execute("UPDATE members SET reminders = ? WHERE openid = ?", [int(on), openid])


def add_topic(db: Database, openid: str, topic: str, now: datetime) -> bool:
    cur = db.execute("INSERT OR IGNORE INTO member_topics(openid, topic, created_at) "
                     "VALUES (?, ?, ?)", [openid, topic, to_db(now)])
    return cur.rowcount > 0


def remove_topic(db: Database, openid: str, topic: str) -> bool:
    cur = db.execute("DELETE FROM member_topics WHERE openid = ? AND topic = ?", [openid, topic])
    return cur.rowcount > 0


def topics(db: Database, openid: str) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT topic FROM member_topics WHERE openid = ? ORDER BY topic", [openid])]


def subscribed_openids(db: Database) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT openid FROM members WHERE subscribed = 1 ORDER BY openid")]


def in_group(db: Database, units: list[str]) -> list[str]:
    """Subscribed members whose unit mentions one of the given unit names (a 共同体's units)."""
    if not units:
        return []
    clause = " OR ".join("instr(unit, ?) > 0" for _ in units)
    return [r[0] for r in db.execute(
        f"SELECT openid FROM members WHERE subscribed = 1 AND unit IS NOT NULL AND ({clause}) "
        "ORDER BY openid", units)]


def stats(db: Database, *, skip_prefixes: tuple[str, ...] = ()) -> dict:
    """Member counts; `skip_prefixes` leaves out openids such as the simulator's test members."""
    where = " AND ".join("substr(openid, 1, ?) != ?" for _ in skip_prefixes) or "1"
    args = [x for p in skip_prefixes for x in (len(p), p)]
    row = db.execute("SELECT count(*), sum(subscribed), sum(name IS NOT NULL) FROM members "
                     f"WHERE {where}", args).fetchone()
    return {"total": row[0], "subscribed": row[1] or 0, "with_profile": row[2] or 0}


def units(db: Database, openids: list[str] | None = None, *,
          skip_prefixes: tuple[str, ...] = ()) -> list[dict]:
    """openid, unit, subscribed and whether a name is registered, for the given members (all
    when None): what a console scope needs to filter and count members."""
    where = [f"substr(openid, 1, {len(p)}) != ?" for p in skip_prefixes]
    args: list = list(skip_prefixes)
    rows = list(db.query("SELECT openid, unit, subscribed, name IS NOT NULL AS named "
                         f"FROM members WHERE {' AND '.join(where) or '1'}", args))
    if openids is not None:
        wanted = set(openids)
        rows = [r for r in rows if r["openid"] in wanted]
    return rows


def ensure(db: Database, openid: str, now: datetime) -> None:
    """Make sure a member row exists without touching last_seen (imports, tests)."""
    db.execute("INSERT OR IGNORE INTO members(openid, subscribed, first_seen, role, reminders) "
               "VALUES (?, 1, ?, 'member', 1)", [openid, to_db(now)])
