"""`serve --processes N`: N processes answer on one port, so the webhook is not held to one
core by Python's GIL. The first process binds the socket, starts the other N-1 on it and
keeps them running; reminders and broadcasts run in the first only.

Each process builds its own app (its engine, its answer cache) before the port accepts
anything. They share the SQLite file: writes queue on storage.db's WriteLock across
processes, and knowledge changes reach every process through the database, as with
separate servers. A worker whose parent is gone (kill -9 included) sees its stdin close
and exits; a worker that dies is started again.
"""
from __future__ import annotations

import io
import logging
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger("chengcheng.workers")
READY_SECONDS = 180  # a worker builds its app (and knowledge engine) within this
RESPAWN_PAUSE_SECONDS = 1.0  # between a worker's death and its replacement
STALE_SECONDS = 5.0  # a process silent this long is left out of the balance
LOOP_SECONDS = 0.05  # waitress's poll timeout in a balanced process (its default is 1 s): a
# process that declined a connection looks again this soon, so a connection both declined
# (each one ahead in turn) waits at most this long
RESPAWN_MAX_SECONDS = 60.0  # a worker that keeps failing is started again at most this often
HEALTHY_SECONDS = 60.0  # a worker that lived this long ends the pauses' doubling
BOT = Path(__file__).resolve().parent / "bot.py"


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound but not yet listening: the port accepts nothing until
    every process is ready (waitress calls listen()). Unlike one process, which listens on
    every address a name resolves to, this binds one: the IPv4 one if the name has one ("*"
    or "": every IPv4 interface), else IPv6, IPv6 only."""
    if sys.platform == "win32":
        raise OSError("--processes 大于 1 只支持 Linux 和 macOS")
    found = socket.getaddrinfo(None if host in ("", "*") else host.strip("[]"), port,
                               socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP,
                               socket.AI_PASSIVE)
    # one address: IPv4 where the name has one ("localhost" may list ::1 first)
    family, kind, proto, _, address = min(found, key=lambda a: a[0] != socket.AF_INET)
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(address)
    return sock


class Balance:
    """Spreads connections evenly over the processes. They all accept on one socket, and
    whichever wakes first takes the connection: WeChat's keep-alive connections then pile
    up on one process (16 of 20 were seen) while another idles. So a process accepts only
    while it has no more open connections than the least loaded live one; each keeps its
    count in a shared page (an unnamed file the first process hands down)."""

    SLOT = struct.Struct("qd")  # open connections, and when counted (CLOCK_MONOTONIC)

    def __init__(self, fd: int, count: int, index: int) -> None:
        self.count, self.index = count, index
        self._page = mmap.mmap(fd, count * self.SLOT.size)

    @classmethod
    def create(cls, count: int) -> "Balance":
        page = tempfile.TemporaryFile()
        page.truncate(count * cls.SLOT.size)
        balance = cls(page.fileno(), count, 0)
        balance.file = page  # kept open: the workers map it by this descriptor
        return balance

    def expect(self, index: int) -> None:
        """Count a worker just told to start as live and idle, so the processes already
        serving leave it its share of the first connections."""
        self.SLOT.pack_into(self._page, index * self.SLOT.size, 0, time.monotonic())

    def gone(self, index: int) -> None:
        """Leave a dead worker out at once (its last count would hold the others back)."""
        self.SLOT.pack_into(self._page, index * self.SLOT.size, 0, 0.0)

    def my_turn(self, mine: int) -> bool:
        """Record this process's `mine` open connections; whether it may accept another."""
        now = time.monotonic()
        self.SLOT.pack_into(self._page, self.index * self.SLOT.size, mine, now)
        fewest = mine
        for i in range(self.count):
            if i != self.index:
                theirs, seen = self.SLOT.unpack_from(self._page, i * self.SLOT.size)
                if now - seen < STALE_SECONDS:
                    fewest = min(fewest, theirs)
        return mine <= fewest


class Workers:
    """The N-1 worker processes of a `serve --processes N` (the caller is the first)."""

    def __init__(self, sock: socket.socket, count: int, threads: int,
                 fake_api: str | None = None) -> None:
        self.sock, self.count, self.threads, self.fake_api = sock, count, threads, fake_api
        self.procs: list[subprocess.Popen] = []
        self.balance = Balance.create(count)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._starting: subprocess.Popen | None = None  # a replacement not yet ready
        self._retired: set[int] = set()  # workers that stopped on purpose (Ctrl-C)
        self._since: list[float] = []  # when each worker was let go
        self._failures: list[int] = []  # replacements of each that died young

    def start(self) -> "Workers":
        """Start every worker and wait until each has built its app; raises RuntimeError
        (after stopping the others) if one fails to start."""
        pending = []
        try:
            for index in range(1, self.count):
                pending.append(self._spawn(index))
            for proc, ready in pending:
                self._wait_ready(proc, ready)
                self.procs.append(proc)
        except BaseException:
            for proc, ready in pending:
                ready.close()
                _end(proc)
            raise
        return self

    def go(self) -> None:
        """Let every worker accept connections (the caller is listening by now), and keep
        them running."""
        for index, proc in enumerate(self.procs, start=1):
            self.balance.expect(index)
            _tell(proc, b"go\n")
        self._since = [time.monotonic()] * len(self.procs)
        self._failures = [0] * len(self.procs)
        threading.Thread(target=self._supervise, name="workers", daemon=True).start()

    def stop(self) -> None:
        """End every worker, the one being started included."""
        self._stopping.set()
        with self._lock:
            procs = [proc for proc in (*self.procs, self._starting) if proc is not None]
        for proc in procs:
            _end(proc)

    def _spawn(self, index: int) -> tuple[subprocess.Popen, "io.BufferedReader"]:
        ready_r, ready_w = os.pipe()
        page = self.balance.file.fileno()
        spec = f"{self.sock.fileno()}:{ready_w}:{page}:{index}:{self.count}"
        args = [sys.executable, str(BOT), "serve", "--threads", str(self.threads),
                "--no-scheduler", "--worker-socket", spec]
        if self.fake_api:
            args += ["--worker-fake-api", self.fake_api]
        try:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                    pass_fds=(self.sock.fileno(), ready_w, page))
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        return proc, os.fdopen(ready_r, "rb")

    def _wait_ready(self, proc: subprocess.Popen, ready) -> None:
        """Blocks until the worker writes "ready" on its pipe (closed here)."""
        with ready:
            line = _read_line(ready, READY_SECONDS)
        if line != b"ready\n":
            _end(proc)
            raise RuntimeError(f"worker process {proc.pid} did not start "
                               f"(exit code {proc.poll()}); see the log above")

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            for i in range(len(self.procs)):
                try:
                    self._look_after(i)
                except Exception:  # the supervisor must outlive any one failure
                    log.exception("while looking after worker process %d", i + 1)

    def _look_after(self, i: int) -> None:
        """Notice worker i's death once; start another, pausing longer (1 s doubling to
        RESPAWN_MAX_SECONDS) while replacements die before HEALTHY_SECONDS."""
        proc = self.procs[i]
        if proc is not None:
            if proc.poll() is None:
                return
            self.balance.gone(i + 1)
            with self._lock:
                self.procs[i] = None
            if proc.returncode in (0, -signal.SIGINT):  # Ctrl-C, or its parent gone: stopping
                log.info("worker process %s stopped", proc.pid)
                self._retired.add(i)
                return
            log.error("worker process %s exited with %s; starting another", proc.pid,
                      proc.returncode)
            if time.monotonic() - self._since[i] >= HEALTHY_SECONDS:
                self._failures[i] = 0
        if i in self._retired:
            return
        pause = RESPAWN_PAUSE_SECONDS * 2 ** min(self._failures[i], 6)
        if self._stopping.wait(min(pause, RESPAWN_MAX_SECONDS)):
            return
        self._failures[i] += 1
        try:
            new, ready = self._spawn(i + 1)
        except OSError as exc:
            log.error("could not start a worker process: %s", exc)
            return
        with self._lock:
            self._starting = new
        try:
            self._wait_ready(new, ready)
        except RuntimeError as exc:
            log.error("%s", exc)
            return
        finally:
            with self._lock:
                self._starting = None
        with self._lock:
            if self._stopping.is_set():
                _end(new)
                return
            self.procs[i] = new
        self._since[i] = time.monotonic()
        self.balance.expect(i + 1)
        _tell(new, b"go\n")


def serve_worker(app, spec: str, threads: int) -> None:
    """A worker's life: say ready, wait for "go", serve on the inherited socket until the
    parent's pipe closes."""
    from bot import make_server

    fd, ready, page, index, count = (int(part) for part in spec.split(":"))
    sock = socket.socket(fileno=fd)
    balance = Balance(page, count, index)
    os.write(ready, b"ready\n")
    os.close(ready)
    if sys.stdin.buffer.readline() != b"go\n":
        return  # the parent is gone, or stopped before the port opened
    server = make_server(app, threads=threads, sockets=[sock], balance=balance)

    def parent_gone() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the parent exited, however it ended
        os._exit(0)

    threading.Thread(target=parent_gone, name="parent-watch", daemon=True).start()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # waitress ends its requests
    server.run()
    os._exit(0)  # Ctrl-C: not through interpreter shutdown, with parent-watch blocked on stdin


def _read_line(pipe, seconds: float) -> bytes:
    """One line from `pipe`, or b"" at EOF or after `seconds`."""
    import select

    poller = select.poll()  # not select(): descriptors past 1024 are fine
    poller.register(pipe, select.POLLIN)
    end = time.monotonic() + seconds
    data = b""
    while not data.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return b""
        chunk = os.read(pipe.fileno(), 64)
        if not chunk:
            return data
        data += chunk
    return data


def _tell(proc: subprocess.Popen, line: bytes) -> None:
    try:
        proc.stdin.write(line)
        proc.stdin.flush()
    except (OSError, ValueError):  # it died (the supervisor starts another), or was stopped
        pass


def _end(proc: subprocess.Popen) -> None:
    """Close its stdin (a worker exits at EOF), then make sure it is gone."""
    try:
        if proc.stdin:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
