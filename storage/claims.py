"""Who holds a claim on a row, and whether that holder is dead (so the row may be taken over).

A holder is `host:pid-namespace:boot-id:pid:process-start:run`. A pid alone is not enough: after
a reboot or once the pid is reused, another process has it; boot id and start time tell them apart.
"""
from __future__ import annotations

import os
import socket
import threading

_live: set[str] = set()  # this process's runs that are still going
_lock = threading.Lock()


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' when unknown."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name in (...) may hold spaces


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return ""


def _process() -> str:
    pid = os.getpid()
    return ":".join([socket.gethostname(), _pid_namespace(),
                     _read("/proc/sys/kernel/random/boot_id"), str(pid), _start_time(pid)])


_PROCESS = _process()
_PROCESS_PID = os.getpid()


def this_process() -> str:
    """This process's identity (recomputed after a fork)."""
    global _PROCESS, _PROCESS_PID
    if os.getpid() != _PROCESS_PID:
        _PROCESS, _PROCESS_PID = _process(), os.getpid()
    return _PROCESS


def begin() -> str:
    """A new holder for one run in this process, live until `end()`."""
    holder = f"{this_process()}:{os.urandom(6).hex()}"  # 12 hex digits, as uuid4's were
    with _lock:
        _live.add(holder)
    return holder


def end(holder: str) -> None:
    with _lock:
        _live.discard(holder)


def judge(holder: str | None) -> bool | None:
    """True: the holder is dead. False: alive. None: cannot tell (another host or namespace,
    no /proc, or a holder written by an older version); the caller then goes by age."""
    if not holder:
        return None
    process, _, _run = holder.rpartition(":")
    if process == this_process():
        with _lock:
            return holder not in _live
    parts = process.split(":")
    if len(parts) != 5:
        return None
    host, namespace, boot, pid, started = parts
    mine = this_process().split(":")
    if host != mine[0] or not namespace or namespace != mine[1]:
        return None
    if boot and mine[2] and boot != mine[2]:
        return True  # the machine has rebooted since
    try:
        pid_number = int(pid)
    except ValueError:
        return None
    now_started = _start_time(pid_number)
    if started and mine[4]:  # /proc works here
        return now_started != started  # gone, or the pid now belongs to another process
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
