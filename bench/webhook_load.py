"""Webhook load from a fresh start and warm: the bot beside a bare Flask app on waitress that only
checks the signature, in the same run, driven the same way.

    .venv/bin/python bench/webhook_load.py [--connections 20] [--seconds 10] [--members 1000]
                                           [--threads 8] [--processes N] [--no-cache-row]

Each server is a new process on a new temporary database. The load starts the moment its port
accepts a connection ("fresh": the first --seconds after start-up), then runs again after a
short pause ("warm"). 1,000 members ask ten common questions in turn, over --connections
keep-alive connections (WeChat's servers use a few), each request signed with a new nonce and a
new MsgId. "p99 1st s" is the p99 of the requests sent in the phase's first second. A request
unanswered after 5 s (WeChat's limit) is a timeout; "deferred" counts "正在处理" replies (the
bot's answer was late and will be pushed). The bot runs as `serve --processes N` (default: the
CPU count); the bare app as one process, as the issue defines it. Further rows, warm: the bot
as one process, the bare app as N processes, and the bot with BOT_ANSWER_CACHE=0 (what the
answer cache is worth).

--rounds R then keeps one bare app and one bot running side by side, both warm, and drives
them in turn R times (--seconds each): this machine's speed drifts by a third from one minute
to the next, so a ratio from alternating rounds is steadier than one from rows a minute apart.
It prints each round's ratio and the median.

The driver is asyncio on raw HTTP/1.1 in this process (nothing to install; wrk is not needed),
so it takes CPU too: compare rows of the same run, not runs on different machines.
A benchmark, not a test: it prints figures and asserts nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.client import text_xml  # noqa: E402

TOKEN = "benchtoken"
WECHAT_TIMEOUT = 5.0  # seconds WeChat waits for a passive reply
PAUSE_BEFORE_WARM = 1.0
DEFERRED = "正在处理".encode()
QUESTIONS = ["体检几月", "青春志愿服务谁牵头", "法治专研谁牵头", "集体生日会什么时候办", "疗休养什么时候",
             "宝山在哪个组", "奉贤牵头的是哪个共同体", "工会有哪些福利", "送温暖什么时候", "进博会保障谁牵头"]
BARE_XML = ("<xml><ToUserName><![CDATA[u]]></ToUserName><FromUserName><![CDATA[a]]></FromUserName>"
            "<CreateTime>0</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[ok]]></Content></xml>")


def bare_app():
    """The baseline: Flask on waitress, checks the signature, replies fixed XML."""
    from flask import Flask, abort, request

    from wechat import crypto

    app = Flask("bare")

    @app.post("/wechat")
    def wechat():
        args = request.args
        if not crypto.verify(args.get("signature", ""), TOKEN, args.get("timestamp", ""),
                             args.get("nonce", "")):
            abort(403)
        request.get_data()
        return BARE_XML, 200, {"Content-Type": "application/xml"}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(port: int, limit: float = 120, procs: list | None = None) -> float:
    """Seconds until the port accepts a connection (polled every 5 ms)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if any(proc.poll() is not None for proc in procs or []):
            raise RuntimeError(f"the server on port {port} exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return time.monotonic() - started
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"nothing accepted on port {port} within {limit:.0f} s")


# --- the load driver ------------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    first_second: list[float] = field(default_factory=list)  # sent within 1 s of the start
    started: float = 0.0
    timeouts: int = 0
    deferred: int = 0
    errors: int = 0

    def row(self, server: str, up: str) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return f"{server:34} {self.name:5} {'—':>7} (no replies) timeouts={self.timeouts}"
        first = sorted(self.first_second)
        first_p99 = f"{first[min(len(first) - 1, int(0.99 * len(first)))]:.1f}" if first else "—"
        return (f"{server:34} {self.name:5} {len(lat):>7} {len(lat) / self.seconds:>7.0f} "
                f"{statistics.median(lat):>7.1f} {_p99(lat):>7.1f} {first_p99:>9} {lat[-1]:>7.1f} "
                f"{self.timeouts:>8} {self.deferred:>8} {self.errors:>6} {up:>7}")


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


HEADER = (f"{'server':34} {'phase':5} {'msgs':>7} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'p99 1st s':>9} {'max ms':>7} {'timeouts':>8} {'deferred':>8} {'errors':>6} "
          f"{'up in':>7}")


def signed_path() -> str:
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return "/wechat?" + urlencode({"signature": signature, "timestamp": timestamp,
                                   "nonce": nonce, "openid": "bench"})


def request_bytes(port: int, member: int, question: str, msg_id: int) -> bytes:
    body = text_xml(f"oBench{member:06d}{'x' * 16}"[:28], question, msg_id=msg_id).encode()
    head = (f"POST {signed_path()} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() == "close"


async def _connection(port: int, phase: Phase, deadline: float, asks, question: str | None):
    reader = writer = None
    while time.monotonic() < deadline:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                phase.errors += 1
                await asyncio.sleep(0.01)
                continue
        member, n, msg_id = next(asks)
        data = request_bytes(port, member, question or QUESTIONS[n % len(QUESTIONS)], msg_id)
        started = time.perf_counter()
        try:
            writer.write(data)
            status, body, close = await asyncio.wait_for(_read_response(reader), WECHAT_TIMEOUT)
        except asyncio.TimeoutError:
            phase.timeouts += 1
            writer.close()
            writer = None
            continue
        except (OSError, asyncio.IncompleteReadError, ValueError):
            phase.errors += 1
            writer.close()
            writer = None
            continue
        phase.latencies.append((time.perf_counter() - started) * 1000)
        if started - phase.started < 1.0:
            phase.first_second.append(phase.latencies[-1])
        if status != 200:
            phase.errors += 1
        elif DEFERRED in body:
            phase.deferred += 1
        if close:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def drive(port: int, name: str, seconds: float, connections: int, members: int,
          question: str | None, first_id: int) -> Phase:
    """`connections` keep-alive connections for `seconds`; member k asks question k+i in turn."""
    phase = Phase(name, seconds)
    asks = ((k % members, k % members + k // members, first_id + k) for k in itertools.count())

    async def run():
        deadline = time.monotonic() + seconds
        phase.started = time.perf_counter()
        await asyncio.gather(*(_connection(port, phase, deadline, asks, question)
                               for _ in range(connections)))

    asyncio.run(run())
    return phase


# --- the servers --------------------------------------------------------------------------

def start(kind: str, port: int, threads: int, data_dir: str, env_extra: dict,
          processes: int = 1) -> list[subprocess.Popen]:
    """The bot: one `bot.py serve --processes N`. The bare app: N processes of its own, each
    on its own SO_REUSEPORT socket (the kernel spreads connections among them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "BOT_"))}
    env.update(WECHAT_TOKEN=TOKEN, BOT_DATA_DIR=data_dir, BOT_LOG_LEVEL="WARNING",
               WECHAT_APPID="wxbench", WECHAT_SECRET="bench", WECHAT_API_BASE="http://127.0.0.1:9",
               **env_extra)
    if kind == "bot":
        runs = [[sys.executable, str(ROOT / "bot.py"), "serve", "--port", str(port), "--threads",
                 str(threads), "--processes", str(processes), "--no-scheduler"]]
    else:
        runs = [[sys.executable, __file__, "--serve-bare", str(port), "--threads", str(threads)]
                ] * processes
    return [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for args in runs]


def measure(kind: str, label: str, args, env_extra: dict | None = None,
            fresh: bool = True, processes: int = 1) -> list[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        procs = start(kind, port, args.threads, tmp, env_extra or {}, processes)
        try:
            up = wait_accepting(port, procs=procs)
            if kind == "bare" and processes > 1:
                time.sleep(1.0)  # each bare process takes its own socket (SO_REUSEPORT)
            rows = []
            first_id = int(time.time()) * 10**6
            if fresh:
                phase = drive(port, "fresh", args.seconds, args.connections, args.members,
                              args.question, first_id)
                rows.append(phase.row(label, f"{up:.2f}s"))
            else:
                drive(port, "-", 2, 2, args.members, args.question, first_id)  # a warm-up
            time.sleep(PAUSE_BEFORE_WARM)
            phase = drive(port, "warm", args.seconds, args.connections, args.members,
                          args.question, first_id + 10**6)
            rows.append(phase.row(label, "" if fresh else f"{up:.2f}s"))
            return rows
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=15)


def sample_reply(args) -> str:
    """What the bot answers to the first question, to show the load is real questions."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "BOT_"))}
    with tempfile.TemporaryDirectory() as tmp:
        env.update(BOT_DATA_DIR=tmp, WECHAT_TOKEN=TOKEN)
        done = subprocess.run([sys.executable, str(ROOT / "bot.py"), "ask",
                               args.question or QUESTIONS[0]], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    return done.stdout.strip().replace("\n", " ")[:60]


def serve_bare(port: int, threads: int) -> None:
    import socket as sockets

    from waitress import serve

    sock = sockets.socket()
    sock.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEADDR, 1)
    sock.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    serve(bare_app(), sockets=[sock], threads=threads, _quiet=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", "--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8,
                    help="waitress threads per process, both servers (serve's default)")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                    help="the bot's `serve --processes` (default: the CPU count)")
    ap.add_argument("--question", default=None, help="ask only this (default: ten common questions)")
    ap.add_argument("--no-cache-row", action="store_true",
                    help="skip the row with the answer cache off")
    ap.add_argument("--no-extra-rows", action="store_true",
                    help="only the issue's rows: the bare app and the bot, fresh and warm")
    ap.add_argument("--rounds", type=int, default=0,
                    help="then R alternating warm rounds of both servers, and the median ratio")
    ap.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.threads)
        return
    print(f"bot's reply to {args.question or QUESTIONS[0]!r}: {sample_reply(args)}…")
    print(f"{args.members} members, {'1 question' if args.question else '10 questions'}, "
          f"{args.connections} connections, {args.seconds:.0f} s per phase, waitress "
          f"{args.threads} threads per process, loopback, {os.cpu_count()} CPUs; 'up in': "
          f"process start → port accepts\n")
    print(HEADER)
    many = args.processes > 1
    rows = [("bare", "bare Flask+waitress (signature)", {}, True, 1),
            ("bot", f"bot /wechat, {args.processes} process{'es' if many else ''}", {}, True,
             args.processes)]
    if not args.no_extra_rows and many:
        rows += [("bot", "bot /wechat, 1 process", {}, False, 1),
                 ("bare", f"bare, {args.processes} processes", {}, False, args.processes)]
    if not args.no_cache_row and not args.no_extra_rows:
        rows.append(("bot", "bot, BOT_ANSWER_CACHE=0", {"BOT_ANSWER_CACHE": "0"}, False,
                     args.processes))
    for kind, label, env, fresh, processes in rows:
        for row in measure(kind, label, args, env, fresh, processes):
            print(row, flush=True)
    if args.rounds:
        alternate(args)


def alternate(args) -> None:
    """Both servers up at once, warm; driven in turn, `args.rounds` times."""
    ports = {"bare": free_port(), "bot": free_port()}
    with tempfile.TemporaryDirectory() as bare_dir, tempfile.TemporaryDirectory() as bot_dir:
        procs = (start("bare", ports["bare"], args.threads, bare_dir, {}, 1)
                 + start("bot", ports["bot"], args.threads, bot_dir, {}, args.processes))
        try:
            first_id = int(time.time()) * 10**6
            for kind, port in ports.items():
                wait_accepting(port, procs=procs)
                drive(port, "-", 3, args.connections, args.members, args.question, first_id)
                first_id += 10**6
            print(f"\nalternating warm rounds, {args.seconds:.0f} s each (bot: {args.processes} "
                  f"process{'es' if args.processes > 1 else ''}; bare: 1)")
            print(HEADER)
            ratios, p99s = [], []
            for r in range(args.rounds):
                phases = {}
                for kind, port in ports.items():
                    phases[kind] = drive(port, f"r{r + 1}", args.seconds, args.connections,
                                         args.members, args.question, first_id)
                    first_id += 10**6
                    print(phases[kind].row(f"{kind} (round {r + 1})", ""), flush=True)
                bare, bot = (len(phases[k].latencies) for k in ("bare", "bot"))
                ratios.append(bot / bare if bare else 0.0)
                p99s.append(_p99(sorted(phases["bot"].latencies)))
            print(f"bot/bare msg/s by round: {', '.join(f'{x:.2f}' for x in ratios)}; median "
                  f"{statistics.median(ratios):.2f}. bot p99 by round (ms): "
                  f"{', '.join(f'{x:.0f}' for x in p99s)}; median {statistics.median(p99s):.0f}")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=15)


if __name__ == "__main__":
    main()
