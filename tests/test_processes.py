"""`serve --processes N` and what several processes on one SQLite file rely on: the write lock
across processes, and records committed together by one of the threads waiting to write."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from simulator.client import WeChatClient
from storage import connect, immediate, messages, migrate
from storage.db import BudgetSpent, GroupCommit, group_commit

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "processtoken"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _until(condition, seconds: float = 10) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def two_processes(tmp_path):
    """`bot.py serve --processes 2` on a new database; yields (first process, url)."""
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "BOT_"))}
    env.update(BOT_DATA_DIR=str(tmp_path / "data"), WECHAT_TOKEN=TOKEN, BOT_LOG_LEVEL="WARNING",
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "serve", "--port", str(port),
                             "--processes", "2", "--threads", "4", "--no-scheduler"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    banner = ""
    for line in proc.stdout:
        banner += line
        if "listening on" in line:
            break
    assert "2 processes" in banner, banner
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    yield proc, f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=15)
    for pid in _children(proc.pid):
        os.kill(pid, signal.SIGKILL)


def test_two_processes_share_the_port_and_the_connections(two_processes):
    first, url = two_processes
    worker, = _children(first.pid)
    before = {pid: _sockets(pid) for pid in (first.pid, worker)}
    clients = [WeChatClient(TOKEN, url=url, timeout=5) for _ in range(12)]
    for i, client in enumerate(clients):  # each keeps its own keep-alive connection open
        result = client.text(f"oProc{i:03d}", "体检几月")
        assert result.status == 200 and "9月" in result.text
    gained = {pid: _sockets(pid) - before[pid] for pid in before}
    assert all(n >= 4 for n in gained.values()), gained  # 12 connections, neither idle


def test_connections_opened_one_by_one_are_each_answered_at_once(two_processes):
    _, url = two_processes
    clients = [WeChatClient(TOKEN, url=url, timeout=5) for _ in range(12)]
    slowest = 0.0
    for i, client in enumerate(clients):  # each new connection stays open, as WeChat's do
        t0 = time.monotonic()
        assert client.text(f"oOne{i:03d}", "帮助").status == 200
        slowest = max(slowest, time.monotonic() - t0)
    assert slowest < 0.5  # no process declines a connection for a whole poll second


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(two_processes):
    first, url = two_processes
    worker, = _children(first.pid)
    held = WeChatClient(TOKEN, url=url, timeout=5)  # the first process now has a connection
    assert held.text("oHeld", "帮助").status == 200
    os.kill(worker, signal.SIGKILL)
    time.sleep(0.6)  # the supervisor has seen it die
    t0 = time.monotonic()
    assert WeChatClient(TOKEN, url=url, timeout=5).text("oNew", "帮助").status == 200
    assert time.monotonic() - t0 < 1.0  # the dead worker's count no longer holds accepts back
    assert _until(lambda: [p for p in _children(first.pid) if p != worker and _alive(p)], 30)
    new, = [p for p in _children(first.pid) if p != worker]
    before, kept = _sockets(new), []

    def served_by_the_replacement() -> bool:  # once it has built its app and been let go
        kept.append(WeChatClient(TOKEN, url=url, timeout=5))
        assert kept[-1].text(f"oAfter{len(kept)}", "帮助").status == 200
        return _sockets(new) > before

    assert _until(served_by_the_replacement, 30)


def test_a_worker_stopped_with_ctrl_c_is_not_started_again(two_processes):
    first, url = two_processes
    worker, = _children(first.pid)
    os.kill(worker, signal.SIGINT)
    assert _until(lambda: not _alive(worker), 10)
    time.sleep(2.5)  # past the supervisor's look and its first pause
    assert [p for p in _children(first.pid) if _alive(p)] == []
    assert WeChatClient(TOKEN, url=url, timeout=5).text("oStill", "帮助").status == 200


DIES_YOUNG = """
import os, sys
os.write(int(sys.argv[1]), b"ready\\n")
sys.stdin.buffer.readline()  # "go"
sys.exit(1)  # and dies at once, as a worker killed for memory would
"""


def test_a_worker_that_keeps_dying_is_started_again_less_and_less_often(monkeypatch):
    import workers

    monkeypatch.setattr(workers, "RESPAWN_PAUSE_SECONDS", 0.2)
    started = []

    class DyingYoung(workers.Workers):
        def _spawn(self, index):
            ready_r, ready_w = os.pipe()
            proc = subprocess.Popen([sys.executable, "-c", DIES_YOUNG, str(ready_w)],
                                    stdin=subprocess.PIPE, pass_fds=(ready_w,))
            os.close(ready_w)
            started.append(time.monotonic())
            return proc, os.fdopen(ready_r, "rb")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        pool = DyingYoung(sock, 2, 1).start()
        pool.go()
        try:
            assert _until(lambda: len(started) >= 5, 20)
        finally:
            pool.stop()
    gaps = [b - a for a, b in zip(started[1:], started[2:])]  # pauses 0.4, 0.8, 1.6 s + start-up
    assert all(later > earlier for earlier, later in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] - gaps[0] > 0.8, gaps  # without the doubling they would be about equal


def test_workers_leave_when_the_first_process_is_killed(two_processes):
    first, _ = two_processes
    worker, = _children(first.pid)
    first.kill()
    first.wait()
    assert _until(lambda: not _alive(worker), 10)


def test_a_console_entry_reaches_every_process(two_processes, tmp_path):
    from console.auth import hash_password
    from storage import admins
    from tests.test_knowledge_lifecycle import NEW_ANSWER, NEW_QUESTION, PASSWORD, ConsoleSession

    _, url = two_processes
    db = connect(tmp_path / "data" / "bot.db")
    admins.create(db, "管理员甲", hash_password(PASSWORD), "admin", datetime.now(timezone.utc))
    members = [WeChatClient(TOKEN, url=url, timeout=5) for _ in range(6)]  # 3 per process
    assert all(m.text(f"oYe{i}", NEW_QUESTION).text.startswith("没有找到")
               for i, m in enumerate(members))
    saved = ConsoleSession(url, "管理员甲").post("/admin/knowledge/entries/new", {
        "id": "org-yepao", "question": NEW_QUESTION, "answer": NEW_ANSWER, "source": "union2025"})
    assert saved.status_code == 302
    asked = iter(range(10**6))
    assert _until(lambda: all(NEW_ANSWER in (m.text(f"oYe{next(asked)}", NEW_QUESTION).text or "")
                              for m in members), 15)


# --- the write lock across processes ------------------------------------------------------

HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from storage import connect, immediate
db = connect(sys.argv[2])
with immediate(db):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def test_another_processs_writer_is_waited_for_and_followed_at_once(tmp_path):
    path = tmp_path / "bot.db"
    db = connect(path)
    migrate(db)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), str(path), "0.6"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    assert not db.write_lock.acquire(timeout=0.2)  # given up at its own timeout
    assert 0.15 < time.monotonic() - t0 < 0.5
    assert db.write_lock.acquire(timeout=5)
    waited = time.monotonic() - t0
    holder.wait(timeout=5)
    db.write_lock.release()
    assert 0.5 < waited < 1.0  # right after the other process let go, not a busy-handler nap later


def test_the_write_lock_is_reentrant_within_a_thread(tmp_path):
    db = connect(tmp_path / "bot.db")
    with db.write_lock:
        with db.write_lock:
            pass
        other = connect(tmp_path / "bot.db")
        got = []
        thread = threading.Thread(target=lambda: got.append(other.write_lock.acquire(timeout=0.1)))
        thread.start()
        thread.join()
        assert got == [False]  # still held by the outer block
    assert db.write_lock.acquire(timeout=0.1)
    db.write_lock.release()


# --- records committed together -------------------------------------------------------------

NOW = datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc)


def _record(db, key: str, *, nonce: str | None = None, deadline: float | None = None):
    return messages.record(
        db, dedupe_key=key, msg_id=key, openid="oGroup" + key[-3:], type="text", event=None,
        content="体检几月", reply="9月", handler="knowledge", topic=None, answered=True,
        latency_ms=1, created=NOW, now=NOW, deadline=deadline or time.monotonic() + 4,
        signed=("1700000000", nonce or key), touch=True)


def test_records_from_many_threads_are_each_committed_and_share_transactions(tmp_path):
    path = tmp_path / "bot.db"
    migrate(connect(path))
    commits = []
    keep = connect(path)  # the write lock, which keeps the group commit, lives with it
    batch = group_commit(keep, messages._record_all)
    write = batch.write
    batch.write = lambda db, items: commits.append(len(items)) or write(db, items)
    start = threading.Barrier(24)
    outcomes = {}

    def member(i: int) -> None:
        db = connect(path)
        start.wait()
        outcomes[i] = _record(db, f"m{i:03d}")

    try:
        threads = [threading.Thread(target=member, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        batch.write = write
    assert outcomes == {i: True for i in range(24)}
    db = connect(path)
    assert db.execute("SELECT count(*) FROM messages WHERE status = 'done'").fetchone()[0] == 24
    assert db.execute("SELECT count(*) FROM members").fetchone()[0] == 24  # last_seen of each
    assert sum(commits) == 24 and len(commits) < 24  # some transaction carried several


def test_a_retry_and_a_replayed_url_in_one_batch_get_their_own_outcomes(tmp_path):
    db = connect(tmp_path / "bot.db")
    migrate(db)
    assert _record(db, "m001") is True
    items = [(row, True) for row in (
        _row("m001", "other-nonce"),  # WeChat's retry of m001, with a new URL
        _row("m002", "m001"),  # a new message on m001's URL: replayed
        _row("m003", "m003"))]
    with immediate(db):
        outcomes = messages._record_all(db, items)
    assert outcomes[0] is False
    assert isinstance(outcomes[1], messages.ReplayedNonce)
    assert outcomes[2] is True
    keys = {r[0] for r in db.execute("SELECT dedupe_key FROM messages")}
    assert keys == {"m001", "m003"}


def _row(key: str, nonce: str) -> messages._Done:
    return messages._Done(key, key, "oGroup" + key[-3:], "text", None, "体检几月", "9月",
                          "knowledge", None, 1, 1, "2026-11-21T10:00:00Z",
                          "2026-11-21T10:00:00Z", None, time.time(), "1700000000", nonce)


def test_a_record_still_queued_at_its_deadline_is_not_written(tmp_path):
    path = tmp_path / "bot.db"
    db = connect(path)
    migrate(db)
    batch = group_commit(db, messages._record_all)
    with db.write_lock:  # another writer holds the lock
        leader = threading.Thread(target=lambda: _record(connect(path), "m001"))
        leader.start()
        assert _until(lambda: batch._leading, 5)  # m001 leads, waiting for the lock
        with pytest.raises(BudgetSpent):
            _record(connect(path), "m002", deadline=time.monotonic() + 0.2)
    leader.join(5)
    keys = {r[0] for r in db.execute("SELECT dedupe_key FROM messages")}
    assert keys == {"m001"}


def test_a_leader_out_of_time_leaves_the_others_their_own(tmp_path):
    path = tmp_path / "bot.db"
    db = connect(path)
    migrate(db)
    batch = group_commit(db, messages._record_all)
    outcomes = {}

    def member(key: str, budget: float) -> None:
        try:
            outcomes[key] = _record(connect(path), key, deadline=time.monotonic() + budget)
        except BudgetSpent:
            outcomes[key] = "spent"

    with db.write_lock:
        short = threading.Thread(target=member, args=("m001", 0.3))
        short.start()
        assert _until(lambda: batch._leading, 5)
        long = threading.Thread(target=member, args=("m002", 5.0))
        long.start()
        assert _until(lambda: len(batch._queue) == 1, 5)  # queued behind the short one
        time.sleep(0.6)  # past the short one's deadline, lock still held
    short.join(5)
    long.join(5)
    assert outcomes == {"m001": "spent", "m002": True}
    keys = {r[0] for r in db.execute("SELECT dedupe_key FROM messages")}
    assert keys == {"m002"}


def test_a_batch_whose_leader_runs_out_of_time_goes_back_to_the_queue(tmp_path):
    """The leader's own deadline passes before it has the lock: the rest of its batch keeps
    theirs, back at the head of the queue with the lead handed on (driven step by step)."""
    from storage.db import _Slot

    db = connect(tmp_path / "bot.db")
    migrate(db)
    batch = GroupCommit(lambda db, items: [True] * len(items))
    leader, follower, later = _Slot("L"), _Slot("F"), _Slot("X")
    batch._queue, batch._leading = [leader, follower], True
    holding, done = threading.Event(), threading.Event()

    def elsewhere() -> None:  # another thread of this process holds the write lock
        with connect(tmp_path / "bot.db").write_lock:
            holding.set()
            done.wait(5)

    threading.Thread(target=elsewhere).start()
    holding.wait(5)
    try:
        t0 = time.monotonic()
        batch._queue.append(later)  # queued while the leader waits
        batch._lead(db, time.monotonic() + 0.2, leader)
        assert time.monotonic() - t0 < 1.0
    finally:
        done.set()
    assert isinstance(leader.outcome, BudgetSpent)
    assert batch._queue == [follower, later] and follower.lead and follower.ready.is_set()
    assert not later.ready.is_set() and batch._leading


def test_a_failed_transaction_fails_every_record_in_it(tmp_path):
    db = connect(tmp_path / "bot.db")
    migrate(db)

    def broken(db, items):
        db.conn.execute("INSERT INTO no_such_table VALUES (1)")

    batch = GroupCommit(broken)
    with pytest.raises(Exception, match="no_such_table"):
        batch.submit(db, "item", time.monotonic() + 1)
    assert not batch._leading and not batch._queue  # the next writer leads again
