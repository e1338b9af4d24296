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
def m060_attendance(db: Database) -> None:
    # Hours that hold up: attendance stands, hours only for attended sign-ups, counted guesses.
    db["activities"].add_column("checkout", int, not_null_default=0)  # 签退 turned on
    db["activities"].add_column("hours_step", float, not_null_default=0.5)  # rounding, down
    db["signups"].add_column("checked_out_at", str)
    db.execute("CREATE TRIGGER signups_attendance_stands BEFORE UPDATE OF status ON signups "
               "WHEN OLD.checked_in_at IS NOT NULL AND NEW.status = 'cancelled' "
               "BEGIN SELECT RAISE(ABORT, 'an attended sign-up cannot be cancelled'); END")
    db.execute("CREATE TRIGGER signups_hours_need_attendance BEFORE UPDATE OF hours ON signups "
               "WHEN NEW.hours IS NOT NULL AND NEW.checked_in_at IS NULL "
               "BEGIN SELECT RAISE(ABORT, 'hours need an attended sign-up'); END")
    db["checkin_attempts"].create({"id": int, "openid": str, "activity_id": int, "code": str,
                                   "at": str}, pk="id",
                                  not_null={"openid", "activity_id", "at"})
    db["checkin_attempts"].create_index(["openid", "activity_id", "at"])


@migrations()
def m061_delivery_reports(db: Database) -> None:
    # WeChat's msgid for a template message, and its TEMPLATESENDJOBFINISH report.
    db["deliveries"].add_column("wechat_msgid", str)
    db["deliveries"].add_column("report", str)
    db["deliveries"].add_column("reported_at", str)
    db["deliveries"].create_index(["wechat_msgid"])


@migrations()
def m062_checkin_qr(db: Database) -> None:
    # The activity's WeChat QR code (QR_STR_SCENE checkin:<code>), or why it could not be made.
    db["checkin_qr"].create({"activity_id": int, "code": str, "ticket": str, "url": str,
                             "expires_at": str, "error": str, "unverified": int,
                             "created_at": str}, pk="activity_id",
                            foreign_keys=[("activity_id", "activities", "id")])


@migrations()
def m063_certificates(db: Database) -> None:
    # Every 志愿服务记录证明 issued: its number, whom, what it certified, who issued it.
    db["certificates"].create({"id": int, "number": str, "openid": str, "activities": int,
                               "total_hours": float, "actor": str, "issued_at": str},
                              pk="id", not_null={"openid", "actor", "issued_at"})
    db["certificates"].create_index(["number"], unique=True)


@migrations()
def m030_message_claims(db: Database) -> None:
    # Which process runs a message and since when (wall-clock seconds), so a retry or a restart
    # can tell a dead run from a slow one; and the signed URL's (timestamp, nonce), which one
    # message only may use: a logged URL replayed with another body is refused.
    db["messages"].add_column("claimed_by", str)
    db["messages"].add_column("claimed_at", float)
    db["messages"].add_column("signed_at", str)
    db["messages"].add_column("nonce", str)
    db.execute("CREATE INDEX messages_open ON messages(status) "
               "WHERE status IN ('processing', 'deferred')")
    db.execute("CREATE UNIQUE INDEX messages_signed ON messages(signed_at, nonce) "
               "WHERE nonce IS NOT NULL")


@migrations()
def m040_console_sessions(db: Database) -> None:
    # Console sessions live on the server (logout ends them), and failed logins are counted per
    # client and per typed name (growing delays) instead of locking accounts.
    db["admin_sessions"].create({"id": str, "admin_id": int, "created_at": str}, pk="id",
                                not_null={"admin_id", "created_at"})
    db["admin_sessions"].create_index(["admin_id"])
    db["login_throttle"].create({"key": str, "failures": int, "last_at": str,
                                 "blocked_until": str}, pk="key", not_null={"failures"})
    db["login_throttle"].create_index(["last_at"])


@migrations()
def m080_needs_projects(db: Database) -> None:
    # 项目化运作: each group's projects for a year; quarters as "2,3".
    db["projects"].create({
        "id": int, "year": int, "grp": str, "name": str, "type": str, "quarters": str,
        "source_key": str, "created_by": str, "created_at": str,
    }, pk="id", not_null={"year", "grp", "name", "type", "quarters"})
    db["projects"].create_index(["year", "grp", "name"], unique=True)
    db["projects"].create_index(["source_key"], unique=True)
    db["activities"].add_column("project_id", int)
    db["activities"].create_index(["project_id"])
    # 需求征集: a member's need, its group (from the unit) and where it stands.
    db.execute("""
        CREATE TABLE needs (
            id INTEGER PRIMARY KEY, openid TEXT NOT NULL, unit TEXT, grp TEXT,
            content TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'new'
                CHECK (status IN ('new', 'adopted', 'claimed', 'done', 'rejected')),
            reason TEXT, mode TEXT CHECK (mode IS NULL OR mode IN ('directed', 'open')),
            assigned_unit TEXT, project_id INTEGER REFERENCES projects(id),
            created_at TEXT NOT NULL, updated_at TEXT, updated_by TEXT)""")
    db["needs"].create_index(["openid", "id"])
    db["needs"].create_index(["grp", "status"])
    # 揭榜: one row per need, so the first claim wins whatever the code above does.
    db.execute("""
        CREATE TABLE need_claims (
            need_id INTEGER PRIMARY KEY REFERENCES needs(id), unit TEXT NOT NULL,
            actor TEXT NOT NULL, at TEXT NOT NULL)""")
    db["need_events"].create({
        "id": int, "need_id": int, "status": str, "detail": str, "actor": str, "at": str,
    }, pk="id", foreign_keys=[("need_id", "needs", "id")], not_null={"need_id", "status", "at"})
    db["need_events"].create_index(["need_id", "id"])


@migrations()
def m081_default_projects(db: Database) -> None:
    """The 2025 project table (alliance.yaml) as records; organisers add later years."""
    from storage.projects import seed_from_alliance

    seed_from_alliance(db)


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



@migrations()
def m090_admin_scope(db: Database) -> None:
    # 三级: an organiser limited to a 共同体 or a unit ("group:fazhi" / "unit:…"); NULL sees all.
    db["admins"].add_column("scope", str)

def migrate(db: Database) -> None:
    """Bring the database to the newest schema; safe to call at every start, from any process."""
    from storage.db import immediate

    with immediate(db):
        migrations.apply(db)
