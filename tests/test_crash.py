"""Real processes killed with SIGKILL, then restarted.

A `python bot.py worker` in the middle of a broadcast: every member gets the notice, and only a
message on the wire at the kill can arrive twice. A `python bot.py serve` in the middle of a
sign-up rush: WeChat's retries (same MsgIds) tell every member the outcome the database holds,
and no message stays 'processing'."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from activities import service
from bench.signup_load import FAKE_NOW, WAITLIST, prepare, start_servers, stop_servers
from handlers import words
from runtime import Runtime
from scheduler import broadcast
from settings import Settings
from simulator.client import WeChatClient, text_xml
from storage import activities, deliveries, members
from tests.conftest import APPID, SECRET, TOKEN

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = 80
RATE = 40  # sends per second: the broadcast takes about 2 s, long enough to kill it mid-way
WIRE = 30  # the member whose message is on the wire at the kill


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "bot.py", "worker"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_mid_broadcast_then_restart_delivers_every_message(tmp_path, fake_api):
    settings = Settings(wechat_token=TOKEN, wechat_appid=APPID, wechat_secret=SECRET,
                        wechat_api_base=fake_api.url, data_dir=tmp_path / "data").validated()
    rt = Runtime(settings)
    openids = [f"oCrash{i:05d}" for i in range(MEMBERS)]
    for openid in openids:
        members.touch(rt.db(), openid, rt.clock.now())
    queued = broadcast.queue(rt, "今晚8点系统维护，请提前保存工作")
    assert queued.count == MEMBERS

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WECHAT_"))}
    env.update(BOT_DATA_DIR=str(settings.data_dir), WECHAT_API_BASE=fake_api.url,
               WECHAT_APPID=APPID, WECHAT_SECRET=SECRET, WECHAT_TOKEN=TOKEN,
               BOT_SEND_RATE=str(RATE), BOT_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    # the 31st send hangs at WeChat for a second: the kill lands while it is on the wire
    fake_api.inject("/cgi-bin/message/custom/send", delay=1.0, openid=openids[WIRE])
    first = start_worker(env, tmp_path / "worker1.log")
    try:
        # the hanging request has reached WeChat once its fault is taken
        wait_for(lambda: not fake_api._faults, 30, "the 31st send to reach WeChat")
        time.sleep(0.1)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    time.sleep(1.0)  # WeChat finishes the request the dead worker never heard back from

    db = rt.db()
    got_before = Counter(m["openid"] for m in fake_api.inbox())
    claimed = [r for r in deliveries.with_prefix(db, f"notice:{queued.batch}:")
               if r["status"] == "sending"]
    on_the_wire = [r for r in claimed if r["openid"] in got_before]  # reached WeChat, unrecorded
    assert 0 < len(got_before) < MEMBERS, "the kill should land mid-broadcast"
    assert claimed, "the killed worker held claims"

    second = start_worker(env, tmp_path / "worker2.log")
    try:
        wait_for(lambda: deliveries.progress(db, queued.batch) == {"sent": MEMBERS}, 30,
                 "the restarted worker to finish")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0
    assert "worker 已停止" in (tmp_path / "worker2.log").read_text()

    got = Counter(m["openid"] for m in fake_api.inbox())
    assert set(got) == set(openids)  # nobody lost
    duplicates = sum(got.values()) - MEMBERS
    assert duplicates == len(on_the_wire) == 1  # only the message in flight at the kill
    assert got[openids[WIRE]] == 2
    print(f"\nkill -9 after {sum(got_before.values())} of {MEMBERS} sent; {len(claimed)} claimed, "
          f"{len(on_the_wire)} on the wire; after restart all {MEMBERS} delivered, "
          f"{duplicates} duplicate(s)")


# --- kill -9 during a sign-up rush ---------------------------------------------------------------

RUSH_MEMBERS = 200
RUSH_PLACES = 30
RUSH_TEXT = "报名 进博会青年突击队集训"
KILL_AFTER = 60  # sign-ups in the database when the server is killed


def _send_all(url: str, sends: list[tuple[str, int]], replies: dict, *, barrier: bool) -> None:
    """Each (openid, MsgId) posted once, one thread each, like WeChat; replies[openid] is the
    last reply text a member got (None: no answer, so WeChat will retry)."""
    gate = threading.Barrier(len(sends)) if barrier else None

    def one(openid: str, msg_id: int) -> None:
        client = WeChatClient(TOKEN, url=url, timeout=15)
        if gate:
            gate.wait()
        try:
            result = client.post_xml(text_xml(openid, RUSH_TEXT, msg_id=msg_id))
            if result.status == 200 and result.text:
                replies[openid] = result.text
        except Exception:  # the server died under this request: no reply, WeChat retries
            pass
        finally:
            client._http.close()

    threads = [threading.Thread(target=one, args=pair) for pair in sends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_kill_9_during_signup_rush_then_wechat_retries_tell_every_member_the_truth(tmp_path):
    settings = Settings(wechat_token=TOKEN, data_dir=tmp_path / "data",
                        fake_now=FAKE_NOW).validated()
    rt = Runtime(settings)
    db = rt.db()
    activity_id, openids = prepare(db, rt.clock.now(), settings.tz, RUSH_MEMBERS, RUSH_PLACES)
    msg_ids = {openid: 880000 + n for n, openid in enumerate(openids)}
    signups = lambda: db.execute("SELECT count(*) FROM signups").fetchone()[0]  # noqa: E731

    [(first, url)] = start_servers(1, settings.data_dir, TOKEN, threads=8)
    replies: dict[str, str] = {}
    rush = threading.Thread(target=_send_all, args=(url, list(msg_ids.items()), replies),
                            kwargs={"barrier": True})
    try:
        rush.start()
        wait_for(lambda: signups() >= KILL_AFTER, 30, f"{KILL_AFTER} sign-ups")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    rush.join()
    at_kill = signups()
    assert at_kill < RUSH_MEMBERS, "the kill should land mid-rush"
    unanswered = [o for o in openids if o not in replies]
    stuck_at_kill = stuck(db)

    [(second, url)] = start_servers(1, settings.data_dir, TOKEN, threads=8)
    try:
        for attempt in range(3):  # WeChat retries a message three times, same MsgId
            waiting = [(o, msg_ids[o]) for o in openids if o not in replies]
            if not waiting:
                break
            _send_all(url, waiting, replies, barrier=False)
    finally:
        stop_servers([(second, url)])

    assert set(replies) == set(openids), "every member got an answer"
    assert words.PROCESSING not in replies.values()
    rows = {r["openid"]: r for r in service.signup_list(db, activity_id)}
    assert len(rows) == RUSH_MEMBERS
    confirmed = {o for o, r in rows.items() if r["status"] == "confirmed"}
    assert len(confirmed) == RUSH_PLACES
    for openid, text in replies.items():
        row = rows[openid]
        if row["status"] == "confirmed":
            assert "报名成功" in text or "已确认" in text, (openid, text)
        else:
            told = WAITLIST.search(text)
            assert told, (openid, text)
            assert int(told.group(1)) == activities.waitlist_position(db, row["id"]), (openid, text)
    assert stuck(db) == 0, "no message left processing"
    print(f"\nkill -9 at {at_kill} of {RUSH_MEMBERS} sign-ups; {len(unanswered)} members "
          f"unanswered, {stuck_at_kill} rows left processing; after restart and retries "
          f"every reply matches the database, 0 stuck")


def stuck(db) -> int:
    """Messages whose member was never answered and never will be by the run that took them."""
    return db.execute("SELECT count(*) FROM messages WHERE status = 'processing' OR "
                      "(status = 'deferred' AND final_reply IS NULL)").fetchone()[0]
