"""Benchmark: a broadcast to 10,000 members against the fake WeChat API with 10 % injected faults.

    .venv/bin/python bench/broadcast.py [--members 10000] [--faults 0.1] [--rate 0]
                                        [--pace 100,300] [--pace-members 2000]

Three runs side by side, each on a fresh SQLite file and a fresh fake API:
  outbox + faults   the real path: queue in the outbox, dispatcher retries with backoff
  outbox, no faults the same 10,000 sends when WeChat never fails (the cost of the outbox itself)
  naive + faults    a plain loop over the API with no outbox and no retries (what gets lost)

Then the pacing table: the outbox with no faults at each BOT_SEND_RATE in --pace (and
unlimited), beside the naive loop, on --pace-members members: "sends/s" counts from the
first claim to the last send (queueing excluded), so a rate the outbox keeps shows as itself.

Backoff waits (15 s, 30 s, …) are not slept: when only retries are left the bot's clock jumps
to the next one, and the total jumped is reported as "backoff (simulated)".
Not a timed test; it prints figures.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime import Runtime  # noqa: E402
from scheduler import broadcast  # noqa: E402
from scheduler.dispatcher import Dispatcher  # noqa: E402
from settings import Settings  # noqa: E402
from storage import deliveries, members  # noqa: E402
from wechat.api import WeChatAPI, WeChatAPIError  # noqa: E402
from wechat.fake_api import FakeWeChatAPI  # noqa: E402

SEND = "/cgi-bin/message/custom/send"
APPID, SECRET = "wxbenchappid", "benchsecret"


def setup(tmp: Path, name: str, n: int, rate: float):
    fake = FakeWeChatAPI(appid=APPID, secret=SECRET).start()
    settings = Settings(wechat_token="bench", wechat_appid=APPID, wechat_secret=SECRET,
                        wechat_api_base=fake.url, data_dir=tmp / name, send_rate=rate,
                        send_max_attempts=10).validated()
    rt = Runtime(settings)
    db, now = rt.db(), rt.clock.now()
    openids = [f"oBench{i:06d}" for i in range(n)]
    with db.atomic():
        for openid in openids:
            members.touch(db, openid, now)
    return fake, rt, openids


def outbox_run(tmp: Path, name: str, n: int, faults: float, rate: float) -> dict:
    fake, rt, openids = setup(tmp, name, n, rate)
    if faults:
        fake.inject_random(SEND, faults, errcodes=(-1, 45009), http_statuses=(500,), seed=2026)
    started = time.monotonic()
    queued = broadcast.queue(rt, "【演练】今晚8点系统维护，请提前保存工作。")
    queued_s = time.monotonic() - started
    sending = time.monotonic()
    dispatcher = Dispatcher(rt, WeChatAPI(rt.settings, rt.db, rt.clock.now))
    waited = timedelta()
    while True:
        dispatcher.drain(max_rounds=10**6)
        nxt = deliveries.next_attempt(rt.db())
        if nxt is None:
            break
        jump = nxt - rt.clock.now() + timedelta(milliseconds=10)
        if jump > timedelta():
            waited += jump
            rt.clock.set(rt.clock.now() + jump)
    elapsed = time.monotonic() - started
    progress = deliveries.progress(rt.db(), queued.batch)
    result = tally(fake, openids, elapsed)
    result.update(queued_s=queued_s, send_s=time.monotonic() - sending,
                  backoff=waited.total_seconds(),
                  retries=dispatcher.stats["retried"], failed=n - progress.get("sent", 0))
    fake.stop()
    return result


def naive_run(tmp: Path, name: str, n: int, faults: float, rate: float) -> dict:
    """No outbox: call the API once per member and move on."""
    fake, rt, openids = setup(tmp, name, n, rate)
    if faults:
        fake.inject_random(SEND, faults, errcodes=(-1, 45009), http_statuses=(500,), seed=2026)
    api = WeChatAPI(rt.settings, rt.db, rt.clock.now)
    started = time.monotonic()
    errors = 0
    for openid in openids:
        try:
            api.send_custom_text(openid, "【演练】今晚8点系统维护，请提前保存工作。")
        except WeChatAPIError:
            errors += 1
    result = tally(fake, openids, time.monotonic() - started)
    result.update(queued_s=0.0, send_s=result["time"], backoff=0.0, retries=0, failed=errors)
    fake.stop()
    return result


def tally(fake: FakeWeChatAPI, openids: list[str], elapsed: float) -> dict:
    got = Counter(m["openid"] for m in fake.inbox())
    return {"time": elapsed, "calls": len(fake.calls), "send_calls": len(fake.calls_to(SEND)),
            "delivered": len(got), "lost": sum(1 for o in openids if not got[o]),
            "duplicates": sum(c - 1 for c in got.values() if c > 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--faults", type=float, default=0.10)
    parser.add_argument("--rate", type=float, default=0,
                        help="BOT_SEND_RATE for the run (0 = unlimited, to measure the bot itself)")
    parser.add_argument("--pace", default="100,300",
                        help="BOT_SEND_RATE values for the pacing table (comma-separated; "
                             "empty: no table)")
    parser.add_argument("--pace-members", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n, f = args.members, args.faults
    with tempfile.TemporaryDirectory(prefix="bench-broadcast-") as tmp:
        runs = [(f"outbox + {f:.0%} faults", outbox_run(Path(tmp), "a", n, f, args.rate)),
                ("outbox, no faults", outbox_run(Path(tmp), "b", n, 0, args.rate)),
                (f"naive + {f:.0%} faults", naive_run(Path(tmp), "c", n, f, args.rate))]
    rows = [("wall time (s)", "time", "{:.1f}"), ("  of which queueing (s)", "queued_s", "{:.2f}"),
            ("sends per second", None, None), ("backoff (simulated, s)", "backoff", "{:.0f}"),
            ("API calls (all)", "calls", "{}"), ("send calls", "send_calls", "{}"),
            ("retries", "retries", "{}"), ("delivered", "delivered", "{}"),
            ("lost", "lost", "{}"), ("duplicates", "duplicates", "{}"),
            ("failed rows / errors", "failed", "{}")]
    width = 24
    print(f"\nBroadcast to {n:,} members, fake WeChat API, faults = errcode -1 / 45009 / HTTP 500"
          f", send rate {'unlimited' if not args.rate else args.rate}\n")
    print(" " * 26 + "".join(f"{name:>{width}}" for name, _ in runs))
    for label, key, fmt in rows:
        if key is None:
            cells = [f"{r['delivered'] / r['time']:.0f}" if r["time"] else "-" for _, r in runs]
        else:
            cells = [fmt.format(r[key]) for _, r in runs]
        print(f"{label:<26}" + "".join(f"{c:>{width}}" for c in cells))
    lost = runs[0][1]["lost"]
    print(f"\noutbox + faults: lost {lost} (must be 0), duplicates {runs[0][1]['duplicates']}")
    rates = [float(r) for r in args.pace.split(",") if r.strip()]
    if rates:
        pacing(rates, args.pace_members)
    if lost:
        sys.exit(1)


def pacing(rates: list[float], n: int) -> None:
    """The outbox (no faults) at each BOT_SEND_RATE and unlimited, beside the naive loop."""
    with tempfile.TemporaryDirectory(prefix="bench-pacing-") as tmp:
        runs = [(f"outbox, BOT_SEND_RATE={r:g}", r, outbox_run(Path(tmp), f"p{i}", n, 0, r))
                for i, r in enumerate(rates)]
        runs.append(("outbox, unlimited", 0, outbox_run(Path(tmp), "pu", n, 0, 0)))
        runs.append(("naive loop, unlimited", 0, naive_run(Path(tmp), "pn", n, 0, 0)))
    print(f"\nPacing: {n:,} members, no faults; sends/s from the first claim to the last send\n")
    print(f"{'':28}{'sends/s':>10}{'of the rate':>13}{'send time (s)':>15}{'lost':>6}{'dup':>5}")
    for label, rate, r in runs:
        per_s = r["delivered"] / r["send_s"] if r["send_s"] else 0.0
        share = f"{per_s / rate:.0%}" if rate else "-"
        print(f"{label:<28}{per_s:>10.0f}{share:>13}{r['send_s']:>15.1f}{r['lost']:>6}"
              f"{r['duplicates']:>5}")


if __name__ == "__main__":
    main()
