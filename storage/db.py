"""Connections and transactions: WAL, a busy timeout, one connection per thread, BEGIN IMMEDIATE,
and one write lock per database file, queued on by this process's threads and, through a lock
file beside the database, by every process serving it."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlite_utils import Database

try:
    import fcntl
except ImportError:  # Windows: one process per database there (no `serve --processes`)
    fcntl = None

BUSY_TIMEOUT_SECONDS = 15
HEALTH_BUSY_MS = 1000  # /healthz waits this long for the write lock, not the full busy timeout
_local = threading.local()
_resolved: dict[str, str] = {}
LOCK_POLL_FIRST, LOCK_POLL_MAX = 0.00005, 0.001  # seconds between tries for another process's lock
# one per database file, shared by its connections; gone (its file closed) with the last of them
_write_locks: "weakref.WeakValueDictionary[str, WriteLock]" = weakref.WeakValueDictionary()
_keys_lock = threading.Lock()


class WriteLock:
    """One writer at a time per database file, across threads and processes.

    Threads queue on a Python lock; processes on flock(2) of `<database>-writer`, tried
    every 50 µs to 1 ms. SQLite alone would make the other processes' writers sleep 1, 2,
    5, 10 … ms in its busy handler, which with several `serve` processes under load costs
    far more than the writes. SQLite still guards the file: a writer that skips this lock
    (another tool) is waited for by the busy timeout as before."""

    def __init__(self, database: str) -> None:
        self.path = database + "-writer"
        self._threads = threading.RLock()
        self._depth = 0  # this process's nesting: the file lock is held while > 0
        self._fd: int | None = None
        self.group_commits: dict[Callable, GroupCommit] = {}  # see group_commit()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        end = None if timeout < 0 else time.monotonic() + timeout
        if not self._threads.acquire(blocking, timeout):
            return False
        try:
            got = self._depth > 0 or self._lock_file(blocking, end)
        except BaseException:
            self._threads.release()
            raise
        if not got:
            self._threads.release()
            return False
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def __enter__(self) -> "WriteLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _lock_file(self, blocking: bool, end: float | None) -> bool:
        if fcntl is None:
            return True
        if self._fd is None:
            try:  # read-only and readable by all: whoever made it, every user can lock it
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:  # a missing or unreadable folder: a failed write, as SQLite's
                raise sqlite3.OperationalError(
                    f"cannot open the write lock {self.path}: {exc.strerror or exc}") from exc
            weakref.finalize(self, os.close, self._fd)
        pause = LOCK_POLL_FIRST
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not blocking:
                    return False
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                pause = min(pause, left)
            time.sleep(pause)
            pause = min(pause * 2, LOCK_POLL_MAX)


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
        db.write_lock = _write_locks.get(db.file_key)
        if db.write_lock is None:
            db.write_lock = _write_locks[db.file_key] = WriteLock(db.file_key)
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


class GroupCommit:
    """Rows that many request threads write at once, committed in one transaction.

    Each thread queues its row; the first becomes the leader, takes the write lock and
    writes every row queued by then, and hands the lead to the next queued row's thread.
    Every thread returns only once its own row is committed (or failed): a reply is never
    sent before its record. Under load one transaction carries many messages, so the write
    lock (shared with the other processes) is taken far less often.

    `write(db, items)` runs inside the transaction and returns one outcome per item: a
    value, or an exception that `submit` raises in that item's thread."""

    MAX_BATCH = 64

    def __init__(self, write: Callable[[Database, list], list]) -> None:
        self.write = write
        self._mutex = threading.Lock()
        self._queue: list[_Slot] = []
        self._leading = False

    def submit(self, db: Database, item, deadline: float):
        """Write `item` (with whatever else is queued); its outcome. Raises BudgetSpent when
        the write lock cannot be had by `deadline` (time.monotonic()), nothing written."""
        if db.conn.in_transaction:  # immediate() would only make a savepoint: not committed
            raise RuntimeError("GroupCommit.submit inside a transaction")
        slot = _Slot(item)
        with self._mutex:
            self._queue.append(slot)
            slot.lead = not self._leading
            self._leading = True
        if not slot.lead and not slot.ready.wait(max(0.0, deadline - time.monotonic())):
            with self._mutex:
                if not slot.lead and slot in self._queue:
                    self._queue.remove(slot)
                    _local.spent = True
                    raise BudgetSpent("reply budget spent waiting for the database")
            slot.ready.wait()  # being written now, or just handed the lead
        if slot.lead:
            self._lead(db, deadline, slot)
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome

    def _lead(self, db: Database, deadline: float, mine: "_Slot") -> None:
        """Write the queue's head; if this thread's own deadline passes before the write
        lock is had, only its own item fails: the others go back, with their own deadlines."""
        with self._mutex:
            batch, self._queue = self._queue[:self.MAX_BATCH], self._queue[self.MAX_BATCH:]
        try:
            with within(db, deadline), immediate(db):
                outcomes = self.write(db, [slot.item for slot in batch])
                if len(outcomes) != len(batch):  # rolled back: each item must get its own
                    raise RuntimeError(f"{self.write.__name__} gave {len(outcomes)} outcomes "
                                       f"for {len(batch)} items")
        except BudgetSpent as exc:
            with self._mutex:
                self._queue[:0] = [slot for slot in batch if slot is not mine]
            batch, outcomes = [mine], [exc]
        except BaseException as exc:
            outcomes = [exc] * len(batch)
        with self._mutex:
            if self._queue:
                following = self._queue[0]
                following.lead = True
                following.ready.set()
            else:
                self._leading = False
        for slot, outcome in zip(batch, outcomes):
            slot.outcome = outcome
            if slot is not mine:
                slot.ready.set()


def group_commit(db: Database, write: Callable[[Database, list], list]) -> GroupCommit:
    """The GroupCommit of `write` for `db`'s file in this process (kept with its write lock)."""
    batches = db.write_lock.group_commits
    batch = batches.get(write)
    if batch is None:
        with _keys_lock:
            batch = batches.setdefault(write, GroupCommit(write))
    return batch


class _Slot:
    __slots__ = ("item", "ready", "lead", "outcome")

    def __init__(self, item) -> None:
        self.item, self.ready, self.lead, self.outcome = item, threading.Event(), False, None


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
