"""The outbox and its dispatcher against the fake WeChat API: faults, channels, claims."""
from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections import Counter
from datetime import timedelta

import pytest

from scheduler.dispatcher import CLAIM_FOR, Dispatcher, RateLimiter
from storage import deliveries, members
from wechat.api import WeChatAPI

CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIBE = "/cgi-bin/message/subscribe/bizsend"


@pytest.fixture
def make_rt(make_app):
    """A runtime that sends without the rate limit (the limit has its own test)."""
    def make(**overrides):
        return make_app(**{"send_rate": 0, **overrides}).extensions["chengcheng"]
    return make


def dispatcher(rt) -> Dispatcher:
    return Dispatcher(rt, WeChatAPI(rt.settings, rt.db, rt.clock.now))


def settle(rt, d: Dispatcher | None = None, rounds: int = 50) -> Dispatcher:
    """Dispatch, and whenever only retries wait, jump the clock to the next one (backoff)."""
    d = d or dispatcher(rt)
    for _ in range(rounds):
        d.drain()
        nxt = deliveries.next_attempt(rt.db())
        if nxt is None:
            return d
        rt.clock.set(max(nxt, rt.clock.now()) + timedelta(seconds=1))
    raise AssertionError("outbox did not settle")


def queue(rt, openids, kind="notice", text="周六志愿活动改到9点集合", **extra):
    now = rt.clock.now()
    for n, openid in enumerate(openids):
        deliveries.enqueue(rt.db(), dedupe_key=f"t:{kind}:{openid}:{n}:{text}", openid=openid,
                           kind=kind, text=text, due_at=now, now=now, **extra)


def people(rt, n: int, *, seen_hours_ago: float = 1) -> list[str]:
    db, now = rt.db(), rt.clock.now()
    openids = [f"oMember{i:05d}" for i in range(n)]
    for openid in openids:
        members.touch(db, openid, now - timedelta(hours=seen_hours_ago))
    return openids


def test_enqueue_is_idempotent_by_dedupe_key(make_rt):
    rt = make_rt()
    now = rt.clock.now()
    row = dict(dedupe_key="reminder:1:oMember00001:7200", openid="oMember00001", kind="reminder",
               text="x", due_at=now)
    assert deliveries.enqueue(rt.db(), now=now, **row) is True
    assert deliveries.enqueue(rt.db(), now=now, **row) is False
    assert deliveries.enqueue_many(rt.db(), [row, {**row, "dedupe_key": "other"}], now) == 1


@pytest.mark.parametrize("fault", [
    {"errcode": -1}, {"errcode": 45009}, {"http_status": 500}, {"http_status": 503},
])
def test_transient_faults_are_retried_with_backoff_and_nothing_is_lost(make_rt, fake_api, fault):
    rt = make_rt()
    openids = people(rt, 5)
    queue(rt, openids)
    fake_api.inject(CUSTOM, times=7, **fault)  # every member's first try fails, some twice
    d = settle(rt)
    got = Counter(m["openid"] for m in fake_api.inbox())
    assert got == Counter(openids)  # everyone exactly once
    rows = deliveries.with_prefix(rt.db(), "t:")
    assert {r["status"] for r in rows} == {"sent"}
    assert all(r["attempts"] >= 2 for r in rows)
    assert d.stats["sent"] == 5 and d.stats["failed"] == 0


def test_retry_waits_for_its_backoff(make_rt, fake_api):
    rt = make_rt()
    [openid] = people(rt, 1)
    queue(rt, [openid])
    fake_api.inject(CUSTOM, errcode=-1)
    d = dispatcher(rt)
    d.drain()
    row = deliveries.with_prefix(rt.db(), "t:")[0]
    assert row["status"] == "pending" and row["last_error"].startswith("-1")
    d.drain()  # not yet: the backoff is 15 s
    assert fake_api.inbox() == []
    rt.clock.set(rt.clock.now() + timedelta(seconds=16))
    d.drain()
    assert [m["openid"] for m in fake_api.inbox()] == [openid]


def test_timeouts_are_retried_and_only_timed_out_messages_may_repeat(make_rt, fake_api):
    rt = make_rt(wechat_api_timeout=0.3)
    openids = people(rt, 4)
    queue(rt, openids)
    fake_api.inject(CUSTOM, delay=0.6, times=2)  # WeChat got these, the bot never heard back
    settle(rt)
    got = Counter(m["openid"] for m in fake_api.inbox())
    assert set(got) == set(openids)
    assert sum(got.values()) - len(openids) <= 2  # duplicates only for the 2 in flight
    assert {r["status"] for r in deliveries.with_prefix(rt.db(), "t:")} == {"sent"}


def test_ten_percent_random_faults_on_many_members(make_rt, fake_api):
    rt = make_rt()
    openids = people(rt, 200)
    queue(rt, openids)
    fake_api.inject_random(CUSTOM, 0.1, errcodes=(-1, 45009), http_statuses=(500,), seed=7)
    d = settle(rt)
    got = Counter(m["openid"] for m in fake_api.inbox())
    assert got == Counter(openids)
    assert d.stats["retried"] > 5 and d.stats["sent"] == 200


def test_giving_up_after_max_attempts_records_the_reason(make_rt, fake_api):
    rt = make_rt(send_max_attempts=3)
    [openid] = people(rt, 1)
    queue(rt, [openid])
    fake_api.inject(CUSTOM, errcode=-1, times=10)
    settle(rt)
    row = deliveries.with_prefix(rt.db(), "t:")[0]
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["last_error"].startswith("重试 3 次仍失败")


def test_43004_is_permanent_and_the_member_is_marked_unsubscribed(make_rt, fake_api):
    rt = make_rt()
    gone, stays = people(rt, 2)
    fake_api.unsubscribed.add(gone)
    queue(rt, [gone, stays])
    settle(rt)
    by_openid = {r["openid"]: r for r in deliveries.with_prefix(rt.db(), "t:")}
    assert by_openid[gone]["status"] == "failed"
    assert by_openid[gone]["last_error"] == "43004 成员已取消关注"
    assert by_openid[gone]["attempts"] == 1
    assert members.get(rt.db(), gone)["subscribed"] == 0
    assert by_openid[stays]["status"] == "sent"
    calls = len(fake_api.calls_to(CUSTOM))
    queue(rt, [gone], text="第二条")  # later messages skip the member without calling WeChat
    settle(rt)
    assert len(fake_api.calls_to(CUSTOM)) == calls
    row = [r for r in deliveries.with_prefix(rt.db(), "t:") if r["text"] == "第二条"][0]
    assert row["status"] == "unreachable" and "取消关注" in row["last_error"]


def test_40003_bad_openid_is_permanent(make_rt, fake_api):
    rt = make_rt()
    [openid] = people(rt, 1)
    queue(rt, [openid])
    fake_api.inject(CUSTOM, errcode=40003)
    settle(rt)
    row = deliveries.with_prefix(rt.db(), "t:")[0]
    assert (row["status"], row["last_error"], row["attempts"]) == ("failed", "40003 无效的 openid", 1)


def test_channel_custom_within_window_then_template_over_the_cap(make_rt, fake_api):
    rt = make_rt(wechat_cs_max_messages=2, wechat_template_notice="TPL_NOTICE",
                 wechat_template_reminder="TPL_REMIND")
    [openid] = people(rt, 1, seen_hours_ago=47)
    for n in range(3):
        queue(rt, [openid], text=f"第{n + 1}条通知",
              data={"keyword1": f"通知{n + 1}", "keyword2": "11月22日 09:00", "keyword3": "团工委"},
              title="通知")
        settle(rt)
    inbox = fake_api.inbox(openid)
    assert [m["kind"] for m in inbox] == ["custom", "custom", "template"]
    [call] = fake_api.calls_to(TEMPLATE)
    body = call["json"]
    assert body["template_id"] == "TPL_NOTICE"
    assert {k: v["value"] for k, v in body["data"].items()} == {
        "first": "通知", "keyword1": "通知3", "keyword2": "11月22日 09:00",
        "keyword3": "团工委", "remark": "第3条通知"}


def test_the_cap_counts_from_the_members_last_message(make_rt, fake_api):
    rt = make_rt(wechat_cs_max_messages=1, wechat_template_notice="TPL_NOTICE")
    [openid] = people(rt, 1)
    queue(rt, [openid], text="一")
    settle(rt)
    rt.clock.set(rt.clock.now() + timedelta(minutes=5))
    members.touch(rt.db(), openid, rt.clock.now())  # the member writes again: a new window
    queue(rt, [openid], text="二")
    settle(rt)
    assert [m["kind"] for m in fake_api.inbox(openid)] == ["custom", "custom"]


def test_outside_the_window_a_reminder_uses_the_reminder_template(make_rt, fake_api):
    rt = make_rt(wechat_template_reminder="TPL_REMIND", wechat_template_notice="TPL_NOTICE")
    [openid] = people(rt, 1, seen_hours_ago=49)
    queue(rt, [openid], kind="reminder", text="活动提醒：……", title="活动提醒",
          data={"keyword1": "植树活动", "keyword2": "11月23日(周一) 10:00", "keyword3": "世纪公园"})
    settle(rt)
    [call] = fake_api.calls_to(TEMPLATE)
    assert call["json"]["template_id"] == "TPL_REMIND"
    assert call["json"]["data"]["keyword3"]["value"] == "世纪公园"
    assert fake_api.calls_to(CUSTOM) == []


@pytest.mark.parametrize("hours, window, channel", [(2, 1, "subscribe"), (0.5, 1, "custom")])
def test_the_window_is_configurable_and_subscribe_fields_are_filled(make_rt, fake_api, hours,
                                                                    window, channel):
    rt = make_rt(wechat_cs_window_hours=window, wechat_subscribe_template="SUB_TPL")
    [openid] = people(rt, 1, seen_hours_ago=hours)
    queue(rt, [openid], text="本周六上午九点在世纪公园集合参加植树活动，请带好工作证", title="活动通知")
    settle(rt)
    [msg] = fake_api.inbox(openid)
    assert msg["kind"] == channel
    if channel == "subscribe":
        data = {k: v["value"] for k, v in msg["data"].items()}
        assert set(data) == {"thing1", "time2", "thing3"}
        assert data["thing1"] == "活动通知"
        assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d", data["time2"])
        assert len(data["thing3"]) <= 20 and data["thing3"].endswith("…")
        assert msg["template_id"] == "SUB_TPL"


def test_custom_refused_by_wechat_falls_through_to_the_template(make_rt, fake_api):
    rt = make_rt(wechat_template_notice="TPL_NOTICE")
    [openid] = people(rt, 1)
    queue(rt, [openid])
    fake_api.inject(CUSTOM, errcode=45015)
    settle(rt)
    assert [m["kind"] for m in fake_api.inbox(openid)] == ["template"]


def test_a_member_no_channel_can_reach_is_recorded(make_rt, fake_api):
    rt = make_rt()
    [openid] = people(rt, 1, seen_hours_ago=72)
    queue(rt, [openid])
    d = settle(rt)
    row = deliveries.with_prefix(rt.db(), "t:")[0]
    assert row["status"] == "unreachable"
    assert "48 小时" in row["last_error"] and "WECHAT_TEMPLATE_NOTICE" in row["last_error"]
    assert d.stats["unreachable"] == 1 and fake_api.calls_to(CUSTOM) == []


def test_a_row_past_its_expiry_is_dropped_not_sent(make_rt, fake_api):
    rt = make_rt()
    [openid] = people(rt, 1)
    now = rt.clock.now()
    deliveries.enqueue(rt.db(), dedupe_key="late", openid=openid, kind="reminder", text="x",
                       due_at=now - timedelta(hours=3), expires_at=now - timedelta(minutes=1),
                       now=now)
    settle(rt)
    row = deliveries.get(rt.db(), "late")
    assert row["status"] == "dropped" and "已过时效" in row["last_error"]
    assert fake_api.inbox() == []


def test_a_dead_senders_claims_are_sent_again_after_the_claim_runs_out(make_rt, fake_api):
    rt = make_rt()
    openids = people(rt, 3)
    queue(rt, openids)
    deliveries.claim_due(rt.db(), rt.clock.now(), 10, CLAIM_FOR, "crashed-sender")
    d = dispatcher(rt)
    d.drain()
    assert fake_api.inbox() == []  # claimed by someone else: left alone
    rt.clock.set(rt.clock.now() + CLAIM_FOR + timedelta(seconds=1))
    d.drain()
    assert Counter(m["openid"] for m in fake_api.inbox()) == Counter(openids)


def test_release_claims_frees_them_at_once(make_rt, fake_api):
    rt = make_rt()
    openids = people(rt, 3)
    queue(rt, openids)
    deliveries.claim_due(rt.db(), rt.clock.now(), 10, CLAIM_FOR, "dead")
    assert deliveries.in_flight(rt.db()) == 3
    assert deliveries.release_claims(rt.db(), "dead", rt.clock.now()) == 3
    dispatcher(rt).drain()
    assert len(fake_api.inbox()) == 3


def test_sending_is_rate_limited(make_rt, fake_api):
    rt = make_rt(send_rate=20)
    openids = people(rt, 11)
    queue(rt, openids)
    started = time.monotonic()
    dispatcher(rt).drain()
    assert time.monotonic() - started >= 0.45  # 11 calls at 20/s need at least 0.5 s
    assert len(fake_api.inbox()) == 11


def test_key_prefixes_are_exact_and_case_sensitive(make_rt):
    rt = make_rt()
    now = rt.clock.now()
    for key in ("reminder:1:oAb_c:60", "reminder:1:oABXc:60", "reminder:12:oAb_c:60"):
        deliveries.enqueue(rt.db(), dedupe_key=key, openid="o", kind="reminder", text="x",
                           due_at=now, now=now)
    assert [r["dedupe_key"] for r in deliveries.with_prefix(rt.db(), "reminder:1:oAb_")] == [
        "reminder:1:oAb_c:60"]
    assert deliveries.cancel_pending(rt.db(), "reminder:1:", "test") == 2
    assert deliveries.get(rt.db(), "reminder:12:oAb_c:60")["status"] == "pending"


# --- template fields checked before queuing; client_msg_id = the outbox row's id --------------

def test_a_field_over_wechats_limit_is_refused_when_queued(make_rt):
    from wechat.templates import TemplateFieldError

    rt = make_rt()
    now = rt.clock.now()
    for data, words in [({"thing1": "一" * 21}, "thing1 超过 20 个字"),
                        ({"character_string2": "编号A1"}, "不能有汉字"),
                        ({"phrase3": "报名已经成功"}, "phrase3 超过 5 个字"),
                        ({"keyword1": "一" * 21}, "keyword1 超过 20 个字")]:
        with pytest.raises(TemplateFieldError, match=words):
            deliveries.enqueue(rt.db(), dedupe_key="t:limit", openid="oMember00001",
                               kind="notice", text="x", due_at=now, now=now, data=data)
    assert deliveries.get(rt.db(), "t:limit") is None
    assert deliveries.enqueue(rt.db(), dedupe_key="t:limit", openid="oMember00001",
                              kind="notice", text="x", due_at=now, now=now,
                              data={"thing1": "一" * 20, "phrase3": "报名成功"})


def test_a_broadcast_with_line_breaks_still_queues_and_is_sent_folded(make_rt, fake_api):
    from scheduler.broadcast import queue as broadcast

    rt = make_rt(wechat_template_notice="tmpl-notice")
    people(rt, 2, seen_hours_ago=72)
    queued = broadcast(rt, "周六\n上午9点在三楼集合，\n请穿志愿者马甲。", "all")
    assert queued.count == 2
    dispatcher(rt).drain()
    sent = [m["data"]["keyword1"]["value"] for m in fake_api.inbox()]
    assert len(sent) == 2 and all(v.startswith("周六 上午9点在三楼集合， 请穿") and "\n" not in v
                                  for v in sent)


def test_template_sends_carry_the_row_id_so_wechat_drops_a_resend(make_rt, fake_api):
    rt = make_rt(wechat_template_notice="tmpl-notice")
    [openid] = people(rt, 1, seen_hours_ago=72)  # outside the window: template message
    queue(rt, [openid])
    dispatcher(rt).drain()
    [row] = deliveries.with_prefix(rt.db(), "t:")
    [call] = fake_api.calls_to(TEMPLATE)
    assert call["json"]["client_msg_id"] == str(row["id"])
    assert row["wechat_msgid"] == str(call["response"]["msgid"])
    # the process died after WeChat accepted the row but before it was marked sent
    rt.db().execute("UPDATE deliveries SET status = 'pending', sent_at = NULL, "
                    "next_attempt_at = due_at WHERE id = ?", [row["id"]])
    dispatcher(rt).drain()
    assert len(fake_api.calls_to(TEMPLATE)) == 2 and len(fake_api.inbox(openid)) == 1
    assert deliveries.get(rt.db(), row["dedupe_key"])["status"] == "sent"


def test_a_47003_from_wechat_fails_the_row_with_the_reason(make_rt, fake_api):
    rt = make_rt(wechat_template_notice="tmpl-notice")
    [openid] = people(rt, 1, seen_hours_ago=72)
    queue(rt, [openid])
    fake_api.inject(TEMPLATE, errcode=47003)
    dispatcher(rt).drain()
    [row] = deliveries.with_prefix(rt.db(), "t:")
    assert (row["status"], row["last_error"]) == ("failed", "47003 模板字段不符合微信限制")


class VirtualTime:
    """A clock the rate limiter sleeps on; a slow send is the clock jumping."""

    def __init__(self):
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def most_in_one_second(times: list[float]) -> int:
    """The most calls in any one-second window (times in order)."""
    return max(bisect_left(times, t + 1.0 - 1e-9) - n for n, t in enumerate(times))


@pytest.mark.parametrize("rate", [20, 300])
def test_the_send_rate_is_kept_on_average_and_never_exceeded_in_any_second(rate):
    """BOT_SEND_RATE is what a broadcast gets: a slow answer from WeChat (here every 50th
    send takes 40 ms) is made up by the sends after it, and still no second sees more
    calls than the rate."""
    time_ = VirtualTime()
    limiter = RateLimiter(rate, clock=time_.clock, sleep=time_.sleep)
    started, sent = time_.now, []
    for n in range(rate * 10):
        limiter.wait()
        sent.append(time_.now)
        time_.sleep(0.04 if n % 50 == 49 else 0.001)
    assert sent[-1] - started == pytest.approx(10 - 1 / rate, abs=0.05)
    assert most_in_one_second(sent) <= rate


def test_a_rate_under_one_a_second_spaces_every_call():
    time_ = VirtualTime()
    limiter = RateLimiter(0.5, clock=time_.clock, sleep=time_.sleep)
    sent = []
    for _ in range(4):
        limiter.wait()
        sent.append(time_.now)
    assert [b - a for a, b in zip(sent, sent[1:])] == [2.0, 2.0, 2.0]


def test_a_fractional_rate_is_kept_too():
    time_ = VirtualTime()
    limiter = RateLimiter(1.5, clock=time_.clock, sleep=time_.sleep)
    started = time_.now
    for _ in range(16):
        limiter.wait()
    assert time_.now - started == pytest.approx(10.0)
