"""Benchmark: a member guessing check-in codes through the webhook (issue 10 item 6).

    .venv/bin/python bench/checkin_guess.py [--guesses 300]

Two runs side by side, each on a fresh SQLite file, the same guesses in the same order:
  limit on    the bot as shipped (BOT_CHECKIN_MAX_WRONG=5 per activity per hour)
  no limit    the baseline: the limit set out of reach (what the fault test found: ~176/s)
For each: guesses answered per second, how many were judged (answered "签到码不正确") and counted, how many could have succeeded, and
how long finding one 6-digit code (900,000 possibilities, half on average) would take at that rate.
Not a timed test; it prints figures.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from activities import service  # noqa: E402
from bot import create_app  # noqa: E402
from settings import Settings  # noqa: E402
from simulator.client import WeChatClient  # noqa: E402

CODES = 900_000
GUESSER = "oGuesser0001"


def run(guesses: int, max_wrong: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(wechat_token="bench", data_dir=Path(tmp), log_level="WARNING",
                            fake_now="2026-11-21 10:00", checkin_max_wrong=max_wrong).validated()
        app = create_app(settings)
        rt = app.extensions["chengcheng"]
        db, now = rt.db(), rt.clock.now()
        aid = service.create_activity(db, title="社区青年志愿服务日", now=now,
                                      start=now + timedelta(minutes=30),
                                      end=now + timedelta(hours=3), hours=3)
        code = service.get_activity(db, aid)["checkin_code"]
        client = WeChatClient("bench", app=app)
        client.text(GUESSER, "绑定 张三 虹口区城管执法局")
        client.text(GUESSER, "报名 志愿服务日")
        wrong = [f"{100000 + (n * 7919) % CODES}" for n in range(guesses * 2)]
        wrong = [g for g in wrong if g != code][:guesses]
        started = time.perf_counter()
        checked = sum(client.text(GUESSER, f"签到 {g}").text.startswith("签到码不正确") for g in wrong)
        elapsed = time.perf_counter() - started
        counted = db.execute("SELECT count(*) FROM checkin_attempts").fetchone()[0]
        right = client.text(GUESSER, f"签到 {code}").text
        rt.executor.shutdown(wait=True)
    per_hour = min(counted / elapsed * 3600, max_wrong) if max_wrong < guesses else \
        guesses / elapsed * 3600
    return {"rate": guesses / elapsed, "checked": checked, "counted": counted,
            "per_hour": per_hour, "hours_to_find": CODES / 2 / per_hour,
            "right_code_after": right[:12]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guesses", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = [("limit on", run(args.guesses, 5)), ("no limit", run(args.guesses, 10**9))]
    print(f"{'':10} {'answered/s':>10} {'judged':>8} {'counted':>8} {'tries/hour':>11} "
          f"{'hours to find a code':>21}  right code afterwards")
    for name, r in rows:
        print(f"{name:10} {r['rate']:10.0f} {r['checked']:8d} {r['counted']:8d} "
              f"{r['per_hour']:11.0f} {r['hours_to_find']:21.1f}  {r['right_code_after']}")


if __name__ == "__main__":
    main()
