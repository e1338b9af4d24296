"""Threads of one process writing to one SQLite file: queued on storage.db's per-file write
lock, beside the same writes left to SQLite's busy handler (which sleeps 1, 2, 5 … 100 ms).

    .venv/bin/python bench/write_lock.py [--threads 16] [--writes 150]

Each thread does what a message does to the database: a short transaction (read, insert,
update) and a single-statement write, with a little CPU between. Prints total time and the
latency of each round, per mode. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from storage.db import connect, immediate, serialized  # noqa: E402


def run(path: Path, threads: int, writes: int, locked: bool) -> str:
    latencies: list[float] = []
    guard = threading.Lock()

    def worker() -> None:
        db = connect(path)
        if not locked:
            db.write_lock = None  # leave waiting to SQLite's busy handler
        mine = []
        for i in range(writes):
            t0 = time.perf_counter()
            with immediate(db):
                db.conn.execute("INSERT INTO t(v) VALUES (?)", [str(i)])
                db.conn.execute("SELECT count(*) FROM t WHERE id > ?", [i]).fetchone()
                db.conn.execute("UPDATE t SET v = 'x' WHERE id = ?", [i])
            with serialized(db):
                db.conn.execute("INSERT INTO t(v) VALUES ('y')")
            mine.append((time.perf_counter() - t0) * 1000)
            sum(range(3000))  # a handler's CPU between writes
        db.close()
        with guard:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    latencies.sort()
    return (f"total {time.perf_counter() - started:6.2f} s  "
            f"p50 {statistics.median(latencies):6.2f} ms  p99 {latencies[int(len(latencies) * 0.99)]:7.1f} ms  max {latencies[-1]:7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--writes", type=int, default=150)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for locked in (False, True):
            path = Path(tmp) / f"{'locked' if locked else 'busy'}.db"
            db = connect(path)
            db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            db.close()
            label = "per-file write lock" if locked else "SQLite busy handler (baseline)"
            print(f"{label:32} {run(path, args.threads, args.writes, locked)}")


if __name__ == "__main__":
    main()
