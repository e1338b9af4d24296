"""The schema, as versioned migrations (sqlite-utils Migrations). Never edit an applied one: add."""
from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("chengcheng")


@migrations()
def m001_core(db: Database) -> None:
    db["kv"].create({"key": str, "value": str, "updated_at": str}, pk="key")
    db["members"].create({
        "openid": str, "subscribed": int, "first_seen": str, "last_seen": str,
        "unsubscribed_at": str, "name": str, "unit": str, "phone": str, "role": str,
        "reminders": int, "profile_at": str,
    }, pk="openid", defaults={"subscribed": 1, "role": "member", "reminders": 1},
        not_null={"subscribed", "role", "reminders"})
    db["messages"].create({
        "id": int, "dedupe_key": str, "msg_id": str, "openid": str, "type": str, "event": str,
        "content": str, "reply": str, "final_reply": str, "handler": str, "topic": str,
        "answered": int, "status": str, "latency_ms": int, "created_at": str, "finished_at": str,
    }, pk="id", not_null={"dedupe_key", "openid", "status", "created_at"})
    db["messages"].create_index(["dedupe_key"], unique=True)
    db["messages"].create_index(["openid", "created_at"])
    db["messages"].create_index(["created_at"])
    db["dialogs"].create({"openid": str, "state": str, "data": str, "expires_at": str},
                         pk="openid")
    db["reply_pages"].create({"openid": str, "pages": str, "expires_at": str}, pk="openid")
    db["leases"].create({"name": str, "owner": str, "expires_at": str}, pk="name")
    db["deliveries"].create({
        "id": int, "dedupe_key": str, "openid": str, "kind": str, "title": str, "text": str,
        "data": str, "due_at": str, "expires_at": str, "status": str, "channel": str,
        "attempts": int, "next_attempt_at": str, "last_error": str, "batch": str,
        "created_at": str, "sent_at": str,
    }, pk="id", defaults={"attempts": 0, "status": "pending"},
        not_null={"dedupe_key", "openid", "kind", "text", "due_at", "status", "attempts"})
    db["deliveries"].create_index(["dedupe_key"], unique=True)
    db["deliveries"].create_index(["status", "next_attempt_at"])
    db["deliveries"].create_index(["openid", "channel", "sent_at"])
    db["deliveries"].create_index(["batch"])


@migrations()
def m002_knowledge(db: Database) -> None:
    db["unanswered"].create({
        "id": int, "norm": str, "question": str, "count": int, "first_at": str,
        "last_at": str, "status": str, "entry_id": str,
    }, pk="id", defaults={"count": 1, "status": "open"}, not_null={"norm", "question"})
    db["unanswered"].create_index(["norm"], unique=True)
    db["kb_entries"].create({
        "id": str, "data": str, "updated_at": str, "updated_by": str, "deleted": int,
    }, pk="id", defaults={"deleted": 0})
    db["kb_aliases"].create({"alias": str, "entry_id": str, "created_at": str,
                             "created_by": str}, pk="alias")
    db["passages"].create({
        "id": int, "doc_key": str, "title": str, "doc_no": str, "seq": int, "text": str,
        "file": str, "created_at": str,
    }, pk="id", not_null={"doc_key", "text"})
    db["passages"].create_index(["doc_key", "seq"], unique=True)


@migrations()
def m003_activities(db: Database) -> None:
    db["activities"].create({
        "id": int, "title": str, "grp": str, "description": str, "location": str,
        "start_at": str, "end_at": str, "deadline_at": str, "capacity": int, "hours": float,
        "status": str, "checkin_code": str, "source_key": str, "created_by": str,
        "created_at": str, "updated_at": str,
    }, pk="id", defaults={"status": "draft", "hours": 0}, not_null={"title", "status"})
    db["activities"].create_index(["status", "start_at"])
    db["activities"].create_index(["source_key"], unique=True)
    db["signups"].create({
        "id": int, "activity_id": int, "openid": str, "status": str, "created_at": str,
        "confirmed_at": str, "cancelled_at": str, "checked_in_at": str, "hours": float,
        "promoted_by": str,
    }, pk="id", foreign_keys=[("activity_id", "activities", "id")],
        not_null={"activity_id", "openid", "status", "created_at"})
    # One live sign-up per member per activity, whatever the code above it does.
    db.execute("CREATE UNIQUE INDEX signups_live ON signups(activity_id, openid) "
               "WHERE status != 'cancelled'")
    db["signups"].create_index(["activity_id", "status", "id"])
    db["signups"].create_index(["openid", "status"])
    db["hour_corrections"].create({
        "id": int, "signup_id": int, "old_hours": float, "new_hours": float, "reason": str,
        "actor": str, "at": str,
    }, pk="id", foreign_keys=[("signup_id", "signups", "id")])
    db["member_topics"].create({"openid": str, "topic": str, "created_at": str},
                               pk=("openid", "topic"))


@migrations()
def m004_console(db: Database) -> None:
    db["admins"].create({
        "id": int, "name": str, "password_hash": str, "role": str, "created_at": str,
        "failed": int, "locked_until": str,
    }, pk="id", defaults={"failed": 0}, not_null={"name", "password_hash", "role"})
    db["admins"].create_index(["name"], unique=True)
    db["audit"].create({"id": int, "actor": str, "action": str, "target": str,
                        "detail": str, "at": str}, pk="id")
    db["audit"].create_index(["at"])


@migrations()
def m020_sched_claims(db: Database) -> None:
    # Who claimed a 'sending' row: a successor frees a dead sender's claims at once.
    db["deliveries"].add_column("claimed_by", str)
    db["deliveries"].create_index(["openid", "status"])


@migrations()
def m070_handoff(db: Database) -> None:
    # 人工: a member's conversation with a person; at most one open per member, by constraint.
    db["handoffs"].create({
        "id": int, "openid": str, "status": str, "via": str, "opened_at": str,
        "waiting_since": str, "last_member_at": str, "last_staff_at": str,
        "last_activity_at": str, "closed_at": str, "closed_by": str, "close_reason": str,
    }, pk="id", defaults={"status": "open"},
        not_null={"openid", "status", "opened_at", "last_activity_at"})
    db.execute("CREATE UNIQUE INDEX handoffs_one_open ON handoffs(openid) WHERE status = 'open'")
    db["handoffs"].create_index(["status", "waiting_since"])
    db["handoff_watchers"].create({"openid": str, "since": str}, pk="openid",
                                  not_null={"since"})


def migrate(db: Database) -> None:
    """Bring the database to the newest schema; safe to call at every start, from any process."""
    from storage.db import immediate

    with immediate(db):
        migrations.apply(db)
