"""Alliance projects (项目化运作) and their progress: every SQL statement for them lives here."""
from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from clock import to_db

SEED_BY = "联盟方案"
FALLBACK_YEAR = 2025  # the plan's project table is 2025's when sources.yaml gives no date


def quarters_text(quarters: list[int]) -> str:
    return ",".join(str(q) for q in sorted(set(quarters)))


def quarters_of(project: dict) -> list[int]:
    return [int(q) for q in (project.get("quarters") or "").split(",") if q.strip()]


def seed_from_alliance(db: Database, alliance: dict | None = None,
                       year: int | None = None) -> int:
    """Insert the plan's project table (knowledge/data/alliance.yaml) unless already there.

    Keyed by source_key, so running it again adds nothing and a renamed project stays renamed.
    """
    from knowledge.data import load_alliance, load_sources

    if alliance is None:
        alliance = load_alliance()
    if year is None:
        date = getattr(load_sources().get(alliance.get("source", "")), "date", "") or ""
        year = int(date[:4]) if date[:4].isdigit() else FALLBACK_YEAR
    added = 0
    for g in alliance.get("groups") or []:
        for n, p in enumerate(g.get("projects") or [], 1):
            cur = db.execute(
                "INSERT OR IGNORE INTO projects(year, grp, name, type, quarters, source_key, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [year, g["key"], p["name"], p["type"], quarters_text(p["quarters"]),
                 f"alliance:{year}:{g['key']}:{n}", SEED_BY])
            added += cur.rowcount
    return added


def insert(db: Database, *, year: int, grp: str, name: str, type_: str, quarters: list[int],
           created_by: str | None, now: datetime) -> int:
    """Raises sqlite3.IntegrityError when the group already has a project of that name that year."""
    cur = db.execute("INSERT INTO projects(year, grp, name, type, quarters, created_by, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [year, grp, name, type_, quarters_text(quarters), created_by, to_db(now)])
    return cur.lastrowid


def get(db: Database, project_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM projects WHERE id = ?", [project_id]))
    return rows[0] if rows else None


def years(db: Database) -> list[int]:
    return [r[0] for r in db.execute("SELECT DISTINCT year FROM projects ORDER BY year")]


def for_year(db: Database, year: int, grp: str | None = None) -> list[dict]:
    """A year's projects with their progress: activities held (not cancelled), participants
    (confirmed sign-ups that checked in or were credited) and hours credited."""
    where, args = "p.year = ?", [year]
    if grp:
        where += " AND p.grp = ?"
        args.append(grp)
    return list(db.query(
        "SELECT p.*, "
        "(SELECT count(*) FROM activities a WHERE a.project_id = p.id "
        " AND a.status NOT IN ('cancelled', 'draft')) AS activities, "
        "(SELECT count(*) FROM signups s JOIN activities a ON a.id = s.activity_id "
        " WHERE a.project_id = p.id AND a.status != 'cancelled' AND s.status = 'confirmed' "
        " AND (s.checked_in_at IS NOT NULL OR s.hours > 0)) AS participants, "
        "(SELECT COALESCE(sum(s.hours), 0) FROM signups s JOIN activities a "
        " ON a.id = s.activity_id WHERE a.project_id = p.id AND a.status != 'cancelled' "
        " AND s.status = 'confirmed') AS hours "
        f"FROM projects p WHERE {where} ORDER BY p.grp, p.id", args))


def all_projects(db: Database) -> list[dict]:
    """Every project, newest year first (the activity form's select)."""
    return list(db.query("SELECT * FROM projects ORDER BY year DESC, grp, id"))


def activities_of(db: Database, project_id: int) -> list[dict]:
    return list(db.query(
        "SELECT a.*, "
        "(SELECT count(*) FROM signups s WHERE s.activity_id = a.id AND s.status = 'confirmed' "
        " AND (s.checked_in_at IS NOT NULL OR s.hours > 0)) AS participants, "
        "(SELECT COALESCE(sum(s.hours), 0) FROM signups s WHERE s.activity_id = a.id "
        " AND s.status = 'confirmed') AS credited "
        "FROM activities a WHERE a.project_id = ? ORDER BY a.start_at, a.id", [project_id]))


def organisers(db: Database) -> list[dict]:
    """Members with the organiser role who still follow the account (reminder audience)."""
    return list(db.query("SELECT openid, unit FROM members WHERE role = 'organiser' "
                         "AND subscribed = 1 ORDER BY openid"))


# --- the November summary ---------------------------------------------------------------------

def held_activities(db: Database, start: datetime, end: datetime) -> list[dict]:
    """Published, not cancelled activities starting in [start, end), with their project's
    group and per-activity participants (checked in or credited) and hours."""
    return list(db.query(
        "SELECT a.id, a.title, a.grp, a.location, a.start_at, a.project_id, "
        "p.grp AS project_grp, p.name AS project_name, "
        "(SELECT count(*) FROM signups s WHERE s.activity_id = a.id AND s.status = 'confirmed' "
        " AND (s.checked_in_at IS NOT NULL OR s.hours > 0)) AS participants, "
        "(SELECT COALESCE(sum(s.hours), 0) FROM signups s WHERE s.activity_id = a.id "
        " AND s.status = 'confirmed') AS hours "
        "FROM activities a LEFT JOIN projects p ON p.id = a.project_id "
        "WHERE a.status IN ('open', 'closed') AND a.start_at >= ? AND a.start_at < ? "
        "ORDER BY a.start_at, a.id", [to_db(start), to_db(end)]))


def participants(db: Database, activity_ids: list[int]) -> list[dict]:
    """One row per participation (confirmed, checked in or credited) with the member's unit."""
    if not activity_ids:
        return []
    marks = ", ".join("?" * len(activity_ids))
    return list(db.query(
        "SELECT s.activity_id, s.openid, COALESCE(s.hours, 0) AS hours, m.unit "
        "FROM signups s LEFT JOIN members m ON m.openid = s.openid "
        f"WHERE s.activity_id IN ({marks}) AND s.status = 'confirmed' "
        "AND (s.checked_in_at IS NOT NULL OR s.hours > 0) ORDER BY s.id", activity_ids))
