"""Connections and transactions: WAL, a busy timeout, one connection per thread, BEGIN IMMEDIATE,
and one write lock per database file for this process's threads."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database

BUSY_TIMEOUT_SECONDS = 15
HEALTH_BUSY_MS = 1000  # /healthz waits this long for the write lock, not the full busy timeout
_local = threading.local()
_resolved: dict[str, str] = {}
_write_locks: dict[str, threading.RLock] = {}  # one per database file, shared by its connections
_keys_lock = threading.Lock()


class BudgetSpent(sqlite3.OperationalError):
    """A wait for the write lock would have run past the caller's deadline (see `within`)."""


def connect(path: str | Path) -> Database:
    """A new connection with the pragmas every connection here needs.

    isolation_level=None: no implicit transactions; writes that belong together use
    `immediate()` or `db.atomic()`.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
    conn.execute("PRAGMA foreign_keys = ON")
    db = Database(conn)
    if db.journal_mode != "wal":
        db.enable_wal()
    conn.execute("PRAGMA synchronous = NORMAL")
    db.file_key = _key(path)
    with _keys_lock:
        db.write_lock = _write_locks.setdefault(db.file_key, threading.RLock())
    return db


def _key(path: str | Path) -> str:
    """The file's resolved path, worked out once per spelling (resolving costs a syscall each)."""
    raw = str(path)
    key = _resolved.get(raw)
    if key is None:
        key = _resolved[raw] = str(Path(raw).resolve())
    return key


def _per_thread(name: str) -> dict:
    """This thread's cache of connections by file (`dbs`: read-write, `twins`: read-only)."""
    cache = getattr(_local, name, None)
    if cache is None:
        cache = {}
        setattr(_local, name, cache)
    return cache


def open_db(path: str | Path) -> Database:
    """This thread's connection to `path`, opened on first use and kept for the thread's life
    (inside `read_only`, the read-only one)."""
    key = _key(path)
    reading = getattr(_local, "reading", None)
    if reading is not None and reading.file_key == key:
        return reading
    cache = _per_thread("dbs")
    db = cache.get(key)
    if db is None:
        db = cache[key] = connect(path)
    return db


@contextlib.contextmanager
def within(db: Database, deadline: float) -> Iterator[None]:
    """Waits for the write lock in this thread end at `deadline` (time.monotonic()): a
    request answered in its own thread must not wait past its reply budget. Raises
    BudgetSpent where this process's lock would be waited for past it (`spent()` tells
    afterwards); another process's lock fails as "database is locked" then."""
    _local.deadline, _local.spent = deadline, False
    remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
    db.conn.execute(f"PRAGMA busy_timeout = {min(remaining_ms, BUSY_TIMEOUT_SECONDS * 1000)}")
    try:
        yield
    finally:
        _local.deadline = None
        db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")


def spent() -> bool:
    """Whether a wait in the last `within()` block ran out of time."""
    return getattr(_local, "spent", False)


def _wait(wait: float) -> float:
    deadline = getattr(_local, "deadline", None)
    return wait if deadline is None else max(0.0, min(wait, deadline - time.monotonic()))


def _acquire(db: Database, wait: float):
    """This process's write lock for the file, or None; raises when it cannot be had in time.

    On a `read_only` connection the write is refused at once, without queueing for the lock."""
    if getattr(db, "read_only", False):
        db.conn.execute("BEGIN IMMEDIATE")  # raises: query_only refuses it (see refused_write)
    lock = getattr(db, "write_lock", None)
    if lock is not None and not lock.acquire(timeout=_wait(wait)):
        if getattr(_local, "deadline", None) is not None:
            _local.spent = True
            raise BudgetSpent("reply budget spent waiting for the database")
        raise sqlite3.OperationalError("database is locked (waited for this process's writers)")
    return lock


@contextlib.contextmanager
def read_only(db: Database) -> Iterator[Database]:
    """This thread's read-only connection to `db`'s file, on which SQLite refuses any write
    (`refused_write` recognises the error), so code run speculatively leaves no side effect.
    Meanwhile `open_db` in this thread returns it too: code that asks for its connection
    again cannot write around it. PRAGMA query_only is set once per connection, not toggled:
    setting it expires every prepared statement of the connection."""
    key = db.file_key
    twins = _per_thread("twins")
    twin = twins.get(key)
    if twin is None:
        twin = twins[key] = connect(key)
        twin.conn.execute("PRAGMA query_only = ON")
        twin.read_only = True
    _local.reading = twin
    try:
        yield twin
    finally:
        _local.reading = None


def refused_write(db: Database, exc: BaseException) -> bool:
    """Whether `exc` is a write that the `read_only` connection `db` refused."""
    return (getattr(db, "read_only", False) and isinstance(exc, sqlite3.OperationalError)
            and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_READONLY)


def close_thread_connections() -> None:
    """Close this thread's connections (tests and worker shutdown)."""
    for db in [*getattr(_local, "dbs", {}).values(), *getattr(_local, "twins", {}).values()]:
        db.close()
    _local.dbs, _local.twins = {}, {}


@contextlib.contextmanager
def serialized(db: Database, wait: float = BUSY_TIMEOUT_SECONDS) -> Iterator[Database]:
    """Single-statement writes (each its own transaction) queued on this process's write lock,
    as `immediate()` queues: cheaper than BEGIN … COMMIT around one statement."""
    if db.conn.in_transaction:
        yield db
        return
    lock = _acquire(db, wait)
    try:
        yield db
    finally:
        if lock is not None:
            lock.release()


@contextlib.contextmanager
def immediate(db: Database, wait: float = BUSY_TIMEOUT_SECONDS) -> Iterator[Database]:
    """A write transaction that takes the write lock up front.

    With a deferred BEGIN, a read-then-write can fail half-way with "database is locked";
    BEGIN IMMEDIATE waits (busy timeout) for the lock before reading instead. Threads of
    this process first queue on one Python lock per file: SQLite's busy handler sleeps
    1, 2, 5, 10 … ms between tries, which under a rush costs far more than the writes.
    Nested use joins the outer transaction through a savepoint.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    lock = _acquire(db, wait)
    try:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:  # a failed COMMIT (disk full) leaves it open too
                with contextlib.suppress(sqlite3.Error):
                    db.conn.execute("ROLLBACK")
            raise
    finally:
        if lock is not None:
            lock.release()


def check_writable(db: Database, data_dir: str | Path) -> str | None:
    """None when a file can be made in `data_dir` and a row committed; else what failed.

    A full disk, a read-only folder or database, or a lock held too long all show here."""
    probe = Path(data_dir) / f".healthz-{os.getpid()}-{threading.get_ident()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as exc:
        return f"data folder not writable: {exc.strerror or exc}"
    from storage import kv  # kv imports this module

    try:
        with within(db, time.monotonic() + HEALTH_BUSY_MS / 1000), \
                immediate(db, wait=HEALTH_BUSY_MS / 1000):
            kv.put(db, "healthz", str(time.time()), datetime.now(timezone.utc))
    except sqlite3.Error as exc:
        return f"database not writable: {exc}"
    return None
