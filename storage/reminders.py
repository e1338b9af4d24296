"""What the reminder planner and broadcasts read: who is signed up, who wants which reminder.

Activity reminders go to confirmed sign-ups of published activities; calendar reminders to
members who chose the item (topic = the calendar item's key) or everything (topic '*').
"""
from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from clock import to_db

ALL_TOPICS = "*"
REMINDED_STATUSES = ("open", "closed")  # published activities; closed only stops sign-ups


def upcoming_confirmed(db: Database, now: datetime, activity_id: int | None = None) -> list[dict]:
    """Confirmed sign-ups of published activities that start after `now`, for members who
    follow the account and want reminders: one row per (activity, member)."""
    where, args = "", [to_db(now)]
    if activity_id is not None:
        where, args = "AND a.id = ?", [to_db(now), activity_id]
    return list(db.query(
        "SELECT a.id activity_id, a.title, a.location, a.start_at, a.end_at, a.description, "
        "s.openid, "
        "COALESCE(s.confirmed_at, s.created_at) confirmed_at "
        "FROM activities a JOIN signups s ON s.activity_id = a.id "
        "JOIN members m ON m.openid = s.openid "
        f"WHERE a.status IN {REMINDED_STATUSES!r} AND a.start_at > ? AND s.status = 'confirmed' "
        f"AND m.subscribed = 1 AND m.reminders = 1 {where} ORDER BY a.id, s.id", args))


def reminder_state(db: Database, activity_id: int, openid: str) -> dict:
    """Everything that decides whether one activity reminder should still go out.

    Keys: activity_status, start_at, signup_status, subscribed, reminders (None when missing).
    """
    activity = db.execute("SELECT status, start_at FROM activities WHERE id = ?",
                          [activity_id]).fetchone()
    signup = db.execute("SELECT status FROM signups WHERE activity_id = ? AND openid = ? "
                        "ORDER BY status = 'cancelled', id DESC LIMIT 1",
                        [activity_id, openid]).fetchone()
    member = db.execute("SELECT subscribed, reminders FROM members WHERE openid = ?",
                        [openid]).fetchone()
    return {"activity_status": activity[0] if activity else None,
            "start_at": activity[1] if activity else None,
            "signup_status": signup[0] if signup else None,
            "subscribed": member[0] if member else None,
            "reminders": member[1] if member else None}


def topic_audience(db: Database, topics: list[str]) -> list[str]:
    """Followers who want reminders and chose one of `topics` (include '*' for everyone who
    chose all)."""
    if not topics:
        return []
    marks = ",".join("?" * len(topics))
    return [r[0] for r in db.execute(
        "SELECT m.openid FROM members m WHERE m.subscribed = 1 AND m.reminders = 1 AND EXISTS "
        f"(SELECT 1 FROM member_topics t WHERE t.openid = m.openid AND t.topic IN ({marks})) "
        "ORDER BY m.openid", topics)]


def wants_topic(db: Database, openid: str, topics: list[str]) -> bool:
    """Does this member (still) want a reminder filed under one of `topics`?"""
    marks = ",".join("?" * len(topics))
    return db.execute(
        "SELECT 1 FROM members m WHERE m.openid = ? AND m.subscribed = 1 AND m.reminders = 1 "
        f"AND EXISTS (SELECT 1 FROM member_topics t WHERE t.openid = m.openid "
        f"AND t.topic IN ({marks}))", [openid, *topics]).fetchone() is not None


def clear_topics(db: Database, openid: str) -> int:
    """Forget every calendar topic a member chose."""
    return db.execute("DELETE FROM member_topics WHERE openid = ?", [openid]).rowcount


def activity_audience(db: Database, activity_id: int) -> list[str]:
    """Followers with a live sign-up (confirmed or waitlisted) for the activity."""
    return [r[0] for r in db.execute(
        "SELECT s.openid FROM signups s JOIN members m ON m.openid = s.openid "
        "WHERE s.activity_id = ? AND s.status IN ('confirmed', 'waitlisted') "
        "AND m.subscribed = 1 ORDER BY s.id", [activity_id])]


def activity_title(db: Database, activity_id: int) -> str | None:
    row = db.execute("SELECT title FROM activities WHERE id = ?", [activity_id]).fetchone()
    return row[0] if row else None

