"""Many members sign up for one small activity at the same moment, through the real webhook.

    .venv/bin/python bench/signup_load.py [--members 200] [--capacity 30] [--processes 3]
                                          [--serve-processes K] [--connections 20]
                                          [--unguarded] [--no-baseline]

--processes 0 runs one waitress server in this process (--unguarded switches the sign-up
guard off there: the negative control, which must oversell); N > 0 starts N real
`bot.py serve` processes on the same SQLite file (each `serve --processes K` with
--serve-processes: `--processes 1 --serve-processes 2` is one port served by two processes). Prints requests, confirmed, waitlisted,
errors and reply times, and first the same burst against the bare Flask app of
bench/webhook_load.py served the same way (the baseline).

The burst is sent the way WeChat sends it: every message is queued at one instant and goes
out over --connections keep-alive connections (WeChat's servers use a limited pool, one
request per message), from a separate driver process (asyncio, raw HTTP/1.1), so the
driver's own CPU and GIL are not the server's. "p99" is the reply time from sending a
request to its whole response; "all in" is from the burst's start to its last reply (the
time the last member waits, queueing at WeChat included); "driver-cpu" is the CPU the
driver's process spent sending and reading. --connections 0 is the older
burst: one thread and one new connection per member, all released at once by a barrier,
in this process; tests/test_signup_concurrency.py drives that one (`hammer`), the harshest
shape for the sign-up guard.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WAITLIST = re.compile(r"候补第(\d+)位")
FAKE_NOW = "2026-11-21 10:00"
TEXT = "报名 进博会青年突击队集训"


@dataclass
class Outcome:
    openid: str
    status: int | None
    text: str | None
    seconds: float
    error: str | None = None

    @property
    def confirmed(self) -> bool:
        return self.status == 200 and bool(self.text) and "报名成功" in self.text

    @property
    def position(self) -> int | None:
        m = WAITLIST.search(self.text or "") if self.status == 200 else None
        return int(m.group(1)) if m else None


@dataclass
class Figures:
    outcomes: list[Outcome] = field(default_factory=list)
    span: float | None = None  # burst start to last reply
    driver_cpu: float | None = None  # CPU seconds the driver's process spent on the burst

    @property
    def requests(self) -> int:
        return len(self.outcomes)

    @property
    def confirmed(self) -> int:
        return sum(o.confirmed for o in self.outcomes)

    @property
    def waitlisted(self) -> int:
        return sum(o.position is not None for o in self.outcomes)

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.confirmed and o.position is None]

    def percentile(self, q: float) -> float:
        times = sorted(o.seconds for o in self.outcomes)
        if not times:
            return 0.0
        return times[min(len(times) - 1, max(0, int(round(q / 100 * len(times))) - 1))]

    def line(self, label: str = "") -> str:
        times = [o.seconds for o in self.outcomes] or [0.0]
        return (f"{label}requests={self.requests} confirmed={self.confirmed} "
                f"waitlisted={self.waitlisted} errors={len(self.errors)} "
                f"p50={statistics.median(times) * 1000:.0f}ms "
                f"p99={self.percentile(99) * 1000:.0f}ms "
                f"max={max(times) * 1000:.0f}ms" + self.all_in())

    def all_in(self) -> str:
        text = f" all-in={self.span * 1000:.0f}ms" if self.span is not None else ""
        if self.driver_cpu is not None:
            text += f" driver-cpu={self.driver_cpu * 1000:.0f}ms"
        return text


def hammer(urls: list[str], token: str, openids: list[str], text: str,
           timeout: float = 30) -> Figures:
    """Every openid sends `text` once, all released together (one thread each), spread
    round-robin over `urls`. Each thread signs and posts like WeChat (WeChatClient)."""
    from simulator.client import WeChatClient

    outcomes: list[Outcome] = []
    lock = threading.Lock()
    gate = threading.Barrier(len(openids))

    def one(n: int, openid: str) -> None:
        client = WeChatClient(token, url=urls[n % len(urls)], timeout=timeout)
        gate.wait()
        t0 = time.perf_counter()
        try:
            result = client.text(openid, text)
            outcome = Outcome(openid, result.status, result.text, time.perf_counter() - t0)
        except Exception as exc:  # a refused or dropped connection is an error to count
            outcome = Outcome(openid, None, None, time.perf_counter() - t0, repr(exc))
        finally:
            client._http.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one, args=(n, o)) for n, o in enumerate(openids)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Figures(outcomes, time.perf_counter() - started)


def rush(urls: list[str], token: str, openids: list[str], text: str, connections: int = 20,
         timeout: float = 30) -> Figures:
    """Every openid sends `text` once, all queued at one instant and sent over `connections`
    keep-alive connections (spread round-robin over `urls`), one request per message, each
    signed with its own timestamp and nonce. Runs in this process (asyncio); `rush_apart`
    runs it in a driver process of its own."""
    import asyncio

    from simulator.client import text_xml
    from wechat import crypto

    outcomes: list[Outcome] = []
    queue = list(reversed(openids))

    def request(url: str, openid: str) -> bytes:
        host = url.split("//", 1)[1]
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        query = urlencode({"signature": crypto.signature(token, timestamp, nonce),
                           "timestamp": timestamp, "nonce": nonce, "openid": "load"})
        body = text_xml(openid, text).encode()
        return (f"POST /wechat?{query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def response(reader) -> tuple[int, bytes, bool]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (h.partition(":") for h in head[1:] if h)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(head[0].split()[1]), body, headers.get("connection", "").lower() == "close"

    async def connection(url: str, opened) -> list[tuple]:
        """Sends queued messages one at a time until none is left: (openid, status, body,
        seconds, error) each."""
        host, port = url.split("//", 1)[1].split(":")
        reader, writer = opened
        done = []
        while queue:
            openid = queue.pop()
            data = request(url, openid)
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(data)
                status, body, close = await asyncio.wait_for(response(reader), timeout)
                done.append((openid, status, body, time.perf_counter() - t0, None))
                if close:
                    writer.close()
                    writer = None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                done.append((openid, None, b"", time.perf_counter() - t0, repr(exc)))
                if writer is not None:
                    writer.close()
                writer = None
        if writer is not None:
            writer.close()
        return done

    async def run() -> float:
        targets = [urls[n % len(urls)] for n in range(connections)]
        opened = []
        for url in targets:  # WeChat's pool is open before the rush starts
            host, port = url.split("//", 1)[1].split(":")
            opened.append(await asyncio.open_connection(host, int(port)))
        started, cpu[0] = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(connection(u, o) for u, o in zip(targets, opened)))
        cpu[0] = time.process_time() - cpu[0]
        span = time.perf_counter() - started
        for openid, status, body, seconds, error in (r for rs in results for r in rs):
            outcomes.append(Outcome(openid, status, _content(body) if status == 200 else None,
                                    seconds, error))
        return span

    cpu = [0.0]
    span = asyncio.run(run())
    return Figures(outcomes, span, cpu[0])


def _content(body: bytes) -> str | None:
    m = re.search(rb"<Content><!\[CDATA\[(.*?)\]\]></Content>", body, re.S)
    return m.group(1).decode() if m else None


def rush_apart(urls: list[str], token: str, openids: list[str], text: str,
               connections: int = 20) -> Figures:
    """`rush` in a driver process of its own (as WeChat's servers are not the bot's process)."""
    job = json.dumps({"urls": urls, "token": token, "openids": openids, "text": text,
                      "connections": connections})
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--drive"], cwd=ROOT,
                          input=job, capture_output=True, text=True, timeout=600, check=True)
    got = json.loads(done.stdout)
    return Figures([Outcome(**o) for o in got["outcomes"]], got["span"], got["driver_cpu"])


def _drive() -> None:
    job = json.loads(sys.stdin.read())
    figures = rush(job["urls"], job["token"], job["openids"], job["text"], job["connections"])
    json.dump({"span": figures.span, "driver_cpu": figures.driver_cpu,
               "outcomes": [vars(o) for o in figures.outcomes]},
              sys.stdout)


class ThreadedServer:
    """The app on waitress in a thread of this process, polling with poll() rather than
    select(), so a test process with many open files still serves 200 connections.
    Stopping ends the loop first and closes the sockets after, so no poll sees a closed fd."""

    def __init__(self, app, threads: int = 32):
        from waitress.server import create_server

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = create_server(app, host="127.0.0.1", port=self.port, threads=threads,
                                    connection_limit=1000, asyncore_use_poll=True)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        from waitress import wasyncore

        while not self._stop.is_set():
            wasyncore.loop(timeout=0.05, map=self.server._map, use_poll=True, count=1)

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        from waitress import wasyncore

        self._stop.set()
        self.thread.join(timeout=5)
        self.server.task_dispatcher.shutdown()
        wasyncore.close_all(self.server._map)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_servers(count: int, data_dir: Path, token: str, *, fake_now: str = FAKE_NOW,
                  threads: int = 16, processes: int = 1) -> list[tuple[subprocess.Popen, str]]:
    """`python bot.py serve --no-scheduler` × count on one SQLite file; waits until each
    answers /healthz. Returns (process, url) pairs; stop them with `stop_servers`.
    Each server's stderr goes to server-PORT.log in the data directory."""
    import requests

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "BOT_"))}
    env.update(BOT_DATA_DIR=str(data_dir), WECHAT_TOKEN=token, BOT_FAKE_NOW=fake_now,
               BOT_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    servers = []
    for _ in range(count):
        port = free_port()
        with open(Path(data_dir) / f"server-{port}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bot.py"), "serve", "--port", str(port),
                 "--no-scheduler", "--threads", str(threads), "--processes", str(processes)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        servers.append((proc, f"http://127.0.0.1:{port}"))
    deadline = time.time() + 30
    for proc, url in servers:
        while True:
            if proc.poll() is not None:
                log = Path(data_dir) / f"server-{url.rsplit(':', 1)[1]}.log"
                stop_servers(servers)
                raise RuntimeError(f"server {url} exited: "
                                   + log.read_text("utf-8", "replace")[-2000:])
            try:
                if requests.get(url + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                stop_servers(servers)
                raise RuntimeError(f"server {url} did not start")
            time.sleep(0.1)
    return servers


def stop_servers(servers: list[tuple[subprocess.Popen, str]]) -> None:
    for proc, _ in servers:
        if proc.poll() is None:
            proc.terminate()
    for proc, _ in servers:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare(db, now: datetime, tz, members_count: int, capacity: int,
            title: str = "进博会青年突击队集训") -> tuple[int, list[str]]:
    """One open activity a week ahead, and members who have bound name and unit."""
    from datetime import timedelta

    from activities import service
    from storage import members
    from storage.db import immediate

    local = now.astimezone(tz).replace(hour=9, minute=0, second=0, microsecond=0)
    activity_id = service.create_activity(
        db, title=title, now=now, start=local + timedelta(days=7),
        end=local + timedelta(days=7, hours=3), capacity=capacity, location="国家会展中心",
        group="青春执法保障共同体", hours=3)
    openids = [f"oLoad{n:05d}member" for n in range(members_count)]
    with immediate(db):
        for n, openid in enumerate(openids):
            members.ensure(db, openid, now)
            members.set_profile(db, openid, f"成员{n:03d}", "虹口区城管执法局", None, now)
    return activity_id, openids


def burst(urls: list[str], token: str, openids: list[str], connections: int,
          server_here: bool) -> Figures:
    """The sign-up burst: over keep-alive connections from a driver process, or (0) the
    one-thread-per-member burst from this process (whose CPU is then not the driver's
    alone when the server runs here too)."""
    if connections:
        return rush_apart(urls, token, openids, TEXT, connections)
    cpu = time.process_time()
    figures = hammer(urls, token, openids, TEXT)
    if not server_here:
        figures.driver_cpu = time.process_time() - cpu
    return figures


def baseline(token: str, openids: list[str], own_process: bool, connections: int) -> str:
    """The same burst against the bare Flask app (bench/webhook_load.py), served the same way."""
    from bench.webhook_load import TOKEN as BARE_TOKEN
    from bench.webhook_load import bare_app

    proc = server = None
    if own_process:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "webhook_load.py"),
                                 "--serve-bare", str(port), "--threads", "16"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
    else:
        server = ThreadedServer(bare_app()).__enter__()
        url = server.url
    try:
        figures = burst([url], BARE_TOKEN, openids, connections, server is not None)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
        if server:
            server.__exit__(None, None, None)
    times = [o.seconds for o in figures.outcomes] or [0.0]
    failed = sum(o.status != 200 for o in figures.outcomes)
    return (f"requests={figures.requests} non-200={failed} "
            f"p50={statistics.median(times) * 1000:.0f}ms "
            f"p99={figures.percentile(99) * 1000:.0f}ms max={max(times) * 1000:.0f}ms"
            + figures.all_in())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=30)
    parser.add_argument("--processes", type=int, default=0)
    parser.add_argument("--serve-processes", type=int, default=1,
                        help="each server is `serve --processes K` (one port, K processes)")
    parser.add_argument("--connections", type=int, default=20,
                        help="keep-alive connections of the driver (0: one thread and "
                             "connection per member, released at once)")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--unguarded", action="store_true",
                        help="negative control: switch the sign-up guard off (in-process only)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the same burst against the bare Flask app")
    args = parser.parse_args()
    if args.drive:
        return _drive()
    import logging

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if args.unguarded and args.processes:
        parser.error("--unguarded works with --processes 0 only")

    from dataclasses import replace

    from bot import create_app
    from settings import Settings

    token = "benchtoken"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(wechat_token=token, data_dir=Path(tmp), fake_now=FAKE_NOW,
                            log_level="WARNING").validated()
        app = create_app(replace(settings, wechat_appid="wxbench",
                                 wechat_api_base="http://127.0.0.1:9"))
        rt = app.extensions["chengcheng"]
        activity_id, openids = prepare(rt.db(), rt.clock.now(), settings.tz, args.members,
                                       args.capacity)
        how = (f"{args.connections} keep-alive connections from a driver process"
               if args.connections else f"{args.members} threads, a new connection each")
        print(f"{args.members} members, {args.capacity} places, {how}; {os.cpu_count()} CPUs")
        if not args.no_baseline:
            print(f"[bare Flask app, {'1 process' if args.processes else 'threads'}] "
                  + baseline(token, openids, bool(args.processes), args.connections))
        servers, server = [], None
        if args.processes:
            servers = start_servers(args.processes, Path(tmp), token,
                                    processes=args.serve_processes)
            urls = [url for _, url in servers]
        else:
            server = ThreadedServer(app).__enter__()
            urls = [server.url]
        from activities import service

        service.GUARD = not args.unguarded
        try:
            figures = burst(urls, token, openids, args.connections, server is not None)
        finally:
            service.GUARD = True
            stop_servers(servers)
            if server:
                server.__exit__(None, None, None)
        activity = service.get_activity(rt.db(), activity_id)
        where = f"{args.processes} processes" if args.processes else "1 process, threads"
        if args.processes and args.serve_processes > 1:
            where = f"{args.processes} × serve --processes {args.serve_processes}"
        print(f"[{where}{', UNGUARDED' if args.unguarded else ''}] {figures.line()}")
        print(f"database: confirmed={activity['confirmed']} (capacity {args.capacity}) "
              f"waitlisted={activity['waitlisted']}")
        rt.executor.shutdown(wait=True)


if __name__ == "__main__":
    main()
