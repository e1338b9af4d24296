"""Webhook latency under load: the bot beside a bare Flask app that only echoes fixed XML.

    python bench/webhook_load.py [--clients 20] [--seconds 10] [--question 体检几月]

Both run the same way: a separate `waitress` process on loopback with the same thread count,
driven by the same client threads posting signed WeChat text messages (new MsgId each).
Prints requests, throughput, median and p99 per server. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.client import WeChatClient, text_xml  # noqa: E402

TOKEN = "benchtoken"
ECHO_XML = ("<xml><ToUserName><![CDATA[u]]></ToUserName><FromUserName><![CDATA[a]]></FromUserName>"
            "<CreateTime>0</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[ok]]></Content></xml>")


def echo_app():
    from flask import Flask

    app = Flask("echo")

    @app.post("/wechat")
    def wechat():
        return ECHO_XML, 200, {"Content-Type": "application/xml"}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def load(url: str, clients: int, seconds: float, question: str) -> list[float]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        client = WeChatClient(TOKEN, url=url, timeout=10)
        mine, bad = [], 0
        i = 0
        while time.monotonic() < stop:
            i += 1
            xml = text_xml(f"oLoad{n:03d}x{i:06d}"[:28], question)
            t = time.perf_counter()
            result = client.post_xml(xml)
            mine.append((time.perf_counter() - t) * 1000)
            if result.status != 200:
                bad += 1
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors[0]:
        print(f"  ({errors[0]} non-200 responses)")
    return latencies


def report(name: str, lat: list[float], seconds: float) -> None:
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(f"{name:28} {len(lat):>8} {len(lat) / seconds:>9.0f} {statistics.median(lat):>10.2f} "
          f"{p99:>10.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--question", default="体检几月")
    ap.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_echo:
        from waitress import serve

        serve(echo_app(), host="127.0.0.1", port=args.serve_echo, threads=args.threads,
              _quiet=True)
        return
    procs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "WECHAT_TOKEN": TOKEN, "BOT_DATA_DIR": tmp, "BOT_LOG_LEVEL": "WARNING"}
            bot_port, echo_port = free_port(), free_port()
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "serve", "--port",
                                           str(bot_port), "--threads", str(args.threads),
                                           "--no-scheduler"], env=env, cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            procs.append(subprocess.Popen([sys.executable, __file__, "--serve-echo", str(echo_port),
                                           "--threads", str(args.threads)], cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_up(bot_port)
            wait_up(echo_port)
            bot_url, echo_url = f"http://127.0.0.1:{bot_port}", f"http://127.0.0.1:{echo_port}"
            reply = WeChatClient(TOKEN, url=bot_url).text("oWarmup0001", args.question).text
            print(f"bot reply to {args.question!r}: {reply[:40]!r}…")
            load(bot_url, 4, 1, args.question)  # warm up both
            load(echo_url, 4, 1, args.question)
            print(f"\n{args.clients} clients, {args.seconds:.0f} s each, waitress {args.threads} "
                  f"threads, loopback\n")
            print(f"{'server':28} {'requests':>8} {'req/s':>9} {'median ms':>10} {'p99 ms':>10}")
            report("bare Flask echo (baseline)", load(echo_url, args.clients, args.seconds,
                                                     args.question), args.seconds)
            report("诚城青年助手 /wechat", load(bot_url, args.clients, args.seconds,
                                              args.question), args.seconds)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
