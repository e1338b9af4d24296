"""Knowledge that lives in the database: organiser edits, aliases, ingested passages, and the
questions the bot could not answer. The YAML files stay the defaults."""
from __future__ import annotations

import json
from datetime import datetime

from sqlite_utils import Database

from clock import to_db
from storage.db import immediate

VERSION_KEY = "kb_version"
INSERT_BATCH = 500  # passages per executemany: bounded parameter lists, one transaction


def version(db: Database) -> int:
    row = db.execute("SELECT value FROM kv WHERE key = ?", [VERSION_KEY]).fetchone()
    return int(row[0]) if row else 0


def bump_version(db: Database, now: datetime) -> None:
    """Every change that the engine must see bumps this; engines reload on a new value."""
    db.execute("INSERT INTO kv(key, value, updated_at) VALUES (?, '1', ?) ON CONFLICT(key) "
               "DO UPDATE SET value = CAST(value AS INTEGER) + 1, updated_at = excluded.updated_at",
               [VERSION_KEY, to_db(now)])


def entries(db: Database, include_deleted: bool = False) -> list[dict]:
    where = "" if include_deleted else "WHERE deleted = 0"
    return list(db.query(f"SELECT * FROM kb_entries {where} ORDER BY updated_at"))


def save_entry(db: Database, entry: dict, actor: str, now: datetime) -> None:
    """Add or replace an entry (by id); it overrides a file entry with the same id."""
    with immediate(db):
        db.execute("INSERT INTO kb_entries(id, data, updated_at, updated_by, deleted) "
                   "VALUES (?, ?, ?, ?, 0) ON CONFLICT(id) DO UPDATE SET data = excluded.data, "
                   "updated_at = excluded.updated_at, updated_by = excluded.updated_by, deleted = 0",
                   [entry["id"], json.dumps(entry, ensure_ascii=False), to_db(now), actor])
        bump_version(db, now)


def delete_entry(db: Database, entry_id: str, actor: str, now: datetime) -> None:
    with immediate(db):
        db.execute("INSERT INTO kb_entries(id, data, updated_at, updated_by, deleted) "
                   "VALUES (?, '{}', ?, ?, 1) ON CONFLICT(id) DO UPDATE SET deleted = 1, "
                   "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                   [entry_id, to_db(now), actor])
        bump_version(db, now)


def aliases(db: Database) -> list[dict]:
    return list(db.query("SELECT * FROM kb_aliases ORDER BY created_at"))


def add_alias(db: Database, alias: str, entry_id: str, actor: str, now: datetime) -> None:
    with immediate(db):
        db.execute("INSERT INTO kb_aliases(alias, entry_id, created_at, created_by) "
                   "VALUES (?, ?, ?, ?) ON CONFLICT(alias) DO UPDATE SET entry_id = excluded.entry_id",
                   [alias, entry_id, to_db(now), actor])
        bump_version(db, now)


def passages(db: Database) -> list[dict]:
    return list(db.query("SELECT * FROM passages ORDER BY doc_key, seq"))


def replace_document(db: Database, *, doc_key: str, title: str, doc_no: str, file: str,
                     texts: list[str], now: datetime) -> int:
    """Store a document's passages, replacing an earlier ingest of the same document: inserted in
    batches of INSERT_BATCH inside one transaction, and the version bumped once (one rebuild)."""
    with immediate(db):
        db.execute("DELETE FROM passages WHERE doc_key = ?", [doc_key])
        for first in range(0, len(texts), INSERT_BATCH):
            db.conn.executemany(
                "INSERT INTO passages(doc_key, title, doc_no, seq, text, file, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(doc_key, title, doc_no, seq, text, file, to_db(now))
                 for seq, text in enumerate(texts[first:first + INSERT_BATCH], first + 1)])
        bump_version(db, now)
    return len(texts)


def documents(db: Database) -> list[dict]:
    return list(db.query("SELECT doc_key, title, doc_no, file, count(*) passages, "
                         "max(created_at) ingested_at FROM passages GROUP BY doc_key ORDER BY doc_key"))


def record_unanswered(db: Database, question: str, norm: str, now: datetime) -> None:
    db.execute("INSERT INTO unanswered(norm, question, count, first_at, last_at, status) "
               "VALUES (?, ?, 1, ?, ?, 'open') ON CONFLICT(norm) DO UPDATE SET "
               "count = count + 1, last_at = excluded.last_at, question = excluded.question, "
               "status = CASE WHEN status = 'resolved' THEN 'open' ELSE status END",
               [norm, question, to_db(now), to_db(now)])


def unanswered(db: Database, status: str | None = "open", limit: int = 50,
               order: str = "last") -> list[dict]:
    where = "WHERE status = ?" if status else ""
    args = [status] if status else []
    sort = "last_at DESC" if order == "last" else "count DESC, last_at DESC"
    return list(db.query(f"SELECT * FROM unanswered {where} ORDER BY {sort} LIMIT ?", [*args, limit]))


def get_unanswered(db: Database, unanswered_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM unanswered WHERE id = ?", [unanswered_id]))
    return rows[0] if rows else None


def resolve_unanswered(db: Database, unanswered_id: int, entry_id: str) -> None:
    db.execute("UPDATE unanswered SET status = 'resolved', entry_id = ? WHERE id = ?",
               [entry_id, unanswered_id])


def dismiss_unanswered(db: Database, unanswered_id: int) -> None:
    db.execute("UPDATE unanswered SET status = 'dismissed' WHERE id = ?", [unanswered_id])
