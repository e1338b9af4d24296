"""Small named values the bot keeps for itself (in the kv table), and the generated secrets it
keeps out of the database: a copy of bot.db (backups) must not open the console or sign
messages, so those live in 0600 files in BOT_DATA_DIR."""
from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from clock import to_db
from storage.db import immediate

SECRET_FILE_MODE = 0o600


def get(db: Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def keys(db: Database, prefix: str) -> list[str]:
    """The keys that start with `prefix` (a year's plan is kept as plan:<year>)."""
    return [r[0] for r in db.execute("SELECT key FROM kv WHERE substr(key, 1, ?) = ?",
                                     [len(prefix), prefix])]


def put(db: Database, key: str, value: str, now: datetime) -> None:
    db.execute("INSERT INTO kv(key, value, updated_at) VALUES (?, ?, ?) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
               "updated_at = excluded.updated_at", [key, value, to_db(now)])


def secret_path(folder: str | Path, key: str) -> Path:
    return Path(folder) / f"{key}.secret"


def read_secret_file(folder: str | Path, key: str) -> str | None:
    """The kept value of a file secret, or None when there is none yet."""
    try:
        return secret_path(folder, key).read_text().strip() or None
    except FileNotFoundError:
        return None


def file_secret(db: Database, folder: str | Path, key: str, *, nbytes: int = 16,
                keep_db_value: bool = True) -> tuple[str, bool]:
    """A random value generated once and kept in `folder/<key>.secret` (mode 0600), never in
    the database: (value, created_now). A value an older version stored in the kv table is moved
    to the file (keep_db_value) or replaced by a new one, and deleted from the table either way.
    Safe across processes: the file appears whole (written aside, then linked) or not at all."""
    path = secret_path(folder, key)
    stored = get(db, key)
    value, created = read_secret_file(folder, key), False
    if value is None:
        value = stored if (stored and keep_db_value) else secrets.token_hex(nbytes)
        created = _write_once(path, value)
        if not created:
            value = read_secret_file(folder, key) or value
    elif path.stat().st_mode & 0o777 != SECRET_FILE_MODE:
        path.chmod(SECRET_FILE_MODE)
    if stored is not None:
        _forget(db, key)
    return value, created and not (stored and keep_db_value)


def _write_once(path: Path, value: str) -> bool:
    """Create the file with this value unless another process did first; True if we did."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(aside, path)
        return True
    except FileExistsError:
        return False
    finally:
        aside.unlink(missing_ok=True)


def _forget(db: Database, key: str) -> None:
    """Delete a kv row and overwrite its bytes in the file (SQLite's secure_delete)."""
    previous = db.execute("PRAGMA secure_delete").fetchone()[0]
    db.execute("PRAGMA secure_delete = ON")
    try:
        with immediate(db):
            db.execute("DELETE FROM kv WHERE key = ?", [key])
    finally:
        db.execute(f"PRAGMA secure_delete = {int(previous)}")
